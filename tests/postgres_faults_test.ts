// A PostgreSQL outage under a running node: new logins fail with 0:-1 in bounded time and the
// log says why (naming the database), sessions already in keep chatting, and once PostgreSQL is
// back the pool reconnects by itself and logins work again, with no restart of Parley.
import assert from "node:assert/strict";
import { TestClient } from "./helpers.ts";
import { USERS, withServer } from "./e2e_support.ts";
import { startPostgres } from "./pg_support.ts";

/** The longest a login may take to fail while PostgreSQL is down. */
const FAIL_WITHIN_MS = 5000;
/** The longest logins may take to work again once PostgreSQL is back. */
const RECOVER_WITHIN_MS = 10_000;

/** Logs `user` in on a new connection and returns the reply line and how long it took. */
async function tryLogin(port: number, user: string): Promise<{ reply: string; ms: number }> {
  const client = await TestClient.connect(port);
  try {
    const started = performance.now();
    await client.send(`0:${user}:${USERS[user]}`);
    const reply = await client.next(FAIL_WITHIN_MS + 2000);
    return { reply, ms: performance.now() - started };
  } finally {
    await client.close();
  }
}

Deno.test("PostgreSQL down: logins fail with 0:-1 and a clear log line, sessions keep chatting, logins work again once it is back", async () => {
  const pg = await startPostgres();
  try {
    const db = await pg.createDatabase();
    await withServer({ db }, async (s) => {
      const alice = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await alice.expect("4:lobby:bob");
      await alice.send("3:1:before");
      await bob.expect("3:before");

      await pg.pause(); // PostgreSQL's fast shutdown: every connection of the pool is cut

      const down = await tryLogin(s.port, "carol");
      assert.equal(down.reply, "0:-1");
      assert.ok(down.ms < FAIL_WITHIN_MS, `a login took ${down.ms} ms to fail`);
      const logged = s.server.log().split("\n").find((line) =>
        line.includes("server-error") && line.includes("cannot read user carol")
      );
      assert.ok(logged, `no server-error line for the failed login:\n${s.server.log()}`);
      assert.ok(logged.includes(`postgres://127.0.0.1:${pg.port}/`), logged);

      // Those logged in chat on: rooms and sessions live in the node, not in the database.
      await alice.send("3:1:during");
      await bob.expect("3:during");
      await bob.send("3:2:alice:direct");
      await alice.expect("3:direct");

      await pg.resume();
      const back = performance.now();
      let reply = "";
      while (performance.now() - back < RECOVER_WITHIN_MS) {
        reply = (await tryLogin(s.port, "carol")).reply;
        if (reply !== "0:-1") break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const recoveredMs = performance.now() - back;
      assert.match(reply, /^0:[1-9]\d*$/, `no login within ${RECOVER_WITHIN_MS} ms of the restart`);
      console.log(
        `login failed in ${down.ms.toFixed(0)} ms while down; worked again ` +
          `${recoveredMs.toFixed(0)} ms after PostgreSQL was back; logged: ${logged}`,
      );
      await alice.send("3:1:after");
      await bob.expect("3:after");
    });
  } finally {
    await pg.stop();
  }
});
