// End to end over TCP: logins, failed logins, the kick, re-login, the login timeout, and an
// operator removing a user while the server runs (docs/protocol.md, Sessions).
import assert from "node:assert/strict";
import { runCli, waitFor } from "./helpers.ts";
import { e2eTest, sessionId, sleep, USERS, withServer } from "./e2e_support.ts";

e2eTest(
  "login: 0:<id> with positive ids, unique and increasing, also across re-logins",
  async () => {
    await withServer({}, async (s) => {
      const ids: number[] = [];
      const clients = [];
      for (const user of ["alice", "bob", "carol"]) {
        const client = await s.connect();
        clients.push(client);
        await client.send(`0:${user}:${USERS[user]}`);
        ids.push(sessionId(await client.next()));
      }
      // A re-login on the same connection and a kick from a new one both start new sessions.
      await clients[0].send(`0:alice:${USERS.alice}`);
      ids.push(sessionId(await clients[0].next()));
      const again = await s.connect();
      await again.send(`0:bob:${USERS.bob}`);
      ids.push(sessionId(await again.next()));
      await clients[1].expect("0:-1");
      for (let i = 1; i < ids.length; i++) {
        assert.ok(ids[i] > ids[i - 1], `ids must increase: ${ids.join(",")}`);
      }
      assert.ok(ids[0] >= 1);
    });
  },
);

// Three failures at most per server: past that, the per-address throttle slows every login from
// 127.0.0.1 (tested on its own below). The groups run on servers of their own, in parallel.
const BAD_LOGINS: readonly (readonly string[])[] = [
  ["0:mallory:whatever", "0:alice:builder", "0:alice:Wonderland"], // unknown user, wrong password
  ["0", "0:", "0:alice"], // missing fields
  ["0:alice:", "0::wonderland", "0:alice:wonderland:extra"], // empty password or name, extra ':'
  ["0:al ice:wonderland", "0:" + "a".repeat(33) + ":x", "0:ALICE:wonderland"], // bad or other name
];

e2eTest(
  "failed login (unknown user, wrong password, malformed 0:) → 0:-1, the connection stays open and can log in",
  async () => {
    await Promise.all(BAD_LOGINS.map((group) =>
      withServer({}, async (s) => {
        const client = await s.connect();
        for (const line of group) {
          await client.ask(line, "0:-1");
        }
        await client.send("1"); // still not logged in
        await client.expect("0:-1");
        await client.send("0:alice:wonderland");
        sessionId(await client.next());
        await client.ask("1", "1:");
        assert.equal(client.closed, false);
      })
    ));
  },
);

e2eTest(
  "a failed login on a logged-in connection ends its session: 0:-1 and 5: to its room",
  async () => {
    await withServer({}, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      await alice.ask("0:alice:wrong", "0:-1");
      await bob.expect("5:lobby:alice");
      await alice.ask("3:0:still there?", "0:-1");
      await bob.ask("1", "1:lobby,bob");
    });
  },
);

e2eTest("1, 2 and 3 lines before a login get 0:-1 and do nothing", async () => {
  await withServer({}, async (s) => {
    const bob = await s.login("bob");
    const anon = await s.connect();
    for (
      const line of ["1", "1:password", "2:lobby", "2:lobby:pw", "2", "2:", "3:0:hi", "3:1:hi"]
        .concat(["3:2:bob:hi", "3:2:bob", "3", "3:7:x"])
    ) {
      await anon.ask(line, "0:-1");
    }
    await bob.ask("1", "1:"); // no room was created
    await bob.expectNothing(100); // the 3:2 was not delivered
    await anon.send("0:carol:c4rol");
    sessionId(await anon.next());
  });
});

e2eTest(
  "kick: a second login of the same user ends the first session; the old connection stays open and can log in again",
  async () => {
    await withServer({}, async (s) => {
      const [first, bob] = await s.room("lobby", "alice", "bob");

      const second = await s.login("alice");
      await first.expect("0:-1");
      await bob.expect("5:lobby:alice");
      await bob.ask("1", "1:lobby,bob");
      // The new session starts outside any room.
      await second.ask("3:0:x", "9:3:not-in-room");
      // The old connection is open and logged out.
      await first.ask("3:0:x", "0:-1");
      assert.equal(first.closed, false);
      // It can log in again, which kicks the newer one in turn.
      await first.send("0:alice:wonderland");
      sessionId(await first.next());
      await second.expect("0:-1");
      await first.ask("2:lobby", "2:lobby:alice,bob");
      await bob.expect("4:lobby:alice");
      await second.expectNothing(100);
    });
  },
);

e2eTest(
  "re-login on the same connection leaves the room (5: to the others) and starts a new session",
  async () => {
    await withServer({}, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      await alice.send("0:alice:wonderland");
      sessionId(await alice.next());
      await bob.expect("5:lobby:alice");
      await alice.ask("3:0:x", "9:3:not-in-room");
      // As another user, too: the old user is gone, the new one is online.
      await alice.send("0:carol:c4rol");
      sessionId(await alice.next());
      await bob.send("3:2:alice:carol:hey");
      await alice.expect("3:hey");
      await bob.expect("9:3:not-online:alice");
    });
  },
);

e2eTest(
  "closing the connection ends the session: 5: to the room, and the user is offline",
  async () => {
    await withServer({}, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      await alice.close();
      await bob.expect("5:lobby:alice");
      await bob.ask("3:2:alice:hi", "9:3:not-online:alice");
    });
  },
);

/** The login timeout of these tests: long enough that a busy machine cannot outrun it. */
const TIMEOUT_MS = 1000;
const TIMEOUT = ["--login-timeout-ms", String(TIMEOUT_MS)];
/** What a close may come early by, measured from the client (timers and clocks are coarse). */
const SLACK_MS = 50;

e2eTest(
  "login timeout: an idle connection without a session is closed, even if it sends 1/2/3 lines",
  async () => {
    await withServer({ args: TIMEOUT }, async (s) => {
      const started = Date.now();
      const idle = await s.connect();
      const chatty = await s.connect();
      // chatty sends a line every 20 ms until the server closes it: lines do not restart the
      // clock (if they did, this would time out).
      await waitFor(async () => {
        if (!chatty.closed) await chatty.send("1").catch(() => {});
        return chatty.closed;
      }, "the close of a connection that sends lines but never logs in");
      assert.ok(chatty.pending.length > 0 && chatty.pending.every((line) => line === "0:-1"));
      await idle.expectClosed(10_000);
      const took = Date.now() - started;
      assert.ok(took >= TIMEOUT_MS - SLACK_MS, `closed after ${took} ms, before the timeout`);
    });
  },
);

e2eTest("login timeout: a logged-in connection is not closed", async () => {
  await withServer({ args: TIMEOUT }, async (s) => {
    const alice = await s.login("alice");
    // A connection opened after alice's is closed by the timeout: alice's clock, had it kept
    // running, would have run out first.
    const anon = await s.connect();
    await anon.expectClosed(10_000);
    await alice.ask("1", "1:");
    assert.equal(alice.closed, false);
  });
});

e2eTest("login timeout: the clock restarts after a failed login", async () => {
  await withServer({ args: TIMEOUT }, async (s) => {
    const client = await s.connect();
    // Half the first clock runs out (time that must pass, not a wait for an event): a clock
    // that did not restart would then close the connection half a timeout after the failure.
    await sleep(TIMEOUT_MS / 2);
    const sent = Date.now();
    await client.ask("0:alice:wrong", "0:-1");
    await client.ask("1", "0:-1");
    await client.expectClosed(10_000);
    const took = Date.now() - sent;
    assert.ok(took >= TIMEOUT_MS - SLACK_MS, `closed ${took} ms after the failed login`);
  });
});

e2eTest("login timeout: the clock restarts after a kick", async () => {
  await withServer({ args: TIMEOUT }, async (s) => {
    const first = await s.login("alice");
    await sleep(TIMEOUT_MS / 2); // logged in: no clock; one kept from the connect would run out early
    const sent = Date.now();
    const second = await s.login("alice");
    await first.expect("0:-1");
    await first.ask("1", "0:-1");
    await first.expectClosed(10_000);
    const took = Date.now() - sent;
    assert.ok(took >= TIMEOUT_MS - SLACK_MS, `closed ${took} ms after the kick`);
    await second.ask("1", "1:");
  });
});

e2eTest(
  "an operator removing a user (--remove-user) while the server runs logs it out within seconds",
  async () => {
    await withServer({}, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      const result = await runCli(["--db", s.server.db, "--remove-user", "alice"]);
      const removedAt = Date.now();
      assert.equal(result.code, 0, result.stderr);
      // The server looks for removed users every second; the margin is for a busy machine.
      await alice.expect("0:-1", 3000);
      const took = Date.now() - removedAt;
      assert.ok(took < 3000, `logged out ${took} ms after the removal`);
      await bob.expect("5:lobby:alice");
      // The connection stays open, and the user cannot log in any more.
      await alice.ask("0:alice:wonderland", "0:-1");
      await bob.ask("3:2:alice:hi", "9:3:not-online:alice");
    });
  },
);

e2eTest("repeated failed logins are slowed down, per connection and per address", async () => {
  await withServer({}, async (s) => {
    const client = await s.connect();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const sent = Date.now();
      await client.ask("0:alice:wrong", "0:-1", 10_000);
      times.push(Date.now() - sent);
    }
    // The first failures are free (tests/login_throttle_test.ts pins that with its own clock;
    // a wall-clock bound on them would only measure the machine). The fifth waits 250 ms.
    assert.ok(times[4] >= 200, `the fifth failed login was not slowed: ${times}`);
    // The slowdown is per address: a fresh connection from the same address is slowed as well.
    const other = await s.connect();
    const sent = Date.now();
    await other.send("0:bob:builder");
    sessionId(await other.next(10_000));
    assert.ok(Date.now() - sent >= 200, "a login from the same address was not slowed");
  });
});
