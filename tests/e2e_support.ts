/**
 * Shared pieces of the end-to-end tests (tests/e2e_*_test.ts): the seeded users, a scope that
 * starts a server and always stops it and closes every client, a byte-level client for the tests
 * that must see exactly the bytes on the wire, and {@linkcode e2eTest}, which runs every case on a
 * node backed by SQLite and again on one backed by PostgreSQL.
 *
 * @module
 */

import { compareBytes } from "../lib/protocol/codec.ts";
import { type StartOptions, startServer, tempDir, TestClient, type TestServer } from "./helpers.ts";
import { startPostgres, type TestPostgres } from "./pg_support.ts";

export { bytes, sleep } from "./helpers.ts";

const encoder = new TextEncoder();

/** The users every end-to-end server starts with. `Zed` sorts before the others (byte order). */
export const USERS: Readonly<Record<string, string>> = {
  alice: "wonderland",
  bob: "builder",
  carol: "c4rol",
  dave: "d4ve",
  Zed: "zzz",
};

/** A running server and the clients a test opened on it; everything is closed by the scope. */
export class Scope {
  readonly server: TestServer;
  readonly #clients: { close(): Promise<void> }[] = [];

  constructor(server: TestServer) {
    this.server = server;
  }

  /** The server's port. */
  get port(): number {
    return this.server.port;
  }

  /** Opens a connection (not logged in). */
  async connect(): Promise<TestClient> {
    const client = await TestClient.connect(this.port);
    this.#clients.push(client);
    return client;
  }

  /** Opens a byte-level connection. */
  async connectRaw(): Promise<RawClient> {
    const client = await RawClient.connect(this.port);
    this.#clients.push(client);
    return client;
  }

  /** Connects and logs in as `user` (a seeded user), expecting `0:<id>`. */
  async login(user: string, password = USERS[user]): Promise<TestClient> {
    const client = await TestClient.login(this.port, user, password);
    this.#clients.push(client);
    return client;
  }

  /** Logs `user` in and joins `room`, expecting `2:<room>:<members>` with the given members. */
  async inRoom(user: string, room: string, members: string): Promise<TestClient> {
    const client = await this.login(user);
    await client.send(`2:${room}`);
    await client.expect(`2:${room}:${members}`);
    return client;
  }

  /**
   * Logs each of `users` in and has it join `room` in turn, checking each `2:` reply (the users
   * joined so far, sorted) and the `4:` line every earlier joiner gets. The room must be empty
   * before. Resolves to the clients, in the order of `users`.
   */
  async room(room: string, ...users: string[]): Promise<TestClient[]> {
    const clients: TestClient[] = [];
    for (const user of users) {
      const members = users.slice(0, clients.length + 1)
        .sort((a, b) => compareBytes(encoder.encode(a), encoder.encode(b))).join(",");
      const client = await this.inRoom(user, room, members);
      for (const earlier of clients) await earlier.expect(`4:${room}:${user}`);
      clients.push(client);
    }
    return clients;
  }

  /** Closes every client the scope opened. */
  async closeClients(): Promise<void> {
    const clients = this.#clients.splice(0);
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** The PostgreSQL of the PostgreSQL pass that is running (see {@linkcode e2eTest}), if one is. */
let postgres: TestPostgres | null = null;
/** This file's cases, for its PostgreSQL pass (each test file is a module of its own). */
const cases: { name: string; fn: () => Promise<void> }[] = [];

/**
 * Registers an end-to-end case twice: as a test of its own, where {@linkcode withServer} starts
 * nodes on SQLite files, and as a step of the file's one PostgreSQL test, which starts a single
 * throwaway PostgreSQL, runs every case of the file in turn with each node on a fresh database
 * of it, and stops it at the end. A case stays written once, against {@linkcode withServer} and
 * {@linkcode freshDatabase}.
 *
 * @example Usage
 * ```ts ignore
 * e2eTest("1 lists no rooms on a new server", async () => {
 *   await withServer({}, async (s) => {
 *     const alice = await s.login("alice");
 *     await alice.send("1");
 *     await alice.expect("1:");
 *   });
 * });
 * ```
 */
export function e2eTest(name: string, fn: () => Promise<void>): void {
  if (cases.length === 0) {
    Deno.test("PostgreSQL: every case of this file, on nodes backed by PostgreSQL", runOnPostgres);
  }
  cases.push({ name, fn });
  Deno.test(name, fn);
}

async function runOnPostgres(t: Deno.TestContext): Promise<void> {
  postgres = await startPostgres();
  try {
    for (const { name, fn } of cases) await t.step(name, fn);
  } finally {
    const stopping = postgres.stop();
    postgres = null;
    await stopping;
  }
}

/**
 * A new empty database for a node of the running pass: a file in a temporary directory, or a
 * fresh database of the PostgreSQL pass's server. `remove` deletes it (a PostgreSQL one goes
 * with its server).
 *
 * @example Usage
 * ```ts ignore
 * const { db, remove } = await freshDatabase();
 * try {
 *   await withServer({ db }, async (s) => {});
 * } finally {
 *   await remove();
 * }
 * ```
 */
export async function freshDatabase(): Promise<{ db: string; remove: () => Promise<void> }> {
  if (postgres !== null) {
    return {
      db: await postgres.createDatabase(),
      remove: () => Promise.resolve(),
    };
  }
  const temp = await tempDir();
  return { db: `${temp.dir}/parley.db`, remove: temp.remove };
}

/**
 * Starts a server (seeded with {@linkcode USERS} unless `options.users` says otherwise), runs
 * `body`, then closes every client and stops the server, whether `body` passed or threw. Without
 * `options.db`, the server gets a new database: a temporary SQLite file, or a fresh PostgreSQL
 * database in the PostgreSQL pass.
 *
 * @example Usage
 * ```ts ignore
 * await withServer({ args: ["--stamp-sender"] }, async (s) => {
 *   const alice = await s.login("alice");
 * });
 * ```
 */
export async function withServer(
  options: StartOptions,
  body: (scope: Scope) => Promise<void>,
): Promise<void> {
  const db = options.db ?? (postgres === null ? undefined : await postgres.createDatabase());
  const server = await startServer({ users: { ...USERS }, ...options, db });
  const scope = new Scope(server);
  try {
    await body(scope);
  } finally {
    await scope.closeClients();
    await server.stop();
  }
}

/** The id of a session reply `0:<positive id>`; throws on anything else. */
export function sessionId(line: string): number {
  const match = /^0:([1-9]\d*)$/.exec(line);
  if (match === null) throw new Error(`expected 0:<id>, got ${JSON.stringify(line)}`);
  return Number(match[1]);
}

/** A client that reads lines as raw bytes (no decoding), for opaque-body and framing tests. */
export class RawClient {
  readonly conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #closed = false;
  #waiters: (() => void)[] = [];
  #reader: Promise<void>;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.#reader = this.#read();
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async #read(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(chunk);
        if (n === null) break;
        const grown = new Uint8Array(this.#buffer.length + n);
        grown.set(this.#buffer);
        grown.set(chunk.subarray(0, n), this.#buffer.length);
        this.#buffer = grown;
        this.#wake();
      }
    } catch { /* reset: same as EOF here */ }
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters.splice(0);
    for (const wake of waiters) wake();
  }

  /** Writes raw bytes (a string is UTF-8 encoded). */
  async write(bytes: Uint8Array | string): Promise<void> {
    const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
    let written = 0;
    while (written < data.length) written += await this.conn.write(data.subarray(written));
  }

  /** The next line's bytes, without its LF (nothing else is stripped). */
  async nextLine(timeoutMs = 5000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lf = this.#buffer.indexOf(0x0a);
      if (lf !== -1) {
        const line = this.#buffer.slice(0, lf);
        this.#buffer = this.#buffer.slice(lf + 1);
        return line;
      }
      if (this.#closed) throw new Error("connection closed while waiting for a line");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Bytes received and not yet taken. */
  get buffered(): Uint8Array {
    return this.#buffer;
  }

  /** Whether the server has closed the connection (as seen so far). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes and waits for the reader to finish. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.#reader;
  }
}
