// The Store contract (lib/store/store.ts), one suite run against both implementations: each case is a
// test of its own on a SQLite file in a temporary directory, and a step of one test on a
// throwaway PostgreSQL, with a fresh database a case. What only one of them has (file modes,
// migrations, unreachable servers) is in sqlite_store_test.ts and postgres_store_test.ts.
import assert from "node:assert/strict";
import { openPostgresStore } from "../lib/store/postgres_store.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { type Store, StoreError } from "../lib/store/store.ts";
import { startPostgres } from "./pg_support.ts";
import { tempDir } from "./helpers.ts";

/** One empty database of the implementation under test. */
interface Database {
  /** Opens a store on it; each call is another handle, as another process would have. */
  open(): Promise<Store>;
}

const CASES: Record<string, (db: Database) => Promise<void>> = {
  "rooms: makers, removal by maker and by last use, in one change each": async (db) => {
    const store = await db.open();
    await store.addRoom("a1", null, "alice");
    await store.addRoom("m2", "h", "mallory");
    await store.addRoom("m1", null, "mallory");
    await store.addRoom("old", null);
    const seq = await store.lastChange();
    assert.deepEqual(await store.removeRoomsBy("mallory"), ["m1", "m2"]);
    assert.deepEqual(await store.removeRoomsBy("mallory"), []);
    assert.deepEqual(
      (await store.changesSince(seq)).map((c) => [c.kind, c.name]),
      [["room-removed", "m1"], ["room-removed", "m2"]],
    );
    const later = Date.now() + 60_000;
    await store.touchRooms(["a1", "gone"], later);
    await store.touchRooms(["a1"], later - 30_000); // never moves back
    await store.touchRooms([], later);
    assert.deepEqual(await store.removeRoomsUnusedSince(later - 1000), ["old"]);
    assert.deepEqual(await store.listRooms(), [{ name: "a1", passwordHash: null, maker: "alice" }]);
    assert.deepEqual(await store.removeRoomsUnusedSince(later + 1), ["a1"]);
  },

  "users: added, found, listed sorted in byte order, their password replaced, removed": async (
    db,
  ) => {
    const store = await db.open();
    assert.deepEqual(await store.listUsers(), []);
    for (const u of ["carol", "alice", "Zed", "bob"]) await store.addUser(u, `h-${u}`);
    assert.deepEqual(await store.listUsers(), ["Zed", "alice", "bob", "carol"]);
    assert.deepEqual(await store.findUser("alice"), { name: "alice", passwordHash: "h-alice" });
    assert.equal(await store.findUser("ALICE"), undefined, "names are case-sensitive");
    assert.equal(await store.findUser("dave"), undefined);
    assert.equal(await store.setPassword("alice", "h2"), true);
    assert.equal((await store.findUser("alice"))?.passwordHash, "h2");
    assert.equal(await store.removeUser("alice"), true);
    assert.equal(await store.findUser("alice"), undefined);
    assert.deepEqual(await store.listUsers(), ["Zed", "bob", "carol"]);
  },

  "a re-hash replaces a user's hash only while it is still the old one": async (db) => {
    const store = await db.open();
    await store.addUser("alice", "h-old");
    assert.equal(await store.upgradePasswordHash("alice", "h-old", "h-new"), true);
    assert.equal((await store.findUser("alice"))?.passwordHash, "h-new");
    // A password set meanwhile (the admin CLI) is not overwritten by a late re-hash.
    assert.equal(await store.setPassword("alice", "h-set"), true);
    assert.equal(await store.upgradePasswordHash("alice", "h-new", "h-newer"), false);
    assert.equal((await store.findUser("alice"))?.passwordHash, "h-set");
    assert.equal(await store.upgradePasswordHash("bob", "h", "h2"), false);
  },

  "remove and set-password report whether there was such a name": async (db) => {
    const store = await db.open();
    await store.addUser("alice", "h1");
    assert.equal(await store.setPassword("bob", "h"), false);
    assert.equal(await store.removeUser("alice"), true);
    assert.equal(await store.removeUser("alice"), false);
    assert.equal(await store.setPassword("alice", "h"), false);
    await store.addRoom("lobby", null);
    assert.equal(await store.removeRoom("lobby"), true);
    assert.equal(await store.removeRoom("lobby"), false);
    assert.deepEqual(await store.listRooms(), []);
  },

  "a taken name is StoreError code duplicate, and nothing changes": async (db) => {
    const store = await db.open();
    const duplicate = (e: unknown) => e instanceof StoreError && e.code === "duplicate";
    await store.addUser("alice", "h1");
    await assert.rejects(async () => await store.addUser("alice", "h2"), duplicate);
    assert.equal((await store.findUser("alice"))?.passwordHash, "h1");
    await store.addRoom("lobby", null);
    const before = await store.lastChange();
    await assert.rejects(async () => await store.addRoom("lobby", "h"), duplicate);
    assert.deepEqual(await store.listRooms(), [{ name: "lobby", passwordHash: null, maker: null }]);
    assert.equal(await store.lastChange(), before, "a failed write logs no change");
    // A user and a room may share a name: they are different things.
    await store.addRoom("alice", null);
  },

  "rooms: found, listed in byte order of their UTF-8 names, removed": async (db) => {
    const store = await db.open();
    assert.deepEqual(await store.listRooms(), []);
    // U+1F600 sorts before U+FF61 in UTF-16 but after it in UTF-8 byte order; uppercase before
    // lowercase, whatever the database's locale would say.
    const names = ["\u{1F600}", "b", "\uFF61", "B", "é", "a", "Zoo", "caf\u00e9 ☕"];
    for (const name of names) await store.addRoom(name, name === "b" ? "h-b" : null);
    const listed = await store.listRooms();
    assert.deepEqual(listed.map((r) => r.name), [
      "B",
      "Zoo",
      "a",
      "b",
      "caf\u00e9 ☕",
      "é",
      "\uFF61",
      "\u{1F600}",
    ]);
    assert.deepEqual(listed[3], { name: "b", passwordHash: "h-b", maker: null });
    assert.deepEqual(await store.findRoom("é"), { name: "é", passwordHash: null, maker: null });
    assert.deepEqual(await store.findRoom("b"), { name: "b", passwordHash: "h-b", maker: null });
    assert.equal(await store.findRoom("e"), undefined, "no normalization or folding");
    assert.equal(await store.findRoom("zoo"), undefined);
    assert.equal(await store.removeRoom("é"), true);
    assert.equal(await store.findRoom("é"), undefined);
    assert.equal((await store.listRooms()).length, names.length - 1);
  },

  "the change log records removals and new rooms, in order": async (db) => {
    const store = await db.open();
    assert.equal(await store.lastChange(), 0);
    assert.deepEqual(await store.changesSince(0), []);
    await store.addUser("alice", "h"); // adding a user is not a change others must react to
    await store.setPassword("alice", "h2");
    assert.equal(await store.lastChange(), 0);
    await store.addRoom("lobby", null);
    await store.removeUser("alice");
    await store.removeUser("nobody"); // nothing removed, nothing logged
    await store.removeRoom("nothing");
    await store.removeRoom("lobby");
    const changes = await store.changesSince(0);
    assert.deepEqual(changes.map(({ kind, name }) => ({ kind, name })), [
      { kind: "room-added", name: "lobby" },
      { kind: "user-removed", name: "alice" },
      { kind: "room-removed", name: "lobby" },
    ]);
    assert.ok(changes.every((c) => typeof c.seq === "number" && c.seq > 0));
    assert.ok(changes.every((c, i) => i === 0 || c.seq > changes[i - 1].seq));
    assert.equal(await store.lastChange(), changes[2].seq);
    assert.deepEqual(await store.changesSince(changes[0].seq), changes.slice(1));
    assert.deepEqual(await store.changesSince(changes[2].seq), []);
  },

  "another handle's change is seen through the log": async (db) => {
    const server = await db.open();
    const cli = await db.open();
    await server.addUser("alice", "h");
    const seen = await server.lastChange();
    await cli.removeUser("alice");
    await cli.addRoom("new", "h-new");
    const changes = await server.changesSince(seen);
    assert.deepEqual(changes.map(({ kind, name }) => ({ kind, name })), [
      { kind: "user-removed", name: "alice" },
      { kind: "room-added", name: "new" },
    ]);
    assert.equal(await server.findUser("alice"), undefined);
    assert.deepEqual(await server.findRoom("new"), {
      name: "new",
      passwordHash: "h-new",
      maker: null,
    });
  },

  "users and rooms survive closing and reopening": async (db) => {
    const store = await db.open();
    await store.addUser("alice", "scrypt$hash-a");
    await store.addUser("bob", "scrypt$hash-b");
    await store.addRoom("lobby", null);
    await store.addRoom("vault", "scrypt$hash-v");
    const seq = await store.lastChange();
    await store.close();
    const again = await db.open();
    assert.deepEqual(await again.listUsers(), ["alice", "bob"]);
    assert.deepEqual(await again.findUser("bob"), { name: "bob", passwordHash: "scrypt$hash-b" });
    assert.deepEqual(await again.listRooms(), [
      { name: "lobby", passwordHash: null, maker: null },
      { name: "vault", passwordHash: "scrypt$hash-v", maker: null },
    ]);
    assert.equal(await again.lastChange(), seq);
  },

  "resume tokens: one a user, the newest wins, gone with a password change or the user": async (
    db,
  ) => {
    const store = await db.open();
    await store.addUser("alice", "h");
    await store.addUser("bob", "h");
    const at = 1_700_000_000_123;
    await store.saveResumeTokens([]);
    // One batch: the last of a user's wins; a user that does not exist is skipped, not an error.
    await store.saveResumeTokens([
      { user: "alice", hash: "a1", issuedAt: at },
      { user: "ghost", hash: "g1", issuedAt: at },
      { user: "bob", hash: "b1", issuedAt: at + 1 },
      { user: "alice", hash: "a2", issuedAt: at + 2 },
    ]);
    const found = async (users: string[]) =>
      (await store.findResumeTokens(users)).sort((a, b) => a.user < b.user ? -1 : 1);
    assert.deepEqual(await found(["alice", "bob", "ghost", "carol"]), [
      { user: "alice", hash: "a2", issuedAt: at + 2 },
      { user: "bob", hash: "b1", issuedAt: at + 1 },
    ]);
    assert.deepEqual(await store.findResumeTokens([]), []);
    // Another handle (another node, or after a restart) reads the same rows.
    const other = await db.open();
    await other.saveResumeTokens([{ user: "bob", hash: "b2", issuedAt: at + 3 }]);
    assert.deepEqual(await found(["bob"]), [{ user: "bob", hash: "b2", issuedAt: at + 3 }]);
    // A login's re-hash is no password change; setting the password and removing the user are.
    await store.upgradePasswordHash("alice", "h", "h-upgraded");
    assert.equal((await found(["alice"])).length, 1);
    await store.setPassword("alice", "h2");
    assert.deepEqual(await found(["alice"]), []);
    await store.removeUser("bob");
    await store.addUser("bob", "h"); // a new bob does not inherit the old one's token
    assert.deepEqual(await found(["alice", "bob"]), []);
  },

  "calls after close fail with StoreError; closing twice is harmless": async (db) => {
    const store = await db.open();
    await store.close();
    await assert.rejects(async () => await store.listUsers(), StoreError);
    await assert.rejects(async () => await store.addUser("a", "h"), StoreError);
    await assert.rejects(async () => await store.changesSince(0), StoreError);
    await store.close();
  },
};

/** Runs `fn` on `open`'s database and closes every store it opened, even when it fails. */
async function runCase(
  fn: (db: Database) => Promise<void>,
  open: () => Promise<Store>,
): Promise<void> {
  const opened: Store[] = [];
  try {
    await fn({
      open: async () => {
        const store = await open();
        opened.push(store);
        return store;
      },
    });
  } finally {
    for (const store of opened) await store.close();
  }
}

for (const [name, fn] of Object.entries(CASES)) {
  Deno.test(`store (sqlite): ${name}`, async () => {
    const temp = await tempDir();
    try {
      await runCase(fn, () => Promise.resolve(openSqliteStore(`${temp.dir}/p.db`)));
    } finally {
      await temp.remove();
    }
  });
}

Deno.test("store (postgres): every case, each on a fresh database", async (t) => {
  const pg = await startPostgres();
  try {
    for (const [name, fn] of Object.entries(CASES)) {
      await t.step(name, async () => {
        const url = await pg.createDatabase();
        await runCase(fn, () => openPostgresStore(url));
      });
    }
  } finally {
    await pg.stop();
  }
});
