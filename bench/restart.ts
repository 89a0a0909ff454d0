/**
 * A server restart with N clients (issue "resume"): N users with distinct passwords hashed at the
 * production cost (2^15), in 100 rooms; the server is stopped (SIGTERM) and started again on the
 * same port and database; from the new process's `listening` log line, how long until every client
 * is back in its room, and until one message sent to each room has reached all its members.
 *
 * - `password`: each client reconnects and logs in with its password (a full scrypt each, since
 *   the new process remembers no proven password);
 * - `resume`: each client reconnects with `6:<user>:<token>`, the newest token it was sent after
 *   `8:resume`.
 *
 * ```sh
 * deno run -A bench/restart.ts --quick                              # 60 clients, both paths
 * deno run -A bench/restart.ts --clients 2000 --paths password,resume
 * deno run -A bench/restart.ts --clients 10000 --paths resume
 * ```
 *
 * Flags: `--reps N` (restarts per path, default 3), `--password-reps N` (default 1 from 1,000
 * clients on: each costs N × ~85 ms here), `--out PATH` (without extension), `--profile DIR`
 * (each server process writes a V8 CPU profile there: bench/profile_summary.ts reads it). The database (N users,
 * each its own password and salted scrypt hash) is made once and cached in
 * `bench/.cache/restart-<N>.db` (bench/users.ts); the first run at 10,000 hashes for minutes
 * (progress is printed). The clients are raw line clients in this process (one socket each, from
 * 127.0.0.1). The first start is not measured: each client gets a token planted in the database
 * beforehand (its SHA-256 row, as the server stores it), so the first logins are resumes rather
 * than N password hashes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { hashToken } from "../lib/server/resume_tokens.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { SHIPPED_V8_FLAGS } from "./servers.ts";
import { cpuModel, median } from "./stats.ts";
import { cachedUsers, COST, passwordOf, userOf } from "./users.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string" },
    paths: { type: "string", default: "password,resume" },
    reps: { type: "string", default: "3" },
    "password-reps": { type: "string" },
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    profile: { type: "string" },
  },
}).values;

const N = Number(args.clients ?? (args.quick ? 60 : 2000));
const paths = args.paths.split(",").filter((p) => p) as Path[];
for (const path of paths) {
  if (path !== "password" && path !== "resume") throw new Error(`unknown path ${path}`);
}
const reps = Number(args.reps);
const passwordReps = Number(args["password-reps"] ?? (N >= 1000 ? 1 : reps));
const ROOMS = 100;
const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

type Path = "password" | "resume";

const roomOf = (i: number) => `room${i % ROOMS}`;

/** A running server: its port, the moment its `listening` line was read, and stop(). */
interface Server {
  port: number;
  listeningAt: number;
  stop: () => Promise<void>;
}

async function serve(db: string, port: number): Promise<Server> {
  const profile = args.profile ? ["--cpu-prof", `--cpu-prof-dir=${args.profile}`] : [];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...SHIPPED_V8_FLAGS,
      ...profile,
      MAIN,
      "--db",
      db,
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--hash-cost",
      String(COST),
      "--max-connections",
      String(N + 1000),
      "--max-connections-per-address",
      "0",
      "--login-timeout-ms",
      "3600000",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const listening = Promise.withResolvers<{ port: number; at: number }>();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const found = /listening .*?transport=tcp address=\S+:(\d+)/.exec(chunk);
      if (found) listening.resolve({ port: Number(found[1]), at: performance.now() });
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  void child.status.then(() => listening.reject(new Error(`${MAIN} exited before listening`)));
  const seen = await listening.promise;
  return {
    port: seen.port,
    listeningAt: seen.at,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
      await reading;
    },
  };
}

const encoder = new TextEncoder();

/** One raw line client: logs in, joins its room, keeps its newest token, reconnects on close. */
class Client {
  token = "";
  mode: Path = "password";
  conn: Deno.TcpConn | null = null;
  joinedAt = 0;
  heardAt = 0;
  expect = "";
  busy = false;
  loggingIn = false;
  retries = 0;
  refusedTokens = 0;
  #onJoined: (() => void) | null = null;
  #onHeard: (() => void) | null = null;
  constructor(readonly i: number, public port: number) {}

  loginLine(): string {
    return this.mode === "resume" && this.token
      ? `6:${userOf(this.i)}:${this.token}\n`
      : `0:${userOf(this.i)}:${passwordOf(this.i)}\n`;
  }

  /**
   * Resolves once back in the room: connects now if not connected, else when the server closes
   * this connection (retrying while refused), then logs in and joins.
   */
  enter(): Promise<void> {
    const joined = Promise.withResolvers<void>();
    this.joinedAt = 0;
    this.#onJoined = joined.resolve;
    if (!this.conn) void this.#run();
    return joined.promise;
  }

  /** Resolves when a `3:` line with `text` arrives. */
  hear(text: string): Promise<void> {
    const heard = Promise.withResolvers<void>();
    this.expect = text;
    this.heardAt = 0;
    this.#onHeard = heard.resolve;
    return heard.promise;
  }

  send(line: string): void {
    this.conn?.write(encoder.encode(line)).catch(() => {});
  }

  async #run(): Promise<void> {
    let conn: Deno.TcpConn;
    for (;;) {
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
        break;
      } catch {
        this.retries++;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
    this.conn = conn;
    this.loggingIn = true;
    this.send(`8:resume\n${this.loginLine()}`);
    const decoder = new TextDecoder();
    let rest = "";
    const buf = new Uint8Array(8 * 1024); // lines are short; 10,000 clients hold 80 MB
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        rest += decoder.decode(buf.subarray(0, n), { stream: true });
        let at;
        while ((at = rest.indexOf("\n")) >= 0) {
          this.#line(rest.slice(0, at));
          rest = rest.slice(at + 1);
        }
      }
    } catch {
      // reset: reconnect below
    }
    try {
      conn.close();
    } catch {
      // already closed
    }
    this.conn = null;
    if (this.#onJoined && this.joinedAt === 0) void this.#run(); // dropped before back in the room
  }

  #line(line: string): void {
    const code = line[0];
    if (code === "6") {
      this.token = line.slice(2);
    } else if (code === "0") {
      if (line === "0:-1") {
        if (!this.loggingIn) return; // the drain's 0:-1; the close follows
        if (!this.busy && this.mode === "resume" && this.token) {
          this.refusedTokens++;
          this.token = ""; // refused: fall back to the password
        }
        this.busy = false;
        setTimeout(() => this.send(this.loginLine()), 200 + Math.random() * 600);
      } else {
        this.loggingIn = false;
        this.send(`2:${roomOf(this.i)}\n`);
      }
    } else if (line.startsWith("7:busy")) {
      this.busy = true;
    } else if (code === "2" && this.joinedAt === 0) {
      this.joinedAt = performance.now();
      this.#onJoined?.();
    } else if (code === "3" && this.expect && line.endsWith(this.expect)) {
      this.heardAt = performance.now();
      this.expect = "";
      this.#onHeard?.();
    }
  }
}

interface Trial {
  path: Path;
  rep: number;
  /** From the new process's `listening` line until every client had its `2:` reply. */
  backMs: number;
  /** From `listening` until one message to each room had reached every member. */
  deliveredMs: number;
  /** From the first message sent until the last delivery. */
  messageMs: number;
  /** The old process's stop (SIGTERM until exit, drain included) and the new one's start. */
  stopMs: number;
  startMs: number;
  refusedTokens: number;
}

async function allBack(clients: Client[], entering: Promise<void>[]): Promise<void> {
  let back = 0;
  const ticker = setInterval(() => {
    back = clients.filter((c) => c.joinedAt).length;
    console.log(`  … ${back}/${clients.length} back in their rooms`);
  }, 15_000);
  try {
    await Promise.all(entering);
  } finally {
    clearInterval(ticker);
  }
}

/** One message to each room from its first member; resolves with send time and last delivery. */
async function broadcast(clients: Client[], tag: string): Promise<{ sent: number; last: number }> {
  const hearing = clients.map((c) => c.hear(tag));
  const sent = performance.now();
  for (let r = 0; r < Math.min(ROOMS, clients.length); r++) clients[r].send(`3:0:${tag}\n`);
  await Promise.all(hearing);
  return { sent, last: Math.max(...clients.map((c) => c.heardAt)) };
}

/** Gives each client a fresh token, stored as the server would store it (not measured). */
async function plantTokens(db: string, clients: Client[]): Promise<void> {
  const store = openSqliteStore(db);
  try {
    const issuedAt = Date.now();
    const rows = clients.map((c) => {
      c.token = randomBytes(24).toString("base64url");
      c.mode = "resume";
      return { user: userOf(c.i), hash: hashToken(c.token), issuedAt };
    });
    await store.saveResumeTokens(rows);
  } finally {
    await store.close();
  }
}

const db = await cachedUsers(N);
const port = await freePort();
const clients = Array.from({ length: N }, (_, i) => new Client(i, port));
await plantTokens(db, clients);
let server = await serve(db, port);
console.log(`${N} clients logging in by planted tokens (first start, not measured)…`);
let t = performance.now();
await allBack(clients, clients.map((c) => c.enter()));
console.log(`  all in their rooms after ${((performance.now() - t) / 1000).toFixed(1)} s`);
await broadcast(clients, "warm-up");

const trials: Trial[] = [];
for (const path of paths) {
  const count = path === "password" ? passwordReps : reps;
  for (let rep = 1; rep <= count; rep++) {
    for (const c of clients) c.mode = path;
    const refusedBefore = clients.reduce((s, c) => s + c.refusedTokens, 0);
    // Every client waits for its connection to close, then comes back.
    const entering = clients.map((c) => c.enter());
    t = performance.now();
    await server.stop();
    const stopMs = performance.now() - t;
    t = performance.now();
    server = await serve(db, port);
    const startMs = performance.now() - t;
    const listeningAt = server.listeningAt;
    await allBack(clients, entering);
    const backMs = Math.max(...clients.map((c) => c.joinedAt)) - listeningAt;
    const { sent, last } = await broadcast(clients, `after-${path}-${rep}`);
    const trial: Trial = {
      path,
      rep,
      backMs,
      deliveredMs: last - listeningAt,
      messageMs: last - sent,
      stopMs,
      startMs,
      refusedTokens: clients.reduce((s, c) => s + c.refusedTokens, 0) - refusedBefore,
    };
    trials.push(trial);
    console.log(
      `${path} #${rep}: back in rooms ${fmt(backMs)}, message reached all ${
        fmt(trial.deliveredMs)
      }` +
        ` (message ${fmt(trial.messageMs)}), old stop ${fmt(stopMs)}, new start ${fmt(startMs)}` +
        (trial.refusedTokens ? `, ${trial.refusedTokens} tokens refused` : ""),
    );
  }
}
for (const c of clients) c.conn?.close();
await server.stop();

function fmt(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

async function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  await Promise.resolve();
  return port;
}

// The report.
const summary = paths.map((path) => {
  const mine = trials.filter((x) => x.path === path);
  return {
    path,
    reps: mine.length,
    backMs: median(mine.map((x) => x.backMs)),
    deliveredMs: median(mine.map((x) => x.deliveredMs)),
    messageMs: median(mine.map((x) => x.messageMs)),
    refusedTokens: mine.reduce((s, x) => s + x.refusedTokens, 0),
  };
});
const byPath = Object.fromEntries(summary.map((s) => [s.path, s]));
const ratio = byPath.password?.backMs && byPath.resume?.backMs
  ? byPath.password.backMs / byPath.resume.backMs
  : null;
const machine = { nproc: navigator.hardwareConcurrency, cpu: cpuModel(), deno: Deno.version.deno };
const date = new Date().toISOString().slice(0, 10);
const rows = summary.map((s) =>
  `| ${s.path.padEnd(8)} | ${String(s.reps).padStart(4)} | ${
    fmt(s.backMs ?? NaN).padStart(13)
  } | ` +
  `${fmt(s.deliveredMs ?? NaN).padStart(18)} | ${fmt(s.messageMs ?? NaN).padStart(9)} |`
);
const table = [
  "| path     | reps | back in rooms | message reaches all | message |",
  "| -------- | ---: | ------------: | ------------------: | ------: |",
  ...rows,
].join("\n");
const md = [
  `# Restart with ${N.toLocaleString("en")} clients (${date})`,
  "",
  `\`deno run -A bench/restart.ts ${
    Deno.args.join(" ")
  }\`: ${N} users with distinct passwords at ` +
  `hash cost ${COST}, in ${ROOMS} rooms; times from the new process's \`listening\` line, ` +
  `medians of the reps shown.`,
  "",
  table,
  "",
  ratio ? `Password ÷ resume (back in rooms): ${ratio.toFixed(0)}×.` : "",
  "",
  `Machine: ${machine.nproc} cores, ${machine.cpu}, Deno ${machine.deno}.`,
  "",
  "Trials:",
  "",
  ...trials.map((x) =>
    `- ${x.path} #${x.rep}: back ${fmt(x.backMs)}, all reached ${fmt(x.deliveredMs)}, ` +
    `old stop ${fmt(x.stopMs)}, new start ${fmt(x.startMs)}, tokens refused ${x.refusedTokens}`
  ),
  "",
].join("\n");
console.log(`\n${table}\n${ratio ? `password ÷ resume: ${ratio.toFixed(0)}×\n` : ""}`);
const out = args.out ?? `${ROOT}bench/results/${date}-restart${args.quick ? "-quick" : ""}-${N}`;
await Deno.writeTextFile(`${out}.md`, md);
await Deno.writeTextFile(
  `${out}.json`,
  JSON.stringify(
    { date, clients: N, rooms: ROOMS, hashCost: COST, machine, summary, ratio, trials },
    null,
    2,
  ) +
    "\n",
);
console.log(`wrote ${out}.md and ${out}.json`);
