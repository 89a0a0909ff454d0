// Unit tests of lib/sqlite_store.ts on real files in a temporary directory.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore, SCHEMA_VERSION } from "../lib/sqlite_store.ts";
import { StoreError } from "../lib/store.ts";

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

Deno.test("sqlite store: users and rooms survive closing and reopening", () =>
  withDir(async (dir) => {
    const path = `${dir}/p.db`;
    const store = openSqliteStore(path);
    await store.addUser("alice", "scrypt$hash-a");
    await store.addUser("bob", "scrypt$hash-b");
    await store.addRoom("lobby", null);
    await store.addRoom("vault", "scrypt$hash-v");
    await store.close();
    const again = openSqliteStore(path);
    try {
      assert.deepEqual(await again.listUsers(), ["alice", "bob"]);
      assert.deepEqual(await again.findUser("alice"), {
        name: "alice",
        passwordHash: "scrypt$hash-a",
      });
      assert.equal(await again.findUser("carol"), undefined);
      assert.deepEqual(await again.listRooms(), [
        { name: "lobby", passwordHash: null },
        { name: "vault", passwordHash: "scrypt$hash-v" },
      ]);
    } finally {
      await again.close();
    }
  }));

Deno.test("sqlite store: a taken name is StoreError code duplicate, and nothing changes", async () => {
  const store = openSqliteStore(":memory:");
  try {
    await store.addUser("alice", "h1");
    await assert.rejects(
      async () => await store.addUser("alice", "h2"),
      (e: unknown) => e instanceof StoreError && e.code === "duplicate",
    );
    assert.equal((await store.findUser("alice"))?.passwordHash, "h1");
    await store.addRoom("lobby", null);
    const before = await store.lastChange();
    await assert.rejects(
      async () => await store.addRoom("lobby", "h"),
      (e: unknown) => e instanceof StoreError && e.code === "duplicate",
    );
    assert.deepEqual(await store.listRooms(), [{ name: "lobby", passwordHash: null }]);
    assert.equal(await store.lastChange(), before, "a failed write logs no change");
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: remove and set-password report whether there was such a name", async () => {
  const store = openSqliteStore(":memory:");
  try {
    await store.addUser("alice", "h1");
    assert.equal(await store.setPassword("alice", "h2"), true);
    assert.equal((await store.findUser("alice"))?.passwordHash, "h2");
    assert.equal(await store.setPassword("bob", "h"), false);
    assert.equal(await store.removeUser("alice"), true);
    assert.equal(await store.removeUser("alice"), false);
    assert.equal(await store.findUser("alice"), undefined);
    await store.addRoom("lobby", null);
    assert.equal(await store.removeRoom("lobby"), true);
    assert.equal(await store.removeRoom("lobby"), false);
    assert.deepEqual(await store.listRooms(), []);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: users sorted by name, rooms sorted by byte order", async () => {
  const store = openSqliteStore(":memory:");
  try {
    for (const u of ["carol", "alice", "Zed", "bob"]) await store.addUser(u, "h");
    assert.deepEqual(await store.listUsers(), ["Zed", "alice", "bob", "carol"]);
    // U+1F600 sorts before U+FF61 in UTF-16 but after it in UTF-8 byte order.
    for (const r of ["\u{1F600}", "b", "\uFF61", "B", "é", "a"]) await store.addRoom(r, null);
    assert.deepEqual((await store.listRooms()).map((r) => r.name), [
      "B",
      "a",
      "b",
      "é",
      "\uFF61",
      "\u{1F600}",
    ]);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: the change log records removals and new rooms, in order", async () => {
  const store = openSqliteStore(":memory:");
  try {
    assert.equal(await store.lastChange(), 0);
    assert.deepEqual(await store.changesSince(0), []);
    await store.addUser("alice", "h"); // adding a user is not a change others must react to
    await store.setPassword("alice", "h2");
    assert.equal(await store.lastChange(), 0);
    await store.addRoom("lobby", null);
    await store.removeUser("alice");
    await store.removeUser("nobody"); // nothing removed, nothing logged
    await store.removeRoom("lobby");
    const changes = await store.changesSince(0);
    assert.deepEqual(changes.map(({ kind, name }) => ({ kind, name })), [
      { kind: "room-added", name: "lobby" },
      { kind: "user-removed", name: "alice" },
      { kind: "room-removed", name: "lobby" },
    ]);
    assert.ok(changes.every((c, i) => i === 0 || c.seq > changes[i - 1].seq));
    assert.equal(await store.lastChange(), changes[2].seq);
    assert.deepEqual(await store.changesSince(changes[0].seq), changes.slice(1));
    assert.deepEqual(await store.changesSince(changes[2].seq), []);
  } finally {
    await store.close();
  }
});

Deno.test("sqlite store: another process's change is seen through the log", () =>
  withDir(async (dir) => {
    const path = `${dir}/p.db`;
    const server = openSqliteStore(path);
    const cli = openSqliteStore(path);
    try {
      await server.addUser("alice", "h");
      const seen = await server.lastChange();
      await cli.removeUser("alice");
      assert.deepEqual((await server.changesSince(seen)).map((c) => c.name), ["alice"]);
      assert.equal(await server.findUser("alice"), undefined);
    } finally {
      await cli.close();
      await server.close();
    }
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

Deno.test("sqlite store: calls after close fail with StoreError", async () => {
  const store = openSqliteStore(":memory:");
  await store.close();
  await assert.rejects(async () => await store.listUsers(), StoreError);
  await assert.rejects(async () => await store.addUser("a", "h"), StoreError);
  await store.close(); // closing twice is harmless
});
