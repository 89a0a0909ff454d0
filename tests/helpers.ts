/**
 * Test helpers: start the real server as a subprocess on a free loopback port with a temporary
 * database (or a given one), seed users, and talk to it over TCP with a small line client.
 *
 * @module
 */

import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openStore } from "../lib/store/open_store.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The password-hash cost tests use unless they are about hashing (2^10: about 3 ms). */
export const TEST_HASH_COST = 10;

/**
 * The flags a deno.json task hands V8 (`--v8-flags=…`), as written there: the compile task's are
 * the shipped binary's.
 *
 * @example Usage
 * ```ts
 * import { taskV8Flags } from "./helpers.ts";
 * const json = '{"tasks":{"start":"deno run --v8-flags=--a=1 -A main.ts"}}';
 * taskV8Flags(json, "start"); // ["--v8-flags=--a=1"]
 * ```
 */
export function taskV8Flags(denoJson: string, task: string): string[] {
  const words: string[] = JSON.parse(denoJson).tasks[task].split(/\s+/);
  return words.filter((word) => word.startsWith("--v8-flags="));
}

/**
 * A free loopback port, as the OS hands one out. The listener is closed again before the caller
 * binds it, so another process may take it first; callers that can, retry on a bind failure.
 *
 * @example Usage
 * ```ts
 * import { freePort } from "./helpers.ts";
 * const port = freePort();
 * ```
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Waits `ms` milliseconds: for time that must pass, never as a guess at "long enough". */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 20 ms until it holds; fails loudly, naming `what`, after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(20);
  }
}

/** Concatenates byte strings: UTF-8 text, byte arrays, or lists of byte values. */
export function bytes(...parts: (string | Uint8Array | number[])[]): Uint8Array {
  const arrays = parts.map((p) =>
    typeof p === "string" ? encoder.encode(p) : p instanceof Uint8Array ? p : new Uint8Array(p)
  );
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/**
 * The flags every test server gets: loopback, a free port, the database `db`, the test hash
 * cost and no per-address connection cap (every test client comes from 127.0.0.1; a test of the
 * cap sets it), then `extra`.
 */
export function serverFlags(db: string, extra: readonly string[] = []): string[] {
  const base = { "--host": "127.0.0.1", "--port": "0", "--db": db };
  const perAddress = ["--max-connections-per-address", "0"];
  return [
    ...Object.entries(base).flat(),
    "--hash-cost",
    String(TEST_HASH_COST),
    ...perAddress,
    ...extra,
  ];
}

/** Makes a temporary directory, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "parley-test-" });
  return { dir, remove: () => Deno.remove(dir, { recursive: true }).catch(() => {}) };
}

/**
 * Adds users straight into a database, a SQLite file or a postgres:// URL (fast; the CLI itself
 * has its own tests).
 */
export async function seedUsers(db: string, users: Record<string, string>): Promise<void> {
  const store = await openStore(db);
  const hasher = new PasswordHasher({ params: scryptParams(TEST_HASH_COST) });
  try {
    for (const [name, password] of Object.entries(users)) {
      await store.addUser(name, await hasher.hash(encoder.encode(password)));
    }
  } finally {
    await store.close();
  }
}

/** The result of running main.ts to completion. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A main.ts ...args` with `stdin` piped in, and waits for it to exit. */
export async function runCli(
  args: string[],
  options: { stdin?: string | Uint8Array; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
  }).spawn();
  const writer = child.stdin.getWriter();
  if (options.stdin !== undefined) {
    const bytes = typeof options.stdin === "string" ? encoder.encode(options.stdin) : options.stdin;
    await writer.write(bytes).catch(() => {});
  }
  await writer.close().catch(() => {});
  const { code, stdout, stderr } = await child.output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** A self-signed certificate for `localhost` and 127.0.0.1, made by openssl in `dir`. */
export interface TestCert {
  certPath: string;
  keyPath: string;
  /** The certificate's PEM, for a client's `caCerts`. */
  pem: string;
}

/** Makes a throwaway self-signed P-256 certificate with openssl (valid one day). */
export async function makeCert(dir: string): Promise<TestCert> {
  const certPath = `${dir}/cert.pem`;
  const keyPath = `${dir}/key.pem`;
  const { code, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE", // rustls refuses a CA certificate as the server's
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`openssl failed: ${new TextDecoder().decode(stderr)}`);
  return { certPath, keyPath, pem: await Deno.readTextFile(certPath) };
}

/** A server subprocess. */
export interface TestServer {
  /** The plain TCP port it listens on. */
  port: number;
  /** The TLS port, when started with TLS flags. */
  tlsPort?: number;
  /** Its database: a SQLite file or a postgres:// URL. */
  db: string;
  /** The process. */
  process: Deno.ChildProcess;
  /** Everything it has logged so far. */
  log(): string;
  /** Sends a signal and waits for the exit; resolves to the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/** Options of {@linkcode startServer}. */
export interface StartOptions {
  /** The database, a file or a postgres:// URL (default: a new file in a temporary directory). */
  db?: string;
  /** More flags. */
  args?: string[];
  /** Environment variables. */
  env?: Record<string, string>;
  /** Users to add before the server starts. */
  users?: Record<string, string>;
  /** A command the server runs under, such as `["ip", "netns", "exec", NS]`. */
  wrap?: string[];
}

/**
 * Starts `deno run -A main.ts` on 127.0.0.1, port 0 (a free port), and waits until it listens.
 * Stop it with `stop()`; tests must, so no process outlives its test.
 */
export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  let cleanup = async () => {};
  let db = options.db;
  if (db === undefined) {
    const temp = await tempDir();
    db = `${temp.dir}/parley.db`;
    cleanup = temp.remove;
  }
  if (options.users) await seedUsers(db, options.users);
  const [program, ...prefix] = [...options.wrap ?? [], Deno.execPath()];
  const child = new Deno.Command(program, {
    args: [...prefix, "run", "-A", MAIN, ...serverFlags(db, options.args)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
  }).spawn();

  let logText = "";
  const listening = Promise.withResolvers<{ tcp: number; tls?: number }>();
  const ports: { tcp?: number; tls?: number } = {};
  const wantTls = (options.args ?? []).includes("--tls-cert");
  // `--port=-1`: no plain TCP listener (TLS only); `port` is then -1.
  const wantTcp = !(options.args ?? []).includes("--port=-1");
  let started = false;
  const readAll = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      logText += chunk;
      if (started) continue; // do not rescan a long log once the ports are known
      // A cluster node's lines carry node=<id> before the event's own fields.
      for (const match of logText.matchAll(/listening .*?transport=(tcp|tls) address=\S+:(\d+)/g)) {
        ports[match[1] as "tcp" | "tls"] = Number(match[2]);
      }
      if (
        (!wantTcp || ports.tcp !== undefined) && (!wantTls || ports.tls !== undefined)
      ) {
        started = true;
        listening.resolve({ tcp: ports.tcp ?? -1, tls: ports.tls });
      }
    }
  };
  const drained = Promise.all([readAll(child.stderr), readAll(child.stdout)]);
  const exited = child.status.then(async (status) => {
    await drained; // its last words (the error) may still be in the pipe
    listening.reject(new Error(`server exited (${status.code}) before listening:\n${logText}`));
    return status;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`server did not start:\n${logText}`)), 15_000);
  });
  let found: { tcp: number; tls?: number };
  try {
    found = await Promise.race([listening.promise, timeout]);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await exited;
    await drained;
    await cleanup();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  let stopping: Promise<Deno.CommandStatus> | null = null;
  return {
    port: found.tcp,
    tlsPort: found.tls,
    db,
    process: child,
    log: () => logText,
    stop(signal: Deno.Signal = "SIGTERM") {
      stopping ??= (async () => {
        try {
          child.kill(signal);
        } catch { /* already exited */ }
        const status = await exited;
        await drained;
        await cleanup();
        return status;
      })();
      return stopping;
    },
  };
}

/**
 * Lines as a reader receives them, and waits for more with timeouts that fail loudly: what
 * {@link TestClient} and the WebSocket clients (tests/ws_support.ts) read a connection into,
 * and the benchmark's generator process (bench/gen_process.ts) its stdout.
 */
export class LineInbox {
  /** Lines received and not yet taken (take them with shift or splice). */
  readonly lines: string[] = [];
  #ended = false;
  #waiters: (() => void)[] = [];

  /** Whether the input has ended: no more lines will come. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Adds lines and wakes whoever waits. */
  push(...lines: string[]): void {
    this.lines.push(...lines);
    this.#wake();
  }

  /** Marks the end of the input and wakes whoever waits. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /** Resolves when lines arrive or the input ends, or after `ms`. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The next line; fails after `timeoutMs` or if the connection closes first. */
  async next(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.#ended) throw new Error("connection closed while waiting for a line");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line within ${timeoutMs} ms`);
      await this.wait(left);
    }
    return this.lines.shift()!;
  }

  /** Waits `ms` and fails if any line arrived meanwhile (or was still untaken). */
  async nothingWithin(ms: number): Promise<void> {
    await sleep(ms);
    if (this.lines.length > 0) {
      throw new Error(`expected nothing, got ${JSON.stringify(this.lines)}`);
    }
  }

  /** Resolves when the connection has closed; fails after `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${timeoutMs} ms`);
      await this.wait(left);
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * What every line client of the tests offers to read with ({@link TestClient}, and the
 * WebSocket client of tests/ws_support.ts): the lines its reader put in its inbox.
 */
export abstract class InboxClient {
  /** Where the client's reader puts the lines it receives. */
  protected readonly inbox: LineInbox = new LineInbox();

  /** The next line from the server; fails after `timeoutMs` or if the connection closes. */
  next(timeoutMs = 5000): Promise<string> {
    return this.inbox.next(timeoutMs);
  }

  /** Expects the next line to be exactly `line`. */
  async expect(line: string, timeoutMs = 5000): Promise<void> {
    const got = await this.next(timeoutMs);
    if (got !== line) {
      throw new Error(`expected ${JSON.stringify(line)}, got ${JSON.stringify(got)}`);
    }
  }

  /** Waits `ms` and fails if any line arrived meanwhile. */
  expectNothing(ms = 200): Promise<void> {
    return this.inbox.nothingWithin(ms);
  }

  /** Resolves when the server closes the connection; fails after `timeoutMs`. */
  expectClosed(timeoutMs = 5000): Promise<void> {
    return this.inbox.closedWithin(timeoutMs);
  }

  /** Lines received and not yet taken. */
  get pending(): readonly string[] {
    return this.inbox.lines;
  }
}

/** A line client for tests: send lines, expect lines, with timeouts that fail loudly. */
export class TestClient extends InboxClient {
  readonly conn: Deno.Conn;
  #reader: Promise<void>;

  private constructor(conn: Deno.Conn) {
    super();
    this.conn = conn;
    this.#reader = this.#read();
  }

  /** Wraps a connection made some other way (a socket bound to another source address, say). */
  static fromConn(conn: Deno.Conn): TestClient {
    return new TestClient(conn);
  }

  /** Connects to `hostname` (default 127.0.0.1):`port`. */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<TestClient> {
    return new TestClient(await Deno.connect({ hostname, port }));
  }

  /** Connects over TLS, trusting `caCert` (PEM). */
  static async connectTls(port: number, caCert: string): Promise<TestClient> {
    return new TestClient(
      await Deno.connectTls({ hostname: "localhost", port, caCerts: [caCert] }),
    );
  }

  /** Connects and logs in, expecting `0:<id>`; returns the client and its session id. */
  static async login(
    port: number,
    user: string,
    password: string,
    hostname?: string,
  ): Promise<TestClient> {
    const client = await TestClient.connect(port, hostname);
    client.send(`0:${user}:${password}`);
    const reply = await client.next();
    if (!/^0:[1-9]\d*$/.test(reply)) throw new Error(`login of ${user} failed: ${reply}`);
    return client;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let partial = "";
    const streamDecoder = new TextDecoder();
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        partial += streamDecoder.decode(buffer.subarray(0, n), { stream: true });
        const parts = partial.split("\n");
        partial = parts.pop()!;
        this.inbox.push(...parts);
      }
    } catch { /* reset or closed: same as EOF for a test */ }
    this.inbox.end();
  }

  /** Whether the server has closed the connection (as seen so far). */
  get closed(): boolean {
    return this.inbox.ended;
  }

  /** Writes raw bytes. */
  async write(bytes: Uint8Array | string): Promise<void> {
    const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
    let written = 0;
    while (written < data.length) written += await this.conn.write(data.subarray(written));
  }

  /** Sends one line (LF added). */
  send(line: string): Promise<void> {
    return this.write(line + "\n");
  }

  /** Sends `line` and expects the next line to be exactly `reply`. */
  async ask(line: string, reply: string, timeoutMs = 5000): Promise<void> {
    await this.send(line);
    await this.expect(reply, timeoutMs);
  }

  /** Closes the connection and waits for the reader to finish. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.#reader;
  }
}
