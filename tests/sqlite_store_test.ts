// Unit tests of what is SQLite's own in lib/store/sqlite_store.ts (the file, its modes, migrations,
// foreign and broken files), on real files in a temporary directory. The Store contract both
// stores share is tested in store_test.ts.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore, SCHEMA_VERSION } from "../lib/store/sqlite_store.ts";
import { StoreError } from "../lib/store/store.ts";

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-store-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function migrations(path: string): number[] {
  const db = new DatabaseSync(path);
  try {
    const rows = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
    return rows.map((r) => Number((r as { version: number }).version));
  } finally {
    db.close();
  }
}

Deno.test("sqlite store: a new file gets the schema and one migrations row per version", () =>
  withDir(async (dir) => {
    const path = `${dir}/p.db`;
    const store = openSqliteStore(path);
    await store.close();
    const want = Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1);
    assert.ok(SCHEMA_VERSION >= 1);
    assert.deepEqual(migrations(path), want);
    // Opening again applies nothing twice.
    await openSqliteStore(path).close();
    assert.deepEqual(migrations(path), want);
  }));

Deno.test("sqlite store: the file is in WAL mode", () =>
  withDir(async (dir) => {
    const path = `${dir}/p.db`;
    await openSqliteStore(path).close();
    const db = new DatabaseSync(path);
    const row = db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
    db.close();
    assert.equal(row.journal_mode, "wal");
  }));

Deno.test("sqlite store: a newer schema than this build knows is refused, file untouched", () =>
  withDir(async (dir) => {
    const path = `${dir}/p.db`;
    await openSqliteStore(path).close();
    const db = new DatabaseSync(path);
    db.exec(`INSERT INTO schema_migrations VALUES (${SCHEMA_VERSION + 1}, 0)`);
    db.close();
    assert.throws(() => openSqliteStore(path), (e: unknown) => {
      assert.ok(e instanceof StoreError);
      assert.equal(e.code, "io");
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /newer/);
      return true;
    });
    assert.equal(migrations(path).at(-1), SCHEMA_VERSION + 1);
  }));

Deno.test("sqlite store: the database file is created with mode 0600", () =>
  withDir(async (dir) => {
    const path = `${dir}/p.db`;
    const store = openSqliteStore(path);
    await store.addUser("alice", "h"); // makes the WAL file exist too
    try {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      for (const side of [`${path}-wal`, `${path}-shm`]) {
        const stat = await Deno.stat(side).catch(() => null);
        if (stat) assert.equal(stat.mode! & 0o077, 0, `${side} is not readable by others`);
      }
    } finally {
      await store.close();
    }
  }));

Deno.test("sqlite store: a corrupt file is refused naming the file, and is not overwritten", () =>
  withDir(async (dir) => {
    const path = `${dir}/corrupt.db`;
    const junk = new TextEncoder().encode("this is not a database\n".repeat(400));
    await Deno.writeFile(path, junk);
    assert.throws(() => openSqliteStore(path), (e: unknown) => {
      assert.ok(e instanceof StoreError, `${e}`);
      assert.equal(e.code, "io");
      assert.ok(e.message.includes(path), e.message);
      return true;
    });
    assert.deepEqual(await Deno.readFile(path), junk);
  }));

Deno.test("sqlite store: a missing directory is an error naming the file, creating nothing", () =>
  withDir((dir) => {
    const path = `${dir}/no/such/dir/p.db`;
    assert.throws(() => openSqliteStore(path), (e: unknown) => {
      assert.ok(e instanceof StoreError, `${e}`);
      assert.ok(e.message.includes(path), e.message);
      return true;
    });
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  }));

Deno.test("sqlite store: a version 1 file gains room makers (none for its rooms) and last use", () =>
  withDir(async (dir) => {
    const path = `${dir}/v1.db`;
    const v1 = new DatabaseSync(path);
    v1.exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL,
               applied_at INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);
             CREATE TABLE users (name TEXT PRIMARY KEY NOT NULL, password_hash TEXT NOT NULL,
               created_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE rooms (name TEXT PRIMARY KEY NOT NULL, password_hash TEXT,
               created_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
               name TEXT NOT NULL, at INTEGER NOT NULL);
             INSERT INTO rooms VALUES ('lobby', NULL, 1234);`);
    v1.close();
    const store = openSqliteStore(path);
    assert.deepEqual(await store.listRooms(), [{ name: "lobby", passwordHash: null, maker: null }]);
    await store.close();
    assert.deepEqual(migrations(path), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    const db = new DatabaseSync(path);
    const row = db.prepare("SELECT last_used_at AS at FROM rooms").get() as { at: number };
    db.close();
    assert.equal(row.at, 1234, "its last use is when it was made");
  }));
