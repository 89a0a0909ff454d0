// Unit tests of what is PostgreSQL's own in lib/store/postgres_store.ts (migrations and nodes starting
// together, a newer or non-UTF-8 database, unreachable servers, the change log under concurrent
// writers, an outage and the pool's recovery), on one throwaway PostgreSQL with a fresh database a
// step. The Store contract both stores share is tested in store_test.ts.
import assert from "node:assert/strict";
import postgres from "postgres";
import { openPostgresStore, SCHEMA_VERSION } from "../lib/store/postgres_store.ts";
import { type Change, StoreError } from "../lib/store/store.ts";
import { startPostgres, type TestPostgres } from "./pg_support.ts";

/** Runs `fn` with a plain client on `url` (to look at or set up what the store does not). */
async function withClient<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

function migrations(url: string): Promise<number[]> {
  return withClient(url, async (sql) => {
    const rows = await sql`SELECT version FROM schema_migrations ORDER BY version`;
    return rows.map((r) => Number(r.version));
  });
}

/** A loopback port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Asserts `error` is a StoreError `io` naming `label`, with no trace of the password. */
function assertNamesDatabase(error: unknown, label: string, password = "s3cret"): true {
  assert.ok(error instanceof StoreError, `${error}`);
  assert.equal(error.code, "io");
  assert.ok(error.message.includes(label), error.message);
  assert.ok(!error.message.includes(password), `the password leaked: ${error.message}`);
  return true;
}

const versions = Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1);

const STEPS: Record<string, (pg: TestPostgres) => Promise<void>> = {
  "a new database gets the schema and one migrations row per version; reopening adds none": async (
    pg,
  ) => {
    const url = await pg.createDatabase();
    assert.ok(SCHEMA_VERSION >= 1);
    await (await openPostgresStore(url)).close();
    assert.deepEqual(await migrations(url), versions);
    await (await openPostgresStore(url)).close();
    assert.deepEqual(await migrations(url), versions);
  },

  "nodes opening a new database at once: one migrates, the others wait and find it done": async (
    pg,
  ) => {
    const url = await pg.createDatabase();
    const stores = await Promise.all([1, 2, 3, 4].map(() => openPostgresStore(url)));
    try {
      assert.deepEqual(await migrations(url), versions);
      await stores[0].addUser("alice", "h");
      assert.deepEqual(await stores[3].listUsers(), ["alice"]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  },

  "a newer schema than this build knows is refused, the database untouched": async (pg) => {
    const url = await pg.createDatabase();
    await (await openPostgresStore(url)).close();
    await withClient(
      url,
      (sql) => sql`INSERT INTO schema_migrations (version) VALUES (${SCHEMA_VERSION + 1})`,
    );
    await assert.rejects(() => openPostgresStore(url), (e: unknown) => {
      assertNamesDatabase(e, `127.0.0.1:${pg.port}/`);
      assert.match((e as Error).message, /newer/);
      return true;
    });
    assert.equal((await migrations(url)).at(-1), SCHEMA_VERSION + 1);
  },

  "a database that is not UTF-8 is refused, naming the encoding": async (pg) => {
    await withClient(
      pg.url(),
      (sql) =>
        sql`CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
    );
    await assert.rejects(() => openPostgresStore(pg.url("ascii")), (e: unknown) => {
      assertNamesDatabase(e, `127.0.0.1:${pg.port}/ascii`);
      assert.match((e as Error).message, /SQL_ASCII/);
      return true;
    });
  },

  "no server on the port: StoreError io naming host:port/db without the password, at once": async (
    _pg,
  ) => {
    const port = closedPort();
    const started = performance.now();
    await assert.rejects(
      () => openPostgresStore(`postgres://parley:s3cret@127.0.0.1:${port}/parley`),
      (e: unknown) => {
        assertNamesDatabase(e, `postgres://127.0.0.1:${port}/parley`);
        assert.match((e as Error).message, /connection refused/);
        return true;
      },
    );
    assert.ok(performance.now() - started < 5000);
  },

  "a database that does not exist, or a URL without a user: refused, naming the database": async (
    pg,
  ) => {
    const missing = pg.url("nope").replace("postgres@", "postgres:s3cret@");
    await assert.rejects(() => openPostgresStore(missing), (e: unknown) => {
      assertNamesDatabase(e, `postgres://127.0.0.1:${pg.port}/nope`);
      assert.match((e as Error).message, /does not exist/);
      return true;
    });
    await assert.rejects(
      () => openPostgresStore(`postgres://:s3cret@127.0.0.1:${pg.port}/parley`),
      (e: unknown) => assertNamesDatabase(e, "names no user"),
    );
    await assert.rejects(
      () => openPostgresStore("postgres://parley:s3cret@[bad/parley"),
      (e: unknown) => assertNamesDatabase(e, "not a valid postgres:// URL"),
    );
  },

  "a reader following the change log while two nodes write never skips a change": async (pg) => {
    const url = await pg.createDatabase();
    const [a, b, reader] = await Promise.all([1, 2, 3].map(() => openPostgresStore(url)));
    try {
      const seen: Change[] = [];
      let writing = true;
      const follow = (async () => {
        // What a server does every 250 ms, as fast as it can: a change committed late with a
        // smaller seq than one already seen would be skipped for good.
        while (writing) {
          seen.push(...await reader.changesSince(seen.at(-1)?.seq ?? 0));
        }
        seen.push(...await reader.changesSince(seen.at(-1)?.seq ?? 0));
      })();
      await Promise.all(
        [a, b].map((store, i) =>
          Promise.all(Array.from({ length: 40 }, (_, n) => store.addRoom(`r${i}-${n}`, null)))
        ),
      );
      writing = false;
      await follow;
      const all = await reader.changesSince(0);
      assert.equal(all.length, 80);
      assert.deepEqual(seen, all);
    } finally {
      await Promise.all([a, b, reader].map((s) => s.close()));
    }
  },

  "an outage: calls fail quickly naming the database, and work again once it is back": async (
    pg,
  ) => {
    const url = await pg.createDatabase();
    const store = await openPostgresStore(url);
    try {
      await store.addUser("alice", "h");
      await pg.pause();
      const started = performance.now();
      await assert.rejects(
        () => store.findUser("alice"),
        (e: unknown) => assertNamesDatabase(e, `postgres://127.0.0.1:${pg.port}/test_`),
      );
      assert.ok(performance.now() - started < 5000, "a dead server fails a call in bounded time");
      await pg.resume();
      // The pool reconnects by itself: no reopening.
      assert.deepEqual(await store.findUser("alice"), { name: "alice", passwordHash: "h" });
    } finally {
      await store.close();
    }
  },

  "a frozen server (connections open, no answers): calls fail within bounds, then work again":
    async (pg) => {
      const url = await pg.createDatabase();
      const store = await openPostgresStore(url);
      try {
        await store.addUser("alice", "h"); // a connection of the pool is open and idle now
        pg.freeze(true);
        const started = performance.now();
        try {
          await assert.rejects(() => store.findUser("alice"), (e: unknown) => {
            assertNamesDatabase(e, `postgres://127.0.0.1:${pg.port}/test_`);
            assert.match((e as Error).message, /no answer within/);
            return true;
          });
        } finally {
          pg.freeze(false);
        }
        const ms = performance.now() - started;
        assert.ok(ms < 5000, `a call to a frozen server took ${ms} ms to fail`);
        assert.deepEqual(await store.findUser("alice"), { name: "alice", passwordHash: "h" });
      } finally {
        await store.close();
      }
    },
};

Deno.test("postgres store", async (t) => {
  const pg = await startPostgres();
  try {
    for (const [name, fn] of Object.entries(STEPS)) await t.step(name, () => fn(pg));
  } finally {
    await pg.stop();
  }
});
