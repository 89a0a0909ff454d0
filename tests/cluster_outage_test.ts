/**
 * The cluster's stores going away: Redis (the bus) down and back empty, a node frozen across a
 * Redis restart whose user logged in elsewhere meanwhile (fencing), a node that dies while the
 * bus is down, and PostgreSQL down. Each prints what it measured.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  drain,
  fillRoom,
  joinSettles,
  listSettles,
  logged,
  loginSoon,
  ms,
  redisInstalled,
  TEST_NODE_TTL_MS,
  tryLogin,
  untilGone,
  withCluster,
} from "./cluster_support.ts";
import { sleep, USERS } from "./e2e_support.ts";
import type { TestClient } from "./helpers.ts";

const installed = redisInstalled("cluster_outage_test.ts");

const POOL: Record<string, string> = {};
for (
  const name of ["a1", "a2", "b1", "b2", "x1", "l1", "l2", "f", "w", "u1", "o", "d1", "q", "a", "b"]
) POOL[name] = `pw-${name}`;
const ALL_USERS = { ...USERS, ...POOL };

/** Every line `client` receives within `spanMs`. */
async function drainFor(client: TestClient, spanMs: number): Promise<string[]> {
  const lines: string[] = [];
  const until = performance.now() + spanMs;
  for (;;) {
    const left = until - performance.now();
    if (left <= 0) return lines;
    try {
      lines.push(await client.next(left));
    } catch {
      return lines;
    }
  }
}

Deno.test({
  name: "cluster outage: Redis down, local chat goes on; back empty, the cluster resyncs",
  ignore: !installed,
  async fn() {
    await withCluster({ nodes: 2, users: ALL_USERS }, async (c) => {
      const [a1, a2, b1] = await fillRoom(c, "rd", [[0, "a1"], [0, "a2"], [1, "b1"]]);
      const [b2] = await fillRoom(c, "rd2", [[1, "b2"]]);
      const x1 = await c.login(1, "x1");
      for (const x of [a1, b2]) await listSettles(x, "1:rd,a1,a2,b1:rd2,b2");

      await c.stopRedis();
      await Promise.all([logged(c, 0, "bus-down", 1), logged(c, 1, "bus-down", 1)]);

      // Chat among the users of one node goes on; what was for the other node is dropped.
      await a1.send("3:1:during");
      await a2.expect("3:during");
      await a1.send("3:2:a2:b1:direct during");
      await a2.expect("3:direct during");
      await b1.send("3:0:n2 only");
      await b1.expect("3:n2 only");
      await b1.send("3:2:x1:n2 direct");
      await x1.expect("3:n2 direct");
      // Logins are refused on both nodes.
      for (const [i, user] of [[0, "l1"], [1, "l2"]] as const) {
        const [, reply] = await tryLogin(c, i, user);
        assert.equal(reply, "0:-1", `a login on n${i + 1} while Redis is down`);
      }
      // Changes while the bus is down: a2 moves to a new room, x1 leaves.
      await a2.send("2:rdx");
      await a2.expect("2:rdx:a2");
      await a1.expect("5:rd:a2");
      await x1.close();
      await Promise.all([a1, a2, b1, b2].map((x) => x.expectNothing(200)));

      // Redis comes back on its port, empty.
      await c.startRedis();
      const t0 = performance.now();
      let resumed = -1;
      let k = 0;
      const b1Lines: string[] = [];
      while (resumed < 0) {
        assert.ok(performance.now() - t0 < 10_000, "no delivery across nodes 10 s after Redis");
        await a1.send(`3:1:probe ${++k}`);
        await sleep(50);
        b1Lines.push(...await drain(b1));
        if (b1Lines.some((l) => l.startsWith("3:probe"))) resumed = performance.now() - t0;
      }
      // Presence resynced on both nodes: rooms and members as they are now.
      const full = "1:rd,a1,b1:rd2,b2:rdx,a2";
      await Promise.all([listSettles(a1, full, 5000), listSettles(b2, full, 5000)]);
      const synced = performance.now() - t0;
      await untilGone(a1, "x1", full, 3000);
      const l1 = await loginSoon(c, 0, "l1");
      const l2 = await loginSoon(c, 1, "l2");
      const logins = performance.now() - t0;
      console.log(
        `Redis restart: cross-node delivery resumed ${ms(resumed)} after Redis was back, ` +
          `room lists right on both nodes after ${ms(synced)}, logins after ${ms(logins)}`,
      );
      assert.ok(resumed <= 5000, `delivery resumed after ${ms(resumed)}`);

      // b1 got probes in order, each once, the 5: of a2's move once, and nothing sent while
      // the bus was down.
      await sleep(300);
      b1Lines.push(...await drain(b1));
      const probes = b1Lines.filter((l) => l.startsWith("3:probe")).map((l) => Number(l.slice(8)));
      assert.ok(probes.every((p, i) => i === 0 || p > probes[i - 1]), `in order: ${probes}`);
      assert.equal(probes.at(-1), k, "every probe after the first one that arrived");
      assert.deepEqual(b1Lines.filter((l) => !l.startsWith("3:probe")), ["5:rd:a2"]);

      // Across nodes, both ways, for old and new sessions.
      await b1.send("3:1:from b1");
      await a1.expect("3:from b1");
      await l1.send("3:2:b1:l2:from l1");
      for (const x of [b1, l2]) await x.expect("3:from l1");
      await l2.send("3:2:a2:from l2");
      await a2.expect("3:from l2");
      await Promise.all([a1, a2, b1, b2, l1, l2].map((x) => x.expectNothing(300)));
    });
  },
});

Deno.test({
  name: "cluster outage: Redis stalled past the TTL; when it resumes the cluster is whole again",
  ignore: !installed,
  async fn() {
    const ttl = TEST_NODE_TTL_MS;
    await withCluster({ nodes: 2, users: ALL_USERS, nodeTtlMs: ttl }, async (c) => {
      const started = performance.now();
      const [a1, b1] = await fillRoom(c, "st", [[0, "a1"], [1, "b1"]]);
      await listSettles(a1, "1:st,a1,b1");
      await sleep(Math.max(0, ttl - (performance.now() - started)));

      // Redis stops answering (SIGSTOP: a stall, its connections stay open) for longer than
      // the TTL, then carries on with its data.
      const pid = c.redis.pid;
      Deno.kill(pid, "SIGSTOP");
      try {
        await sleep(ttl + 1000);
        await a1.send("3:1:during the stall");
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
      const t0 = performance.now();
      // Within a few seconds both nodes see both users again and messages cross both ways.
      // Until the links have reconnected, what crosses is dropped (never queued): probe.
      await Promise.all([listSettles(a1, "1:st,a1,b1", 5000), listSettles(b1, "1:st,a1,b1", 5000)]);
      const b1Lines: string[] = [];
      const crossed = async (from: TestClient, to: TestClient, target: string, seen: string[]) => {
        for (let probe = 0;; probe++) {
          assert.ok(performance.now() - t0 < 5000, `nothing crossed to ${target} within 5 s`);
          await from.send(`3:2:${target}:probe ${probe}`);
          const got = await drainFor(to, 200);
          seen.push(...got);
          if (got.some((line) => line.startsWith("3:probe "))) return;
        }
      };
      await crossed(a1, b1, "b1", b1Lines);
      await crossed(b1, a1, "a1", []);
      const whole = performance.now() - t0;
      b1Lines.push(...await drainFor(b1, 200));
      console.log(
        `Redis stalled ${ttl + 1000} ms: whole again ${ms(whole)} after it resumed; ` +
          `b1 saw ${JSON.stringify(b1Lines)}`,
      );
      assert.ok(b1Lines.filter((l) => l === "3:during the stall").length <= 1, "not twice");
      const probes = b1Lines.filter((l) => l.startsWith("3:probe "));
      assert.equal(new Set(probes).size, probes.length, "no probe twice");
    });
  },
});

Deno.test({
  name: "cluster outage: a node frozen across a Redis restart does not override a newer login",
  ignore: !installed,
  async fn() {
    await withCluster({ nodes: 2, users: ALL_USERS }, async (c) => {
      const [old, w] = await fillRoom(c, "fz", [[0, "f"], [1, "w"]]);
      const u1 = await c.login(0, "u1");
      await listSettles(u1, "1:fz,f,w");

      // n1 freezes (a long GC pause, a stalled VM); meanwhile Redis restarts empty, n2 resyncs,
      // and f logs in on n2: n1 hears nothing of it.
      const pid = c.node(0).process.pid;
      let fresh: TestClient;
      Deno.kill(pid, "SIGSTOP");
      try {
        await c.restartRedis();
        await logged(c, 1, "bus-up", 2);
        fresh = await loginSoon(c, 1, "f");
        await w.expect("5:fz:f"); // the old session left n2's view
        await joinSettles(fresh, "fz", ["f", "w"]);
        await w.expect("4:fz:f");
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
      const t0 = performance.now();
      // n1 wakes up, reconnects and resyncs: its fence is older, so its session ends.
      await old.expect("0:-1", 10_000);
      const ended = performance.now() - t0;
      console.log(`frozen node: its stale session ended ${ms(ended)} after it woke up`);
      await logged(c, 0, "bus-up", 2);
      // The newer login holds: messages from both nodes reach it and only it.
      await w.send("3:2:f:from n2");
      await fresh.expect("3:from n2");
      await u1.send("3:2:f:from n1");
      await fresh.expect("3:from n1");
      await w.send("3:1:room");
      await fresh.expect("3:room");
      await fresh.send("3:1:still here");
      await w.expect("3:still here");
      for (const x of [u1, w]) await listSettles(x, "1:fz,f,w");
      await Promise.all([old.expectNothing(300), w.expectNothing(0), fresh.expectNothing(0)]);
    });
  },
});

Deno.test({
  name: "cluster outage: a node that dies while Redis is down is dropped once Redis is back",
  ignore: !installed,
  async fn() {
    const ttl = TEST_NODE_TTL_MS;
    await withCluster({ nodes: 2, users: ALL_USERS, nodeTtlMs: ttl }, async (c) => {
      const [o] = await fillRoom(c, "dz", [[0, "o"], [1, "d1"]]);
      const q = await c.login(0, "q");
      await listSettles(q, "1:dz,d1,o");

      await c.stopRedis();
      await logged(c, 0, "bus-down", 1);
      await c.kill(1);
      await c.closeClients(1);
      await c.startRedis();
      await logged(c, 0, "bus-up", 2);
      // n2 is not in the new Redis's list of nodes, so no heartbeat of its expires there; still
      // it must not stay online forever: within the TTL (and a second) of the bus's return.
      const limit = ttl + 1000;
      const gone = await untilGone(q, "d1", "1:dz,o", limit);
      await o.expect("5:dz:d1");
      console.log(`node dead across a Redis restart: its users dropped after ${ms(gone)}`);
    });
  },
});

Deno.test({
  name: "cluster outage: PostgreSQL down, logins fail, sessions chat on; back, logins work",
  ignore: !installed,
  async fn() {
    await withCluster({ nodes: 2, users: ALL_USERS }, async (c) => {
      const [a, b] = await fillRoom(c, "pg", [[0, "a"], [1, "b"]]);

      await c.pausePostgres();
      for (const [i, user] of [[0, "l1"], [1, "l2"]] as const) {
        const t0 = performance.now();
        const [, reply] = await tryLogin(c, i, user);
        assert.equal(reply, "0:-1", `a login on n${i + 1} while PostgreSQL is down`);
        console.log(
          `PostgreSQL down: a login on n${i + 1} refused after ${ms(performance.now() - t0)}`,
        );
      }
      await a.send("3:1:across");
      await b.expect("3:across");
      await b.send("3:2:a:back");
      await a.expect("3:back");
      await b.send("3:0:all");
      for (const x of [a, b]) await x.expect("3:all");
      await a.send("1");
      await a.expect("1:pg,a,b");

      await c.resumePostgres();
      const t0 = performance.now();
      const l1 = await loginSoon(c, 0, "l1");
      const l2 = await loginSoon(c, 1, "l2");
      console.log(`PostgreSQL back: logins work after ${ms(performance.now() - t0)}`);
      await l1.send("3:2:l2:b:hello");
      for (const x of [l2, b]) await x.expect("3:hello");
      await Promise.all([a, b, l1, l2].map((x) => x.expectNothing(200)));
    });
  },
});
