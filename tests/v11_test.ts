/**
 * The v1.1 extensions over real TCP (docs/protocol.md, "v1.1"): `8:` features and their reply,
 * the `from` form of `3:` lines, the `why` notices (`7:<reason>`), the login clock under a slow
 * check, and the drain on SIGTERM. A client that sends no `8:` line sees v1, byte for byte.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Scope, USERS, withServer } from "./e2e_support.ts";
import { runCli, sleep, startServer, tempDir, TestClient, waitFor } from "./helpers.ts";
import { connectFrom } from "./hardening_support.ts";
import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openStore } from "../lib/store/open_store.ts";

/** Logs `user` in on a new connection with `features` on (the `8:` reply checked). */
async function loginWith(s: Scope, user: string, features: string): Promise<TestClient> {
  const client = await s.connect();
  await client.send(`8:${features}`);
  await client.expect(`8:${features}`);
  await client.send(`0:${user}:${USERS[user]}`);
  assert.match(await client.next(), /^0:\d+$/);
  return client;
}

/** Joins `client` to `room`, expecting the members listed. */
async function join(client: TestClient, room: string, members: string): Promise<void> {
  await client.send(`2:${room}`);
  await client.expect(`2:${room}:${members}`);
}

Deno.test("v1.1 8: the reply lists the known features on, in the order first asked", async () => {
  await withServer({}, async (s) => {
    const c = await s.connect();
    await c.send("8:");
    await c.expect("8:"); // an empty list just reports: none on
    await c.send("8:why,color,from");
    await c.expect("8:why,from"); // unknown names are left out
    await c.send("8:from,resume,why");
    await c.expect("8:why,from,resume"); // first-asked order holds
    await c.send("8:");
    await c.expect("8:why,from,resume");
    for (
      const bad of [
        "8:Why",
        "8:why,,from",
        "8:why,",
        `8:${"a".repeat(33)}`,
        `8:${Array.from({ length: 17 }, (_, i) => `f${i}`).join(",")}`,
        "8:wh y",
        "8:why:from",
      ]
    ) {
      await c.send(bad);
      await c.expect("9:8:malformed");
    }
    // Sixteen names are fine, and so is a 32-character one.
    await c.send(`8:${Array.from({ length: 15 }, (_, i) => `f${i}`).join(",")},${"a".repeat(32)}`);
    await c.expect("8:why,from,resume");
    // The features hold across logins on the connection.
    await c.send("0:alice:wonderland");
    assert.match(await c.next(), /^0:\d+$/);
    assert.match(await c.next(), /^6:[A-Za-z0-9_.-]{16,256}$/); // resume is on: a token
    await c.send("8:");
    await c.expect("8:why,from,resume");
  });
});

Deno.test("v1.1 from: room and direct messages carry the room and the sender", async () => {
  await withServer({}, async (s) => {
    const alice = await loginWith(s, "alice", "from");
    const bob = await s.login("bob"); // v1: no 8: line
    await join(alice, "lobby", "alice");
    await join(bob, "lobby", "alice,bob");
    await alice.expect("4:lobby:bob");
    await bob.send("3:0:hi:there");
    await alice.expect("3:lobby:bob:hi:there");
    await bob.expect("3:hi:there"); // the v1 form, byte for byte
    await alice.send("3:1:x");
    await bob.expect("3:x");
    await alice.send("3:0:");
    await alice.expect("3:lobby:alice:");
    await bob.expect("3:");
    await bob.send("3:2:alice:bob:aGk=");
    await alice.expect("3::bob:aGk="); // direct: the room is empty
    await bob.expect("3:aGk=");
    // Features turned on after a login apply at once, and survive a new login.
    await bob.send("8:from");
    await bob.expect("8:from");
    await alice.send("3:1:again");
    await bob.expect("3:lobby:alice:again");
    await bob.send("0:bob:builder");
    assert.match(await bob.next(), /^0:\d+$/);
    await alice.expect("5:lobby:bob");
    await alice.send("3:2:bob:psst");
    await bob.expect("3::alice:psst");
  });
});

Deno.test("v1.1 from: with --stamp-sender, v1 clients keep 3:<sender>:, from clients 3:<room>:<sender>:", async () => {
  await withServer({ args: ["--stamp-sender"] }, async (s) => {
    const alice = await loginWith(s, "alice", "from");
    const bob = await s.login("bob");
    await join(alice, "r", "alice");
    await join(bob, "r", "alice,bob");
    await alice.expect("4:r:bob");
    await bob.send("3:0:hello");
    await alice.expect("3:r:bob:hello");
    await bob.expect("3:bob:hello");
    await alice.send("3:2:bob:alice:yo");
    await bob.expect("3:alice:yo");
    await alice.expect("3::alice:yo");
  });
});

Deno.test("v1.1 why: replaced, and nothing new without why", async () => {
  await withServer({}, async (s) => {
    const first = await loginWith(s, "alice", "why");
    await s.login("alice");
    await first.expect("7:replaced");
    await first.expect("0:-1");
    const v1 = await s.login("bob");
    await s.login("bob");
    await v1.expect("0:-1");
    await v1.expectNothing(100);
  });
});

Deno.test("v1.1 why: removed, when the operator removes the user", async () => {
  await withServer({}, async (s) => {
    const carol = await loginWith(s, "carol", "why");
    const result = await runCli(["--db", s.server.db, "--remove-user", "carol"]);
    assert.equal(result.code, 0, result.stderr);
    await carol.expect("7:removed", 10_000); // the server looks for removals every second
    await carol.expect("0:-1");
  });
});

Deno.test("v1.1 why: idle at the login timeout; a v1 client is just closed", async () => {
  await withServer({ args: ["--login-timeout-ms", "300"] }, async (s) => {
    const why = await s.connect();
    await why.send("8:why");
    await why.expect("8:why");
    const v1 = await s.connect();
    await why.expect("7:idle", 10_000);
    await why.expectClosed();
    await v1.expectClosed(10_000);
    assert.deepEqual(v1.pending, []);
  });
});

Deno.test("v1.1 why: slow, queued past the bound, then the close", async () => {
  // --close-flush-ms: dave may take its last lines for a minute after the drop, so a slow machine
  // reading the drop off the log late still sees them (the default gives it 2 s).
  const args = ["--max-pending-bytes", "65536", "--rate-burst", "0", "--close-flush-ms", "60000"];
  await withServer({ args }, async (s) => {
    // sleepy turns why on, logs in and joins, then stops reading until it has been dropped.
    const sleepy = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    try {
      await sleepy.write(new TextEncoder().encode("8:why\n0:dave:d4ve\n2:slow\n"));
      const sender = await s.login("bob");
      await waitFor(async () => {
        await sender.send("2:slow");
        const reply = await sender.next();
        return reply === "2:slow:bob,dave";
      }, "dave in the room");
      const body = "x".repeat(16 * 1024);
      // Until the server logs the drop: from then on dave has a minute to take its last lines.
      for (let i = 0; i < 4000 && !/slow-consumer/.test(s.server.log()); i++) {
        await sender.send(`3:1:${body}`);
        if (i % 20 === 19) await sleep(10); // let the log's pipe be read
      }
      await waitFor(() => /slow-consumer/.test(s.server.log()), "dave's drop");
      // Now read everything dave was sent: the last line is 7:slow, then the connection ends.
      const text = await readAll(sleepy);
      const lines = text.split("\n");
      assert.equal(lines.pop(), "");
      assert.equal(lines.at(-1), "7:slow");
    } finally {
      try {
        sleepy.close();
      } catch { /* closed by the server */ }
    }
  });
});

/** Reads `conn` to its end, as text. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(256 * 1024);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

/** A database whose one user, slowpoke (password "pw"), is hashed at the production cost. */
async function slowpokeDatabase(): Promise<{ db: string; remove: () => Promise<void> }> {
  const { dir, remove } = await tempDir();
  const db = `${dir}/parley.db`;
  const store = await openStore(db);
  const hasher = new PasswordHasher({ params: scryptParams(15) });
  await store.addUser("slowpoke", await hasher.hash(new TextEncoder().encode("pw")));
  await store.close();
  return { db, remove };
}

Deno.test("v1.1 login clock: a login whose check outlasts the timeout still gets its answer", async () => {
  // A password hashed at cost 15 takes tens of ms to check, and the hasher checks one or two at
  // a time: eight logins at once wait far longer than the 50 ms login clock.
  const { db, remove } = await slowpokeDatabase();
  try {
    await withServer({ db, args: ["--login-timeout-ms", "50", "--hash-cost", "15"] }, async (s) => {
      const clients = await Promise.all(Array.from({ length: 8 }, () => s.connect()));
      await Promise.all(clients.map((c) => c.write("0:slowpoke:pw\n")));
      // Each is answered (0:<id>; the newer logins then replace it: 0:-1), never cut off.
      for (const c of clients) assert.match(await c.next(30_000), /^0:\d+$/);
      // Those replaced have no session left: their clock runs again, and idle clients still go.
      // The newest login keeps its session and its connection.
      await waitFor(() => clients.filter((c) => c.closed).length === 7, "seven closed", 30_000);
    });
  } finally {
    await remove();
  }
});

Deno.test("v1.1 why: busy, when the hash queue is full; not a failed login, so a retry works", async () => {
  // One password hashed at cost 15; the hasher holds its cores − 1 checks plus one waiting
  // (--max-hash-queue 1). 48 logins from 24 addresses at once: all but a few find it full.
  const { db, remove } = await slowpokeDatabase();
  // One failed login closes a connection: a busy answer that counted as one would close it.
  const args = ["--hash-cost", "15", "--max-hash-queue", "1", "--max-login-failures", "1"];
  try {
    await withServer({ db, args }, async (s) => {
      const addresses = Array.from({ length: 24 }, (_, i) => `127.0.0.${i + 2}`);
      const conns = await Promise.all(
        [...addresses, ...addresses].map((address) => connectFrom(s.port, address)),
      );
      const clients = conns.map((conn) => TestClient.fromConn(conn));
      await Promise.all(clients.map((c) => c.write("8:why\n0:slowpoke:pw\n")));
      const busy: TestClient[] = [];
      for (const c of clients) {
        await c.expect("8:why");
        const reply = await c.next(30_000);
        if (reply === "7:busy") {
          await c.expect("0:-1");
          busy.push(c);
        } else assert.match(reply, /^0:\d+$/);
      }
      assert.ok(busy.length > 0, "some logins found the hash queue full");
      const retry = busy[busy.length - 1];
      await retry.send("0:slowpoke:pw");
      let reply = await retry.next(30_000);
      while (reply.startsWith("7:")) reply = await retry.next(30_000); // late notices
      assert.match(reply, /^0:\d+$/, "the busy connection is still open, and logs in");
    });
  } finally {
    await remove();
  }
});

Deno.test("v1.1 why: shutdown on SIGTERM, after which the connection closes", async () => {
  const server = await startServer({ users: { ...USERS }, args: ["--drain-ms", "0"] });
  const why = await TestClient.connect(server.port);
  const v1 = await TestClient.login(server.port, "bob", USERS.bob);
  try {
    await why.send("8:why");
    await why.expect("8:why");
    await why.send("0:alice:wonderland");
    assert.match(await why.next(), /^0:\d+$/);
    const stopped = server.stop();
    await why.expect("7:shutdown");
    await why.expect("0:-1");
    await why.expectClosed();
    await v1.expect("0:-1");
    await v1.expectClosed();
    assert.equal((await stopped).code, 0);
  } finally {
    await why.close();
    await v1.close();
    await server.stop();
  }
});

Deno.test("v1.1 drain: closes are spread over --drain-ms, each told 7:shutdown first", async () => {
  const drainMs = 1500;
  const server = await startServer({ users: { ...USERS }, args: ["--drain-ms", String(drainMs)] });
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const c = await TestClient.connect(server.port);
      clients.push(c);
      await c.send("8:why");
      await c.expect("8:why");
    }
    const stopped = server.stop();
    const times = await Promise.all(clients.map(async (c) => {
      await c.expect("7:shutdown", 20_000);
      const at = performance.now();
      await c.expectClosed(10_000);
      return at;
    }));
    times.sort((a, b) => a - b);
    // Ten batches 150 ms apart: the last goes at least 1,350 ms after the first (a busy machine
    // only spreads them further). Half of that leaves room for timer slack.
    assert.ok(times[9] - times[0] >= drainMs / 2, `not spread: ${times.map((t) => t - times[0])}`);
    assert.equal((await stopped).code, 0);
  } finally {
    for (const c of clients) await c.close();
    await server.stop();
  }
});

Deno.test("v1.1 drain: sessions end normally (5: to the room); a second SIGTERM stops at once", async () => {
  const server = await startServer({ users: { ...USERS }, args: ["--drain-ms", "600000"] });
  const clients: TestClient[] = [];
  try {
    for (const user of ["alice", "bob", "carol"]) {
      const c = await TestClient.login(server.port, user, USERS[user]);
      clients.push(c);
      await c.send("2:hall");
      assert.match(await c.next(), /^2:hall:/);
    }
    await clients[0].expect("4:hall:bob");
    await clients[0].expect("4:hall:carol");
    await clients[1].expect("4:hall:carol");
    server.process.kill("SIGTERM");
    // Three connections over ten minutes: the first goes at once, the others 200 s apart.
    await clients[0].expect("0:-1", 10_000);
    await clients[0].expectClosed();
    await clients[1].expect("5:hall:alice");
    await clients[2].expect("5:hall:alice");
    const started = performance.now();
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0);
    assert.ok(performance.now() - started < 60_000, "the second SIGTERM did not stop at once");
    await clients[1].expectClosed();
    await clients[2].expectClosed();
  } finally {
    for (const c of clients) await c.close();
    await server.stop();
  }
});
