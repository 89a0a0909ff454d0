// End to end over TCP: logins, failed logins, the kick, re-login, the login timeout, and an
// operator removing a user while the server runs (docs/protocol.md, Sessions).
import assert from "node:assert/strict";
import { runCli } from "./helpers.ts";
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
          await client.send(line);
          await client.expect("0:-1");
        }
        await client.send("1"); // still not logged in
        await client.expect("0:-1");
        await client.send("0:alice:wonderland");
        sessionId(await client.next());
        await client.send("1");
        await client.expect("1:");
        assert.equal(client.closed, false);
      })
    ));
  },
);

e2eTest(
  "a failed login on a logged-in connection ends its session: 0:-1 and 5: to its room",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await alice.expect("4:lobby:bob");
      await alice.send("0:alice:wrong");
      await alice.expect("0:-1");
      await bob.expect("5:lobby:alice");
      await alice.send("3:0:still there?");
      await alice.expect("0:-1");
      await bob.send("1");
      await bob.expect("1:lobby,bob");
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
      await anon.send(line);
      await anon.expect("0:-1");
    }
    await bob.send("1");
    await bob.expect("1:"); // no room was created
    await bob.expectNothing(100); // the 3:2 was not delivered
    await anon.send("0:carol:c4rol");
    sessionId(await anon.next());
  });
});

e2eTest(
  "kick: a second login of the same user ends the first session; the old connection stays open and can log in again",
  async () => {
    await withServer({}, async (s) => {
      const first = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await first.expect("4:lobby:bob");

      const second = await s.login("alice");
      await first.expect("0:-1");
      await bob.expect("5:lobby:alice");
      await bob.send("1");
      await bob.expect("1:lobby,bob");
      // The new session starts outside any room.
      await second.send("3:0:x");
      await second.expect("9:3:not-in-room");
      // The old connection is open and logged out.
      await first.send("3:0:x");
      await first.expect("0:-1");
      assert.equal(first.closed, false);
      // It can log in again, which kicks the newer one in turn.
      await first.send("0:alice:wonderland");
      sessionId(await first.next());
      await second.expect("0:-1");
      await first.send("2:lobby");
      await first.expect("2:lobby:alice,bob");
      await bob.expect("4:lobby:alice");
      await second.expectNothing(100);
    });
  },
);

e2eTest(
  "re-login on the same connection leaves the room (5: to the others) and starts a new session",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await alice.expect("4:lobby:bob");
      await alice.send("0:alice:wonderland");
      sessionId(await alice.next());
      await bob.expect("5:lobby:alice");
      await alice.send("3:0:x");
      await alice.expect("9:3:not-in-room");
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
      const alice = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await alice.expect("4:lobby:bob");
      await alice.close();
      await bob.expect("5:lobby:alice");
      await bob.send("3:2:alice:hi");
      await bob.expect("9:3:not-online:alice");
    });
  },
);

const TIMEOUT = ["--login-timeout-ms", "300"];

e2eTest(
  "login timeout: an idle connection without a session is closed, even if it sends 1/2/3 lines",
  async () => {
    await withServer({ args: TIMEOUT }, async (s) => {
      const idle = await s.connect();
      const chatty = await s.connect();
      const started = Date.now();
      for (let i = 0; i < 4; i++) {
        await chatty.send("1");
        await chatty.expect("0:-1");
        await sleep(60);
      }
      await idle.expectClosed(2000);
      await chatty.expectClosed(2000);
      const took = Date.now() - started;
      assert.ok(took >= 250, `closed after ${took} ms, before the 300 ms timeout`);
    });
  },
);

e2eTest("login timeout: a logged-in connection is not closed", async () => {
  await withServer({ args: TIMEOUT }, async (s) => {
    const alice = await s.login("alice");
    await sleep(700);
    await alice.send("1");
    await alice.expect("1:");
    assert.equal(alice.closed, false);
  });
});

e2eTest("login timeout: the clock restarts after a failed login", async () => {
  await withServer({ args: TIMEOUT }, async (s) => {
    const client = await s.connect();
    await sleep(200);
    await client.send("0:alice:wrong");
    await client.expect("0:-1");
    const failedAt = Date.now();
    await sleep(200); // 400 ms after connecting: past the first deadline
    await client.send("1");
    await client.expect("0:-1");
    await client.expectClosed(2000);
    const took = Date.now() - failedAt;
    assert.ok(took >= 250, `closed ${took} ms after the failed login`);
  });
});

e2eTest("login timeout: the clock restarts after a kick", async () => {
  await withServer({ args: TIMEOUT }, async (s) => {
    const first = await s.login("alice");
    await sleep(400); // logged in: no timeout
    const second = await s.login("alice");
    await first.expect("0:-1");
    const kickedAt = Date.now();
    await sleep(150);
    await first.send("1");
    await first.expect("0:-1");
    await first.expectClosed(2000);
    const took = Date.now() - kickedAt;
    assert.ok(took >= 250, `closed ${took} ms after the kick`);
    await second.send("1");
    await second.expect("1:");
  });
});

e2eTest(
  "an operator removing a user (--remove-user) while the server runs logs it out within a second",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await alice.expect("4:lobby:bob");
      const result = await runCli(["--db", s.server.db, "--remove-user", "alice"]);
      const removedAt = Date.now();
      assert.equal(result.code, 0, result.stderr);
      await alice.expect("0:-1", 1000);
      assert.ok(Date.now() - removedAt < 1000);
      await bob.expect("5:lobby:alice");
      // The connection stays open, and the user cannot log in any more.
      await alice.send("0:alice:wonderland");
      await alice.expect("0:-1");
      await bob.send("3:2:alice:hi");
      await bob.expect("9:3:not-online:alice");
    });
  },
);

e2eTest("repeated failed logins are slowed down, per connection and per address", async () => {
  await withServer({}, async (s) => {
    const client = await s.connect();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const sent = Date.now();
      await client.send("0:alice:wrong");
      await client.expect("0:-1", 10_000);
      times.push(Date.now() - sent);
    }
    assert.ok(times.slice(0, 3).every((t) => t < 200), `first replies slow: ${times}`);
    assert.ok(times[4] >= 200, `the fifth failed login was not slowed: ${times}`);
    // The slowdown is per address: a fresh connection from the same address is slowed as well.
    const other = await s.connect();
    const sent = Date.now();
    await other.send("0:bob:builder");
    sessionId(await other.next(10_000));
    assert.ok(Date.now() - sent >= 200, "a login from the same address was not slowed");
  });
});
