/**
 * A load generator process (bench/gen.ts) as bench/run.ts and bench/cluster.ts drive it (and
 * bench/failover_gen.ts, as bench/failover.ts does): started
 * with its config as JSON, told `GO` and `WINDOW` on stdin, read for `READY`, `DONE` and `RESULT`
 * on stdout.
 *
 * @module
 */

import { LineInbox } from "../tests/helpers.ts";
import type { GenConfig, GenScenario } from "./gen.ts";

const GEN = new URL("./gen.ts", import.meta.url).pathname;

/**
 * One generator process (bench/gen.ts) and its stdin/stdout conversation.
 *
 * @example Usage
 * ```ts ignore
 * const gen = new GenProcess(config);
 * await gen.expect("READY", 60_000);
 * await gen.send("GO 1000 3000");
 * ```
 */
export class GenProcess {
  readonly child: Deno.ChildProcess;
  #inbox = new LineInbox();
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  stderr = "";

  /** Starts `script` (default bench/gen.ts) with `config` as JSON, its first argument. */
  constructor(config: GenConfig | object, script: string = GEN) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, JSON.stringify(config)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    void this.#read();
    const child = this.child;
    void (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.stderr = (this.stderr + chunk).slice(-4000);
        if (Deno.env.get("BENCH_DEBUG")) Deno.stderr.writeSync(new TextEncoder().encode(chunk));
      }
    })();
  }

  async #read(): Promise<void> {
    let pending = "";
    for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!;
      this.#inbox.push(...lines);
    }
    this.#inbox.end();
  }

  /** The next line starting with `word`, or an error after `timeoutMs`. */
  async expect(word: string, timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const lines = this.#inbox.lines;
      const at = lines.findIndex((l) => l.startsWith(word));
      if (at !== -1) return lines.splice(0, at + 1)[at].slice(word.length).trim();
      if (this.#inbox.ended) throw new Error(`generator ended before ${word}: ${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`generator: no ${word} within ${timeoutMs} ms: ${this.stderr}`);
      }
      await this.#inbox.wait(left);
    }
  }

  /** Writes one control line (`GO …`, `WINDOW …`). */
  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes its stdin and waits for it to exit (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const late = setTimeout(() => {
      try {
        Deno.kill(this.child.pid, "SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await this.child.status;
    clearTimeout(late);
  }
}

/** A scenario's clients, as both benchmark runners describe them. */
export interface Workload {
  name: GenScenario;
  clients: number;
  rooms: number;
}

/**
 * What every generator of a run shares, for part `part` of `parts` of the scenario's clients
 * (client i of the whole goes to part i / ceil(clients / parts)); the caller adds the protocol,
 * the port and how it connects.
 *
 * @example Usage
 * ```ts
 * import { workloadPart } from "./gen_process.ts";
 * const scenario = { name: "rooms", clients: 1000, rooms: 100 } as const;
 * workloadPart(scenario, 1, 2, { batch: 16, window: 524_288 }).first; // 500
 * ```
 */
export function workloadPart(
  scenario: Workload,
  part: number,
  parts: number,
  options: { batch: number; window: number },
): Omit<GenConfig, "protocol" | "port" | "connectConcurrency" | "readBufferBytes"> {
  const per = Math.ceil(scenario.clients / parts);
  const first = part * per;
  return {
    scenario: scenario.name,
    first,
    count: Math.max(0, Math.min(per, scenario.clients - first)),
    rooms: scenario.rooms,
    roomSize: scenario.rooms > 0 ? scenario.clients / scenario.rooms : 0,
    first0: 0,
    population: scenario.clients,
    targets: 5,
    batch: options.batch,
    window: Math.ceil(options.window / parts),
    rate: 20,
    stampEvery: scenario.name === "paced" ? 1 : 64,
    seed: 4,
  };
}
