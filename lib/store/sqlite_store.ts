/**
 * The {@linkcode Store} on a local SQLite file, through the node:sqlite module built into Deno
 * (no FFI, nothing downloaded at first run, and it works inside `deno compile`).
 *
 * WAL mode with a busy timeout lets the admin CLI write while the server runs; synchronous=FULL
 * makes every write durable before its call returns; a migrations table upgrades old files in
 * place. Any failure to open names the file.
 *
 * @module
 */

import { backup, DatabaseSync, type StatementSync } from "node:sqlite";
import { compareBytes } from "../protocol/codec.ts";
import type { Change, Removal, ResumeTokenRecord, RoomRecord, Store, UserRecord } from "./store.ts";
import { REMOVALS, StoreError } from "./store.ts";
import { migrate, refuseForeign } from "./sqlite_schema.ts";

export { SCHEMA_VERSION } from "./sqlite_schema.ts";

/** How long a write waits for another process's lock before failing. */
const BUSY_TIMEOUT_MS = 5000;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Creates the file with mode 0600 if it does not exist, so no other user can read the hashes. */
function createPrivately(path: string): void {
  try {
    Deno.openSync(path, { write: true, createNew: true, mode: 0o600 }).close();
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    // SQLite would quietly open a write-protected file read-only, and the server would only find
    // out at its first write: check up front that the file can be written.
    try {
      Deno.openSync(path, { read: true, write: true }).close();
    } catch (cause) {
      if (cause instanceof Deno.errors.PermissionDenied) {
        throw new Error("the file is read-only (permission denied)", { cause });
      }
      throw cause;
    }
  }
}

/**
 * Opens (creating if needed) the database at `path` and brings its schema up to date. Throws a
 * {@linkcode StoreError} whose message names the file when it cannot: a missing directory, a
 * read-only or locked file, a file that is not a Parley database.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSqliteStore } from "./sqlite_store.ts";
 * const store = openSqliteStore(":memory:");
 * await store.addUser("alice", "scrypt$...");
 * assert.equal((await store.findUser("alice"))?.passwordHash, "scrypt$...");
 * await store.close();
 * ```
 */
export function openSqliteStore(path: string): SqliteStore {
  let db: DatabaseSync | undefined;
  try {
    if (path !== ":memory:") createPrivately(path);
    db = new DatabaseSync(path);
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    refuseForeign(db); // before WAL mode, which would rewrite the file's header
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    migrate(db);
    return new SqliteStore(db, path);
  } catch (error) {
    try {
      db?.close();
    } catch { /* already failing; the first error is the one to report */ }
    throw new StoreError("io", `cannot open database ${path}: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** A room as its row reads. */
interface RoomRow {
  name: string;
  password_hash: string | null;
  maker: string | null;
}

function roomRecord(row: RoomRow): RoomRecord {
  return { name: row.name, passwordHash: row.password_hash, maker: row.maker };
}

const utf8 = new TextEncoder();

/** Byte order of the names' UTF-8, as the wire and `listRooms` sort them. */
function byBytes(a: string, b: string): number {
  return compareBytes(utf8.encode(a), utf8.encode(b));
}

/** A {@linkcode Store} on SQLite; make one with {@linkcode openSqliteStore}. */
export class SqliteStore implements Store {
  readonly path: string;
  #db: DatabaseSync;
  #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.path = path;
  }

  #sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `work` in a write transaction; errors name the file, and a taken name is `duplicate`. */
  #write<T>(what: string, work: () => T): T {
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const result = work();
        this.#db.exec("COMMIT");
        return result;
      } catch (error) {
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      if (describe(error).includes("UNIQUE constraint failed")) {
        throw new StoreError("duplicate", `${what}: the name is taken`, { cause: error });
      }
      throw new StoreError("io", `${what} in database ${this.path}: ${describe(error)}`, {
        cause: error,
      });
    }
  }

  #read<T>(what: string, work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw new StoreError("io", `${what} in database ${this.path}: ${describe(error)}`, {
        cause: error,
      });
    }
  }

  #logChange(kind: Change["kind"], name: string): void {
    this.#sql("INSERT INTO changes (kind, name, at) VALUES (?, ?, ?)").run(kind, name, Date.now());
  }

  findUser(name: string): Promise<UserRecord | undefined> {
    const row = this.#read(
      "cannot read user",
      () =>
        this.#sql("SELECT name, password_hash FROM users WHERE name = ?").get(name) as
          | { name: string; password_hash: string }
          | undefined,
    );
    return Promise.resolve(row && { name: row.name, passwordHash: row.password_hash });
  }

  addUser(name: string, passwordHash: string): Promise<void> {
    this.#write(`cannot add user ${name}`, () => {
      this.#sql("INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)")
        .run(name, passwordHash, Date.now());
    });
    return Promise.resolve();
  }

  removeUser(name: string): Promise<boolean> {
    return this.#remove(REMOVALS.user, name);
  }

  setPassword(name: string, passwordHash: string): Promise<boolean> {
    return Promise.resolve(this.#write(`cannot set the password of ${name}`, () => {
      const result = this.#sql("UPDATE users SET password_hash = ? WHERE name = ?")
        .run(passwordHash, name);
      this.#dropResumeToken(name);
      return result.changes > 0;
    }));
  }

  upgradePasswordHash(name: string, old: string, replacement: string): Promise<boolean> {
    return Promise.resolve(this.#write(`cannot re-hash the password of ${name}`, () => {
      const result = this.#sql(
        "UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?",
      ).run(replacement, name, old);
      return result.changes > 0;
    }));
  }

  listUsers(): Promise<string[]> {
    const rows = this.#read(
      "cannot list users",
      () => this.#sql("SELECT name FROM users ORDER BY name").all() as { name: string }[],
    );
    return Promise.resolve(rows.map((r) => r.name));
  }

  listRooms(): Promise<RoomRecord[]> {
    const rows = this.#read(
      "cannot list rooms",
      () =>
        this.#sql(
          "SELECT name, password_hash, maker FROM rooms ORDER BY CAST(name AS BLOB)",
        ).all() as unknown as RoomRow[],
    );
    return Promise.resolve(rows.map(roomRecord));
  }

  findRoom(name: string): Promise<RoomRecord | undefined> {
    const row = this.#read(
      `cannot read room ${name}`,
      () =>
        this.#sql("SELECT name, password_hash, maker FROM rooms WHERE name = ?").get(name) as
          | RoomRow
          | undefined,
    );
    return Promise.resolve(row && roomRecord(row));
  }

  addRoom(name: string, passwordHash: string | null, maker: string | null = null): Promise<void> {
    this.#write(`cannot add room ${name}`, () => {
      const now = Date.now();
      this.#sql(
        "INSERT INTO rooms (name, password_hash, created_at, maker, last_used_at) " +
          "VALUES (?, ?, ?, ?, ?)",
      ).run(name, passwordHash, now, maker, now);
      this.#logChange("room-added", name);
    });
    return Promise.resolve();
  }

  removeRoom(name: string): Promise<boolean> {
    return this.#remove(REMOVALS.room, name);
  }

  removeRoomsBy(maker: string): Promise<string[]> {
    return this.#removeRooms(`cannot remove the rooms of ${maker}`, "maker = ?", maker);
  }

  removeRoomsUnusedSince(before: number): Promise<string[]> {
    return this.#removeRooms("cannot remove idle rooms", "last_used_at < ?", before);
  }

  /** Deletes the rooms `where` picks and logs each removal, in one transaction. */
  #removeRooms(what: string, where: string, value: string | number): Promise<string[]> {
    return Promise.resolve(this.#write(what, () => {
      const rows = this.#sql(`DELETE FROM rooms WHERE ${where} RETURNING name`).all(value) as {
        name: string;
      }[];
      const names = rows.map((r) => r.name).sort(byBytes);
      for (const name of names) this.#logChange("room-removed", name);
      return names;
    }));
  }

  touchRooms(names: readonly string[], at: number): Promise<void> {
    if (names.length === 0) return Promise.resolve();
    this.#write("cannot record room use", () => {
      const touch = this.#sql(
        "UPDATE rooms SET last_used_at = MAX(last_used_at, ?) WHERE name = ?",
      );
      for (const name of names) touch.run(at, name);
    });
    return Promise.resolve();
  }

  /** Deletes a user or a room and logs the change, in one transaction. */
  #remove({ table, change, noun }: Removal, name: string): Promise<boolean> {
    return Promise.resolve(this.#write(`cannot remove ${noun} ${name}`, () => {
      const removed = this.#sql(`DELETE FROM ${table} WHERE name = ?`).run(name).changes > 0;
      if (removed) this.#logChange(change, name);
      if (table === REMOVALS.user.table) this.#dropResumeToken(name);
      return removed;
    }));
  }

  #dropResumeToken(user: string): void {
    this.#sql("DELETE FROM resume_tokens WHERE user_name = ?").run(user);
  }

  saveResumeTokens(tokens: readonly ResumeTokenRecord[]): Promise<void> {
    if (tokens.length === 0) return Promise.resolve();
    this.#write("cannot store resume tokens", () => {
      // In the write transaction: a user removed by another process is seen removed, or not yet.
      const save = this.#sql(
        `INSERT INTO resume_tokens (user_name, token_hash, issued_at)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM users WHERE name = ?1)
         ON CONFLICT (user_name) DO UPDATE
         SET token_hash = excluded.token_hash, issued_at = excluded.issued_at`,
      );
      for (const t of tokens) save.run(t.user, t.hash, t.issuedAt);
    });
    return Promise.resolve();
  }

  findResumeTokens(users: readonly string[]): Promise<ResumeTokenRecord[]> {
    return Promise.resolve(this.#read("cannot read resume tokens", () => {
      const find = this.#sql(
        "SELECT token_hash, issued_at FROM resume_tokens WHERE user_name = ?",
      );
      return users.flatMap((user) => {
        const row = find.get(user) as { token_hash: string; issued_at: number } | undefined;
        return row ? [{ user, hash: row.token_hash, issuedAt: row.issued_at }] : [];
      });
    }));
  }

  lastChange(): Promise<number> {
    const row = this.#read(
      "cannot read the change log",
      () => this.#sql("SELECT COALESCE(MAX(seq), 0) AS seq FROM changes").get() as { seq: number },
    );
    return Promise.resolve(row.seq);
  }

  changesSince(seq: number): Promise<Change[]> {
    const rows = this.#read(
      "cannot read the change log",
      () =>
        this.#sql("SELECT seq, kind, name FROM changes WHERE seq > ? ORDER BY seq").all(seq) as {
          seq: number;
          kind: Change["kind"];
          name: string;
        }[],
    );
    return Promise.resolve(rows.map((r) => ({ seq: r.seq, kind: r.kind, name: r.name })));
  }

  /**
   * Writes a consistent copy of the database to `path`, which must not exist, while other
   * processes (a running server) keep writing. It uses SQLite's online backup API in one step,
   * inside one read transaction, so the copy is a snapshot of a single moment. (`VACUUM INTO`
   * would do too, but Deno refuses ATTACH, and so VACUUM INTO, unless every permission is
   * granted, which the compiled binary is not.) The copy is checked with `integrity_check`,
   * switched to a self-contained rollback journal, and resolves to how many users it holds.
   */
  async backup(path: string): Promise<{ users: number; rooms: number }> {
    try {
      Deno.openSync(path, { write: true, createNew: true, mode: 0o600 }).close();
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new StoreError("duplicate", `cannot back up to ${path}: the file exists`);
      }
      throw new StoreError("io", `cannot back up to ${path}: ${describe(error)}`, { cause: error });
    }
    try {
      await backup(this.#db, path, { rate: -1 });
      const copy = new DatabaseSync(path);
      try {
        const check = copy.prepare("PRAGMA integrity_check").get() as Record<string, string>;
        const verdict = Object.values(check)[0];
        if (verdict !== "ok") throw new Error(`the copy failed its integrity check: ${verdict}`);
        copy.exec("PRAGMA journal_mode = DELETE");
        const count = (table: string) =>
          (copy.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
        return { users: count("users"), rooms: count("rooms") };
      } finally {
        copy.close();
      }
    } catch (error) {
      await Deno.remove(path).catch(() => {});
      for (const suffix of ["-wal", "-shm", "-journal"]) {
        await Deno.remove(path + suffix).catch(() => {});
      }
      throw new StoreError("io", `cannot back up ${this.path} to ${path}: ${describe(error)}`, {
        cause: error,
      });
    }
  }

  close(): Promise<void> {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}
