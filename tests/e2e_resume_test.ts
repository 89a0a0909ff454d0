// Resume tokens over TCP (docs/protocol.md, "Resume"): a token resumes its user's session once,
// any newer login (by password or token, with `resume` on or not) ends the older tokens, and a
// password change, the user's removal or the token's lifetime ends it too. Tokens hold across
// a restart and on every node of a cluster, and never appear in a log. Each case runs on SQLite
// and on PostgreSQL (e2eTest); the cluster case on Redis and PostgreSQL.
import assert from "node:assert/strict";
import {
  e2eTest,
  freshDatabase,
  type Scope,
  sessionId,
  sleep,
  USERS,
  withServer,
} from "./e2e_support.ts";
import { redisInstalled, withCluster } from "./cluster_support.ts";
import { runCli, type TestClient, type TestServer } from "./helpers.ts";

const TOKEN = /^6:([A-Za-z0-9_.-]{16,256})$/;

/** Turns `resume` on for `client`. */
async function wantTokens(client: TestClient): Promise<void> {
  await client.send("8:resume");
  await client.expect("8:resume");
}

/** Reads the `0:<id>` and `6:<token>` that end a login with `resume` on; returns the token. */
async function loggedIn(client: TestClient): Promise<string> {
  sessionId(await client.next());
  const line = await client.next();
  const match = TOKEN.exec(line);
  if (match === null) throw new Error(`expected 6:<token>, got ${JSON.stringify(line)}`);
  return match[1];
}

/** A new connection with `resume` on, logged in as `user` by password; its token. */
async function withToken(s: Scope, user: string): Promise<[TestClient, string]> {
  const client = await s.connect();
  await wantTokens(client);
  await client.send(`0:${user}:${USERS[user]}`);
  return [client, await loggedIn(client)];
}

/** A new connection (with `resume` on) trying `6:<user>:<token>`; the connection. */
async function resume(s: Scope, user: string, token: string): Promise<TestClient> {
  const client = await s.connect();
  await wantTokens(client);
  await client.send(`6:${user}:${token}`);
  return client;
}

/** No token was ever logged, at any level. */
function assertNotLogged(server: TestServer, tokens: string[]): void {
  for (const token of tokens) assert.ok(!server.log().includes(token), "a token was logged");
}

const DEBUG = ["--log-level", "debug"];

e2eTest(
  "a token resumes its session once: 0:<id>, a new 6:<token>; a spent one is a failed login",
  async () => {
    await withServer({ args: [...DEBUG, "--max-login-failures", "1"] }, async (s) => {
      const [first, t1] = await withToken(s, "alice");
      const second = await resume(s, "alice", t1);
      const t2 = await loggedIn(second);
      assert.notEqual(t2, t1);
      await first.expect("0:-1"); // replaced, as by any login
      await second.send("2:lobby");
      await second.expect("2:lobby:alice");
      // The spent token: refused, and counted (one failure closes the connection here).
      const spent = await resume(s, "alice", t1);
      await spent.expect("0:-1");
      await spent.expectClosed();
      await second.expectNothing(); // a refused token ends no one
      const third = await resume(s, "alice", t2);
      await loggedIn(third);
      await second.expect("0:-1");
      assertNotLogged(s.server, [t1, t2]);
    });
  },
);

e2eTest("a login without resume ends older tokens too, and sends no token", async () => {
  await withServer({ args: DEBUG }, async (s) => {
    const [, token] = await withToken(s, "bob");
    const plain = await s.login("bob"); // v1: 0:<id> and nothing more
    await plain.expectNothing();
    const late = await resume(s, "bob", token);
    await late.expect("0:-1");
    await plain.expectNothing();
    assertNotLogged(s.server, [token]);
  });
});

e2eTest(
  "--set-password and --remove-user end the user's token; a live session goes on",
  async () => {
    await withServer({ args: DEBUG }, async (s) => {
      const [live, alice] = await withToken(s, "alice");
      const [, bob] = await withToken(s, "bob");
      const changed = await runCli([
        "--db",
        s.server.db,
        "--hash-cost",
        "10",
        "--set-password",
        "alice",
      ], {
        stdin: "new-secret\n",
      });
      assert.equal(changed.code, 0, changed.stderr);
      const removed = await runCli(["--db", s.server.db, "--remove-user", "bob"]);
      assert.equal(removed.code, 0, removed.stderr);
      await (await resume(s, "alice", alice)).expect("0:-1");
      await (await resume(s, "bob", bob)).expect("0:-1");
      // A new password is for the next login: the session already in goes on (docs/security.md).
      await live.ask("2:after-change", "2:after-change:alice");
      assertNotLogged(s.server, [alice, bob]);
    });
  },
);

e2eTest("a token older than --resume-ttl-s is refused", async () => {
  await withServer({ args: [...DEBUG, "--resume-ttl-s", "1"] }, async (s) => {
    const [, token] = await withToken(s, "carol");
    await sleep(1500); // past the lifetime; a slow machine only makes it older
    await (await resume(s, "carol", token)).expect("0:-1");
    const [, fresh] = await withToken(s, "carol"); // a new one is good again
    await loggedIn(await resume(s, "carol", fresh));
  });
});

e2eTest("a token survives a server restart on the same database", async () => {
  const { db, remove } = await freshDatabase();
  try {
    let token = "";
    await withServer({ db, args: DEBUG }, async (s) => {
      [, token] = await withToken(s, "dave");
      assertNotLogged(s.server, [token]);
    });
    await withServer({ db, args: DEBUG, users: {} }, async (s) => {
      await loggedIn(await resume(s, "dave", token));
      assertNotLogged(s.server, [token]);
    });
  } finally {
    await remove();
  }
});

e2eTest("a storm of resumes at once: each gets its session and a new token", async () => {
  const users = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`u${i}`, `pw${i}`]));
  await withServer({ users }, async (s) => {
    const names = Object.keys(users);
    const tokens = await Promise.all(names.map(async (user) => {
      const client = await s.connect();
      await wantTokens(client);
      await client.send(`0:${user}:${users[user]}`);
      return await loggedIn(client);
    }));
    // Every client reconnects at the same moment (their tokens' writes share transactions).
    const fresh = await Promise.all(
      names.map(async (user, i) => await loggedIn(await resume(s, user, tokens[i]))),
    );
    assert.equal(new Set([...tokens, ...fresh]).size, 2 * names.length);
    assertNotLogged(s.server, [...tokens, ...fresh]);
  });
});

Deno.test({
  name: "cluster: a token issued on one node resumes on another, once",
  ignore: !redisInstalled("tests/e2e_resume_test.ts"),
  fn: async () => {
    await withCluster({ args: DEBUG }, async (c) => {
      const first = await c.connect(0);
      await wantTokens(first);
      await first.send(`0:alice:${c.password("alice")}`);
      const t1 = await loggedIn(first);
      const there = await c.connect(1);
      await wantTokens(there);
      await there.send(`6:alice:${t1}`);
      const t2 = await loggedIn(there);
      await first.expect("0:-1"); // replaced across the cluster
      // Back on the first node, the spent token is refused and the new one works.
      await first.send(`6:alice:${t1}`);
      await first.expect("0:-1");
      await first.send(`6:alice:${t2}`);
      await loggedIn(first);
      await there.expect("0:-1");
      for (const i of [0, 1]) {
        for (const token of [t1, t2]) assert.ok(!c.log(i).includes(token), "a token was logged");
      }
    });
  },
});
