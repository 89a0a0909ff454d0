/**
 * A load generator process (bench/gen.ts) as bench/run.ts and bench/cluster.ts drive it: started
 * with its config as JSON, told `GO` and `WINDOW` on stdin, read for `READY`, `DONE` and `RESULT`
 * on stdout.
 *
 * @module
 */

import type { GenConfig } from "./gen.ts";

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
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #ended = false;
  stderr = "";

  constructor(config: GenConfig) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", GEN, JSON.stringify(config)],
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
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf("\n")) !== -1) {
        this.#lines.push(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      this.#wake();
    }
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** The next line starting with `word`, or an error after `timeoutMs`. */
  async expect(word: string, timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const at = this.#lines.findIndex((l) => l.startsWith(word));
      if (at !== -1) return this.#lines.splice(0, at + 1)[at].slice(word.length).trim();
      if (this.#ended) throw new Error(`generator ended before ${word}: ${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`generator: no ${word} within ${timeoutMs} ms: ${this.stderr}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
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
