/**
 * The {@linkcode Store} on a PostgreSQL database, shared by every node of a cluster (or used by a
 * single node), through the `postgres` npm client and a small connection pool.
 *
 * The schema is versioned like the SQLite file's: on open, every migration this build knows and
 * the database lacks runs in one transaction under an advisory lock, so nodes starting together
 * do not race, and a database newer than this build is refused. Names sort in byte order (the
 * `C` collation), as in SQLite. Each write that logs a change locks the change log first, so
 * change numbers become visible in increasing order and a reader never skips one that commits
 * late. Every failure is a {@linkcode StoreError} whose message names the database as
 * `postgres://host:port/dbname`, never with the password.
 *
 * @module
 */

import process from "node:process";
import postgres from "postgres";
import { compareBytes } from "../protocol/codec.ts";
import { postgresLabel } from "./database_url.ts";
import { migrate } from "./postgres_schema.ts";
import type { Change, Removal, ResumeTokenRecord, RoomRecord, Store } from "./store.ts";
import type { UserRecord } from "./store.ts";
import { REMOVALS, StoreError } from "./store.ts";

/** Connections per process: the hub's queries are short, and many nodes share one server. */
const POOL_MAX = 4;
/** How long a new connection may take (seconds): a dead server fails a login this fast. */
const CONNECT_TIMEOUT_S = 3;
/** Idle connections close after this long (seconds), so an idle node holds none open. */
const IDLE_TIMEOUT_S = 60;
/** How long a call may wait for an answer on an open connection (a frozen server or network). */
const CALL_TIMEOUT_MS = 4000;
/** How long close() lets running queries finish before it cuts the connections (seconds). */
const CLOSE_TIMEOUT_S = 2;
/** PostgreSQL's SQLSTATE for a unique violation. */
const UNIQUE_VIOLATION = "23505";

export { SCHEMA_VERSION } from "./postgres_schema.ts";

type Sql = postgres.Sql;

function roomRecord(row: postgres.Row): RoomRecord {
  return { name: row.name, passwordHash: row.password_hash, maker: row.maker };
}

const utf8 = new TextEncoder();

/** Byte order of the names' UTF-8, as the wire and `listRooms` sort them. */
function byBytes(a: string, b: string): number {
  return compareBytes(utf8.encode(a), utf8.encode(b));
}
type Transaction = postgres.TransactionSql;

/** Why a call failed, in words: the server's own message, or what happened to the connection. */
function describe(error: unknown): string {
  if (error instanceof postgres.PostgresError) return error.message;
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "EPIPE":
      return "the connection was reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "unknown host";
    case "ETIMEDOUT":
    case "CONNECT_TIMEOUT":
      return `no connection within ${CONNECT_TIMEOUT_S} s`;
    case "CONNECTION_CLOSED":
    case "CONNECTION_DESTROYED":
      return "the connection was closed";
    case "CONNECTION_ENDED":
      return "the store is closed";
  }
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/**
 * The connection details `url` gives, and how to name the database in messages: the URL without
 * its user and password, `postgres://host:port/dbname`.
 */
function parseUrl(url: string): { label: string; options: postgres.Options<never> } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The text itself may hold a password: do not repeat it.
    throw new StoreError("io", "cannot open database: not a valid postgres:// URL");
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = parsed.port === "" ? 5432 : Number(parsed.port);
  const user = decodeURIComponent(parsed.username);
  const database = decodeURIComponent(parsed.pathname.slice(1)) || user;
  const label = postgresLabel(parsed);
  if (host === "") {
    throw new StoreError("io", `cannot open database ${label}: the URL names no host`);
  }
  if (user === "") {
    // The client would ask the OS for the current user, which Parley's permissions do not allow.
    throw new StoreError(
      "io",
      `cannot open database ${label}: the URL names no user (postgres://USER:PASSWORD@HOST/DB)`,
    );
  }
  const options: postgres.Options<never> = {
    host,
    port,
    user,
    pass: decodeURIComponent(parsed.password),
    database,
    max: POOL_MAX,
    connect_timeout: CONNECT_TIMEOUT_S,
    idle_timeout: IDLE_TIMEOUT_S,
    fetch_types: false, // only text and numbers cross the wire: skip the type round trip
    onnotice: () => {}, // "relation already exists, skipping" and the like are not news
    connection: { application_name: "parley" },
  };
  // As with libpq: sslmode=disable|prefer|require|verify-full chooses TLS; any other parameter
  // is a server setting for each connection (application_name, search_path, ...).
  for (const [key, value] of parsed.searchParams) {
    if (key === "sslmode") options.ssl = value === "disable" ? false : value as "require";
    else options.connection = { ...options.connection, [key]: value };
  }
  return { label, options };
}

/**
 * Runs `make` while `process.env` is empty. The client falls back on PG* variables and the OS
 * user for what its options leave out, and reads PGAPPNAME always; Parley runs with access to
 * its own PARLEY_* variables only (and is configured by the URL alone), so the client must not
 * look. The client reads the environment only while it is being made, synchronously.
 */
function withoutEnvironment<T>(make: () => T): T {
  const env = Object.getOwnPropertyDescriptor(process, "env");
  Object.defineProperty(process, "env", { value: {}, configurable: true, writable: true });
  try {
    return make();
  } finally {
    if (env) Object.defineProperty(process, "env", env);
  }
}

/**
 * Connects to the database `url` names (`postgres://USER:PASSWORD@HOST:PORT/DBNAME`, with
 * optional `?sslmode=require`) and brings its schema up to date. Throws a
 * {@linkcode StoreError} naming the database (without the password) when it cannot: a server
 * that does not answer, a refused login, a newer schema.
 *
 * @example Usage
 * ```ts ignore
 * import { openPostgresStore } from "./postgres_store.ts";
 * const store = await openPostgresStore("postgres://parley:secret@127.0.0.1:5432/parley");
 * await store.addUser("alice", "scrypt$...");
 * await store.close();
 * ```
 */
export async function openPostgresStore(url: string): Promise<PostgresStore> {
  const { label, options } = parseUrl(url);
  const sql = withoutEnvironment(() => postgres(options));
  try {
    await migrate(sql);
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw new StoreError("io", `cannot open database ${label}: ${describe(error)}`, {
      cause: error,
    });
  }
  return new PostgresStore(sql, label);
}

/**
 * A {@linkcode Store} on PostgreSQL; make one with {@linkcode openPostgresStore}.
 *
 * @example Usage
 * ```ts ignore
 * import { openPostgresStore } from "./postgres_store.ts";
 * const store = await openPostgresStore("postgres://parley:secret@127.0.0.1/parley");
 * console.log(store.label); // "postgres://127.0.0.1:5432/parley"
 * console.log(await store.listRooms()); // [{ name: "lobby", passwordHash: null }]
 * await store.close();
 * ```
 */
export class PostgresStore implements Store {
  /** The database, as messages name it: `postgres://host:port/dbname` (no user or password). */
  readonly label: string;
  #sql: Sql;
  #closing: Promise<void> | null = null;

  constructor(sql: Sql, label: string) {
    this.#sql = sql;
    this.label = label;
  }

  /**
   * Runs `work`, answering within {@linkcode CALL_TIMEOUT_MS} whatever the server does; failures
   * become a {@linkcode StoreError} naming the database, a taken name code `duplicate`.
   */
  async #call<T>(what: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      if (this.#closing !== null) {
        throw Object.assign(new Error("closed"), { code: "CONNECTION_ENDED" });
      }
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CALL_TIMEOUT_MS / 1000} s`)),
          CALL_TIMEOUT_MS,
        );
      });
      return await Promise.race([work(this.#sql), deadline]);
    } catch (error) {
      if (error instanceof postgres.PostgresError && error.code === UNIQUE_VIOLATION) {
        throw new StoreError("duplicate", `${what}: the name is taken`, { cause: error });
      }
      throw new StoreError("io", `${what} in ${this.label}: ${describe(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Appends to the change log inside `tx`. The table lock (which plain reads do not wait for)
   * makes writers of changes take turns from drawing a seq to committing, so seqs become
   * visible in order: a reader that has seen seq N will never later find a smaller one.
   */
  async #logChange(tx: Transaction, kind: Change["kind"], name: string): Promise<void> {
    await tx`LOCK TABLE changes IN EXCLUSIVE MODE`;
    await tx`INSERT INTO changes (kind, name) VALUES (${kind}, ${name})`;
  }

  findUser(name: string): Promise<UserRecord | undefined> {
    return this.#call(`cannot read user ${name}`, async (sql) => {
      const [row] = await sql`SELECT name, password_hash FROM users WHERE name = ${name}`;
      return row && { name: row.name, passwordHash: row.password_hash };
    });
  }

  addUser(name: string, passwordHash: string): Promise<void> {
    return this.#call(`cannot add user ${name}`, async (sql) => {
      await sql`INSERT INTO users (name, password_hash) VALUES (${name}, ${passwordHash})`;
    });
  }

  removeUser(name: string): Promise<boolean> {
    return this.#remove(REMOVALS.user, name);
  }

  setPassword(name: string, passwordHash: string): Promise<boolean> {
    return this.#call(`cannot set the password of ${name}`, (sql) =>
      sql.begin(async (tx) => {
        await tx`DELETE FROM resume_tokens WHERE user_name = ${name}`;
        const result = await tx`UPDATE users SET password_hash = ${passwordHash}
                                WHERE name = ${name}`;
        return result.count > 0;
      }));
  }

  upgradePasswordHash(name: string, old: string, replacement: string): Promise<boolean> {
    return this.#call(`cannot re-hash the password of ${name}`, async (sql) => {
      const result = await sql`UPDATE users SET password_hash = ${replacement}
                               WHERE name = ${name} AND password_hash = ${old}`;
      return result.count > 0;
    });
  }

  listUsers(): Promise<string[]> {
    return this.#call("cannot list users", async (sql) => {
      const rows = await sql`SELECT name FROM users ORDER BY name`;
      return rows.map((r) => r.name as string);
    });
  }

  listRooms(): Promise<RoomRecord[]> {
    return this.#call("cannot list rooms", async (sql) => {
      const rows = await sql`SELECT name, password_hash, maker FROM rooms ORDER BY name`;
      return rows.map(roomRecord);
    });
  }

  findRoom(name: string): Promise<RoomRecord | undefined> {
    return this.#call(`cannot read room ${name}`, async (sql) => {
      const [row] = await sql`SELECT name, password_hash, maker FROM rooms WHERE name = ${name}`;
      return row && roomRecord(row);
    });
  }

  addRoom(name: string, passwordHash: string | null, maker: string | null = null): Promise<void> {
    return this.#call(`cannot add room ${name}`, (sql) =>
      sql.begin(async (tx) => {
        await tx`INSERT INTO rooms (name, password_hash, maker)
                 VALUES (${name}, ${passwordHash}, ${maker})`;
        await this.#logChange(tx, "room-added", name);
      }));
  }

  removeRoom(name: string): Promise<boolean> {
    return this.#remove(REMOVALS.room, name);
  }

  removeRoomsBy(maker: string): Promise<string[]> {
    return this.#removeRooms(
      `cannot remove the rooms of ${maker}`,
      (tx) => tx`DELETE FROM rooms WHERE maker = ${maker} RETURNING name`,
    );
  }

  removeRoomsUnusedSince(before: number): Promise<string[]> {
    return this.#removeRooms(
      "cannot remove idle rooms",
      (tx) => tx`DELETE FROM rooms WHERE last_used_at < ${new Date(before)} RETURNING name`,
    );
  }

  /** Deletes the rooms `remove` picks and logs each removal, in one transaction. */
  #removeRooms(
    what: string,
    remove: (tx: Transaction) => Promise<readonly { name: string }[]>,
  ): Promise<string[]> {
    return this.#call(what, (sql) =>
      sql.begin(async (tx) => {
        const rows = await remove(tx);
        const names = rows.map((r) => r.name).sort(byBytes);
        for (const name of names) await this.#logChange(tx, "room-removed", name);
        return names;
      }));
  }

  touchRooms(names: readonly string[], at: number): Promise<void> {
    if (names.length === 0) return Promise.resolve();
    return this.#call("cannot record room use", async (sql) => {
      await sql`UPDATE rooms SET last_used_at = GREATEST(last_used_at, ${new Date(at)})
                WHERE name IN ${sql(names as string[])}`;
    });
  }

  /** Deletes a user or a room and logs the change, in one transaction. */
  #remove({ table, change, noun }: Removal, name: string): Promise<boolean> {
    return this.#call(`cannot remove ${noun} ${name}`, (sql) =>
      sql.begin(async (tx) => {
        const removed = await tx`DELETE FROM ${tx(table)} WHERE name = ${name} RETURNING name`;
        if (removed.length > 0) await this.#logChange(tx, change, name);
        return removed.length > 0;
      }));
  }

  saveResumeTokens(tokens: readonly ResumeTokenRecord[]): Promise<void> {
    // One row a user (the last wins): an upsert may not touch a row twice.
    const rows = [...new Map(tokens.map((t) => [t.user, t])).values()];
    if (rows.length === 0) return Promise.resolve();
    return this.#call("cannot store resume tokens", async (sql) => {
      // One statement, one commit for the lot; the join skips users that do not exist.
      await sql`INSERT INTO resume_tokens (user_name, token_hash, issued_at)
                SELECT t.user, t.hash, t."issuedAt"
                FROM json_to_recordset(${JSON.stringify(rows)}::text::json)
                  AS t ("user" text, hash text, "issuedAt" bigint)
                JOIN users ON users.name = t.user
                ON CONFLICT (user_name) DO UPDATE
                SET token_hash = excluded.token_hash, issued_at = excluded.issued_at`;
    });
  }

  findResumeTokens(users: readonly string[]): Promise<ResumeTokenRecord[]> {
    if (users.length === 0) return Promise.resolve([]);
    return this.#call("cannot read resume tokens", async (sql) => {
      const rows = await sql`SELECT user_name, token_hash, issued_at FROM resume_tokens
                             WHERE user_name IN ${sql(users as string[])}`;
      return rows.map((r) => ({ user: r.user_name, hash: r.token_hash, issuedAt: +r.issued_at }));
    });
  }

  lastChange(): Promise<number> {
    return this.#call("cannot read the change log", async (sql) => {
      const [{ seq }] = await sql`SELECT COALESCE(MAX(seq), 0) AS seq FROM changes`;
      return Number(seq);
    });
  }

  changesSince(seq: number): Promise<Change[]> {
    return this.#call("cannot read the change log", async (sql) => {
      const rows = await sql`SELECT seq, kind, name FROM changes WHERE seq > ${seq} ORDER BY seq`;
      return rows.map((r) => ({ seq: Number(r.seq), kind: r.kind, name: r.name }));
    });
  }

  /** Ends the pool: running queries get a moment to finish, then the connections are cut. */
  close(): Promise<void> {
    this.#closing ??= this.#sql.end({ timeout: CLOSE_TIMEOUT_S }).catch(() => {});
    return this.#closing;
  }
}
