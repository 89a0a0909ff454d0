// One account takes the room cap (issue "Hostile internet, round two", finding 4): an ordinary
// user made 10,000 rooms, after which nobody could make one, across restarts; the operator could
// remove them only one name per run; and every `1` reply became 650 KB, which a client asked for
// in a loop. Now each user has a share of the rooms (--max-rooms-per-user), the operator removes
// rooms in bulk (--remove-rooms-by, --remove-idle-rooms), and reply bytes count toward the
// client's flood budget.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import {
  runCli,
  startServer,
  tempDir,
  TEST_HASH_COST,
  TestClient,
  type TestServer,
  waitFor,
} from "./helpers.ts";

const USERS = { mallory: "pw", alice: "pw", bob: "pw" };
const COST = ["--hash-cost", String(TEST_HASH_COST)];

/** Runs `body` with a database path in a fresh temporary directory. */
async function withDb(body: (db: string) => Promise<void>): Promise<void> {
  const temp = await tempDir();
  try {
    await body(`${temp.dir}/parley.db`);
  } finally {
    await temp.remove();
  }
}

/** A server on a fresh database holding the test users; stopped (and the file gone) after. */
async function withServer(body: (server: TestServer, db: string) => Promise<void>): Promise<void> {
  await withDb(async (db) => {
    const server = await startServer({ db, users: USERS });
    try {
      await body(server, db);
    } finally {
      await server.stop();
    }
  });
}

/** Writes straight into the SQLite file: many rooms in one transaction, or an old last use. */
function sql(db: string, work: (sqlite: DatabaseSync) => void): void {
  const sqlite = new DatabaseSync(db);
  try {
    sqlite.exec("BEGIN IMMEDIATE");
    work(sqlite);
    sqlite.exec("COMMIT");
  } finally {
    sqlite.close();
  }
}

function lastUsed(db: string, room: string): number {
  const sqlite = new DatabaseSync(db, { readOnly: true });
  try {
    const row = sqlite.prepare("SELECT last_used_at AS at FROM rooms WHERE name = ?").get(room);
    return Number((row as { at: number }).at);
  } finally {
    sqlite.close();
  }
}

Deno.test("hostile rooms: a user past its share gets 9:2:room-limit; others still create; it survives a restart", async () => {
  await withDb(async (db) => {
    const args = ["--max-rooms-per-user", "3"];
    let server = await startServer({ db, users: USERS, args });
    try {
      const mallory = await TestClient.login(server.port, "mallory", "pw");
      for (const room of ["m1", "m2", "m3"]) await mallory.ask(`2:${room}`, `2:${room}:mallory`);
      await mallory.ask("2:m4", "9:2:room-limit");
      await mallory.ask("2:m5:secret", "9:2:room-limit");
      await mallory.ask("2:m1", "2:m1:mallory", 5000); // existing rooms stay joinable
      const alice = await TestClient.login(server.port, "alice", "pw");
      await alice.ask("2:a1", "2:a1:alice");
      await alice.send("1");
      assert.equal(await alice.next(), "1:a1,alice:m1,mallory:m2:m3");
      await mallory.close();
      await alice.close();
      await server.stop();
      // The makers are in the store: after a restart mallory's share is still used up.
      server = await startServer({ db, args });
      const again = await TestClient.login(server.port, "mallory", "pw");
      await again.ask("2:m4", "9:2:room-limit");
      const bob = await TestClient.login(server.port, "bob", "pw");
      await bob.ask("2:b1", "2:b1:bob");
      await again.close();
      await bob.close();
    } finally {
      await server.stop();
    }
  });
});

Deno.test("hostile rooms: --remove-rooms-by and --remove-idle-rooms remove the right rooms; members are moved out", async () => {
  await withServer(async (server, db) => {
    const mallory = await TestClient.login(server.port, "mallory", "pw");
    await mallory.ask("2:spam2", "2:spam2:mallory");
    await mallory.ask("2:spam1", "2:spam1:mallory");
    const alice = await TestClient.login(server.port, "alice", "pw");
    await alice.ask("2:keep", "2:keep:alice");
    await alice.ask("2:spam1", "2:spam1:alice,mallory");
    await mallory.expect("4:spam1:alice");
    const bob = await TestClient.login(server.port, "bob", "pw");
    await bob.ask("2:old", "2:old:bob");
    await bob.ask("2:fresh", "2:fresh:bob");

    const byMallory = await runCli(["--db", db, ...COST, "--remove-rooms-by", "mallory"]);
    assert.equal(byMallory.code, 0, byMallory.stderr);
    assert.equal(byMallory.stdout.trim(), "removed 2 rooms made by mallory");
    // The running server moves spam1's members out: a 5: line for every member.
    const fives = [await alice.next(), await alice.next()].sort();
    assert.deepEqual(fives, ["5:spam1:alice", "5:spam1:mallory"]);
    await alice.send("1");
    assert.equal(await alice.next(), "1:fresh,bob:keep:old");

    // "old" was last used three hours ago; "fresh" and "keep" just now.
    sql(db, (sqlite) => {
      sqlite.prepare("UPDATE rooms SET last_used_at = ? WHERE name = 'old'")
        .run(Date.now() - 3 * 3_600_000);
    });
    const idle = await runCli(["--db", db, ...COST, "--remove-idle-rooms", "2h"]);
    assert.equal(idle.code, 0, idle.stderr);
    assert.equal(idle.stdout.trim(), "removed 1 room unused for 2h");
    await waitFor(async () => {
      await alice.send("1");
      return await alice.next() === "1:fresh,bob:keep";
    }, "the idle room to leave the list");
    assert.deepEqual(
      (await openSqliteStore(db).listRooms()).map((r) => [r.name, r.maker]),
      [["fresh", "bob"], ["keep", "alice"]],
    );
    // A duration under an hour could catch a room in use: refused, nothing removed.
    const tooShort = await runCli(["--db", db, ...COST, "--remove-idle-rooms", "10m"]);
    assert.equal(tooShort.code, 1);
    assert.match(tooShort.stderr, /--remove-idle-rooms needs at least 1h/);
    const badUser = await runCli(["--db", db, ...COST, "--remove-rooms-by", "no body"]);
    assert.equal(badUser.code, 1);
    for (const client of [mallory, alice, bob]) await client.close();
  });
});

Deno.test("hostile rooms: a room's use is written at shutdown, once for all rooms", async () => {
  await withServer(async (server, db) => {
    const alice = await TestClient.login(server.port, "alice", "pw");
    await alice.ask("2:lobby", "2:lobby:alice");
    await alice.ask("2:den", "2:den:alice"); // lobby is left empty, but was used
    const bob = await TestClient.login(server.port, "bob", "pw");
    await bob.ask("2:attic", "2:attic:bob");
    await bob.ask("2:den", "2:den:alice,bob");
    const old = Date.now() - 5 * 3_600_000;
    sql(db, (sqlite) => sqlite.prepare("UPDATE rooms SET last_used_at = ?").run(old));
    const stopped = Date.now();
    for (const client of [alice, bob]) await client.close();
    await server.stop();
    // Joined since the last record (lobby, den; attic too): all recorded when it stopped.
    for (const room of ["lobby", "den", "attic"]) {
      assert.ok(lastUsed(db, room) >= stopped - 1000, `${room}: ${lastUsed(db, room)}`);
    }
  });
});

Deno.test("hostile rooms: `1` in a loop against a 650 KB room list gets at most about 1 MB/s", async () => {
  await withDb(async (db) => {
    await openSqliteStore(db).close(); // creates the schema
    sql(db, (sqlite) => {
      const add = sqlite.prepare(
        "INSERT INTO rooms (name, created_at, maker, last_used_at) VALUES (?, 0, 'mallory', 0)",
      );
      for (let i = 0; i < 10_000; i++) {
        add.run(`room-${String(i).padStart(5, "0")}-${"x".repeat(53)}`);
      }
    });
    const server = await startServer({ db, users: USERS });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(new TextEncoder().encode("0:mallory:pw\n"));
      let received = 0;
      let replies = -1; // the login's 0:<id> is not one
      let lists = 0;
      let refused = 0;
      let open = true;
      let wake = () => {};
      const reading = (async () => {
        const buffer = new Uint8Array(256 * 1024);
        let atLineStart = true;
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            received += n;
            for (let i = 0; i < n; i++) {
              if (atLineStart && buffer[i] === 0x31) lists++; // a line starting "1"
              if (atLineStart && buffer[i] === 0x39) refused++; // "9:1:rate-limited"
              atLineStart = buffer[i] === 0x0a;
              if (atLineStart) replies++;
            }
            wake();
          }
        } catch { /* reset */ }
        open = false;
        wake();
      })();
      // Four requests in flight, as in the report, for a few seconds; after a refusal the client
      // pauses 10 ms, so that it is held back by the budget rather than closed for flooding.
      const started = performance.now();
      const runMs = 4000;
      const line = new TextEncoder().encode("1\n");
      let sent = 0;
      let refusedBefore = 0;
      const deadline = setTimeout(() => wake(), runMs);
      while (open && performance.now() - started < runMs) {
        if (refused > refusedBefore) {
          refusedBefore = refused;
          await new Promise((resolve) => setTimeout(resolve, 10));
        } else if (sent - replies < 4) {
          sent++;
          await conn.write(line).catch(() => open = false);
        } else {
          await new Promise<void>((resolve) => wake = resolve);
        }
      }
      clearTimeout(deadline);
      const elapsed = (performance.now() - started) / 1000;
      try {
        conn.close();
      } catch { /* closed */ }
      await reading;
      const perSecond = received / elapsed;
      console.log(
        `\`1\` loop: ${received} bytes in ${elapsed.toFixed(1)} s, ${lists} lists, ` +
          `${refused} refused`,
      );
      assert.ok(lists >= 2, "not even two room lists came back");
      assert.ok(refused > 0, "never rate-limited");
      assert.ok(elapsed >= 3.5, `the connection ended after ${elapsed} s`);
      // The budget: a 1 MiB burst (plus the one reply that overdrew it) and 512 KiB/s; asserted
      // with room to spare as "about 1 MB/s" over the whole run plus 2 MB.
      assert.ok(received < elapsed * 1_000_000 + 2_000_000, `${perSecond.toFixed(0)} bytes/s`);
    } finally {
      await server.stop();
    }
  });
});
