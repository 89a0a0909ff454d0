/**
 * Nodes that go away: killed with -9 (the others drop its users within the TTL plus a second),
 * restarted on the same port (it rejoins cleanly, also when it comes back before the TTL), and
 * stopped with SIGTERM (the others drop its users at once). Each prints what it measured.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Cluster,
  fillRoom,
  joinSettles,
  listSettles,
  ms,
  redisInstalled,
  TEST_NODE_TTL_MS,
  untilGone,
  withCluster,
} from "./cluster_support.ts";
import { sessionId, sleep, USERS } from "./e2e_support.ts";
import type { TestClient } from "./helpers.ts";

const installed = redisInstalled("cluster_faults_test.ts");

const POOL: Record<string, string> = {};
for (const name of ["k1", "k2", "k3", "o1", "o3", "q1", "q3", "t1", "t2", "t3", "o", "q"]) {
  POOL[name] = `pw-${name}`;
}
const ALL_USERS = { ...USERS, ...POOL };

/** Waits for `line`; resolves to the milliseconds since `since`. */
async function timed(client: TestClient, line: string, since: number, timeoutMs: number) {
  await client.expect(line, timeoutMs);
  return performance.now() - since;
}

/** Logs in on a new connection to node `i` (the claim may wait); ms since `since`. */
async function timedLogin(c: Cluster, i: number, user: string, since: number, timeoutMs: number) {
  const client = await c.connect(i);
  await client.send(`0:${user}:${ALL_USERS[user]}`);
  sessionId(await client.next(timeoutMs));
  return performance.now() - since;
}

Deno.test({
  name: "cluster faults: a node killed with -9 is dropped within the TTL and rejoins cleanly",
  ignore: !installed,
  async fn() {
    const ttl = TEST_NODE_TTL_MS;
    await withCluster({ nodes: 3, users: ALL_USERS, nodeTtlMs: ttl }, async (c) => {
      const started = performance.now();
      const [o1, , o3] = await fillRoom(c, "kr", [[0, "o1"], [1, "k1"], [2, "o3"]]);
      await c.login(1, "k2"); // on n2, in no room
      await c.login(1, "k3");
      const q1 = await c.login(0, "q1");
      const q3 = await c.login(2, "q3");
      for (const q of [q1, q3]) await listSettles(q, "1:kr,k1,o1,o3");
      // A cluster that has run for a while: every node has been up for a whole TTL (the
      // reaper's condition), as in production.
      await sleep(Math.max(0, ttl - (performance.now() - started)));

      const t0 = performance.now();
      // The TTL, plus time for the reaper's next heartbeat and the events on a loaded machine.
      const limit = ttl + 2500;
      const [, drop1, drop3, gone1, gone3, relogin] = await Promise.all([
        c.kill(1),
        timed(o1, "5:kr:k1", t0, limit + 2000),
        timed(o3, "5:kr:k1", t0, limit + 2000),
        untilGone(q1, "k2", "1:kr,o1,o3", limit + 2000, t0),
        untilGone(q3, "k2", "1:kr,o1,o3", limit + 2000, t0),
        // A login elsewhere of a user the dead node held waits for it to be declared dead.
        timedLogin(c, 2, "k3", t0, limit + 3000),
      ]);
      console.log(
        `kill -9 (TTL ${ttl} ms): 5: on n1 after ${ms(drop1)}, on n3 after ${ms(drop3)}; ` +
          `offline everywhere (not-online, 1) after ${ms(gone1)} on n1, ${ms(gone3)} on n3; ` +
          `a login of its user on n3 answered after ${ms(relogin)}`,
      );
      for (
        const [what, time] of [
          ["5: on n1", drop1],
          ["5: on n3", drop3],
          [
            "offline on n1",
            gone1,
          ],
          ["offline on n3", gone3],
          ["login elsewhere", relogin],
        ] as const
      ) {
        assert.ok(time <= limit, `${what} after ${ms(time)}, more than TTL + 2.5 s (${limit} ms)`);
      }

      // Restarted on its port, the node takes its users back and they chat with the others.
      await c.closeClients(1);
      await c.startNode(1);
      const back = await c.login(1, "k1");
      await joinSettles(back, "kr", ["k1", "o1", "o3"]);
      for (const x of [o1, o3]) await x.expect("4:kr:k1");
      await back.send("3:1:back");
      for (const x of [o1, o3]) await x.expect("3:back");
      await o3.send("3:2:k1:welcome");
      await back.expect("3:welcome");
      await q1.send("3:2:k2:k3:where");
      await q1.expect("9:3:not-online:k2"); // k3 is on n3 now
      const k2 = await c.login(1, "k2");
      await q3.send("3:2:k2:found");
      await k2.expect("3:found");
      for (const q of [q1, q3]) await listSettles(q, "1:kr,k1,o1,o3");
      await Promise.all([o1, o3, back, k2].map((x) => x.expectNothing(200)));

      // Killed and started again at once, before the TTL: the new process's arrival ends the
      // old one's sessions (its room hears 5:), and its users log in again.
      const t1 = performance.now();
      await c.kill(1);
      await c.closeClients(1);
      await c.startNode(1);
      const fastDrop = await timed(o1, "5:kr:k1", t1, limit + 2000);
      await o3.expect("5:kr:k1");
      console.log(`kill -9 and restart at once: 5: on n1 after ${ms(fastDrop)}`);
      assert.ok(fastDrop <= limit, `5: after ${ms(fastDrop)}`);
      const again = await c.login(1, "k1");
      await joinSettles(again, "kr", ["k1", "o1", "o3"]);
      for (const x of [o1, o3]) await x.expect("4:kr:k1");
      await o1.send("3:1:hello again");
      for (const x of [again, o3]) await x.expect("3:hello again");
      for (const q of [q1, q3]) await listSettles(q, "1:kr,k1,o1,o3");
      await Promise.all([o1, o3, again].map((x) => x.expectNothing(300)));
    });
  },
});

Deno.test({
  name: "cluster faults: a node stopped with SIGTERM has its users dropped at once",
  ignore: !installed,
  async fn() {
    const ttl = 10_000; // long, so that a drop well before it cannot be the reaper's doing
    await withCluster({ nodes: 2, users: ALL_USERS, nodeTtlMs: ttl }, async (c) => {
      const [o, t1] = await fillRoom(c, "tr", [[0, "o"], [1, "t1"]]);
      const t2 = await c.login(1, "t2");
      await c.login(1, "t3");
      const q = await c.login(0, "q");
      await listSettles(q, "1:tr,o,t1");

      const t0 = performance.now();
      const [, drop, gone, relogin] = await Promise.all([
        c.stopNode(1, "SIGTERM"),
        timed(o, "5:tr:t1", t0, ttl),
        untilGone(q, "t2", "1:tr,o", ttl, t0),
        timedLogin(c, 0, "t3", t0, ttl),
      ]);
      await t1.expect("0:-1");
      // t2 may have got probes sent before its node stopped.
      for (let line = await t2.next(); line !== "0:-1"; line = await t2.next()) {
        assert.equal(line, "3:probe");
      }
      console.log(
        `SIGTERM (TTL ${ttl} ms): 5: after ${ms(drop)}, offline (not-online, 1) after ${
          ms(gone)
        }, a login of its user elsewhere answered after ${ms(relogin)}`,
      );
      for (const [what, time] of [["5:", drop], ["offline", gone], ["login", relogin]] as const) {
        // Well under the TTL: it was the node's leaving, not the reaper, on any machine.
        assert.ok(time < ttl / 2, `${what} after ${ms(time)}: not at once (TTL ${ttl} ms)`);
      }
      await o.expectNothing(200);
    });
  },
});

Deno.test({
  name: "cluster faults: a node declared down while alive (frozen past the TTL) comes back",
  ignore: !installed,
  async fn() {
    const ttl = TEST_NODE_TTL_MS;
    await withCluster({ nodes: 2, users: ALL_USERS, nodeTtlMs: ttl }, async (c) => {
      const started = performance.now();
      const [o1, k1] = await fillRoom(c, "fr", [[0, "o1"], [1, "k1"]]);
      const q1 = await c.login(0, "q1");
      await listSettles(q1, "1:fr,k1,o1");
      await sleep(Math.max(0, ttl - (performance.now() - started)));

      // n2 stalls (a long pause, a stopped VM) past the TTL: the others declare it down, as
      // they must, since they cannot tell it from a crash.
      const pid = c.node(1).process.pid;
      Deno.kill(pid, "SIGSTOP");
      try {
        await o1.expect("5:fr:k1", ttl + 3000);
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
      const t0 = performance.now();
      // It wakes up, hears it was declared down, and announces itself again: its sessions,
      // which never ended, are back in everyone's view, rooms and all.
      await o1.expect("4:fr:k1", 5000);
      await listSettles(q1, "1:fr,k1,o1", 3000);
      console.log(
        `a node declared down while alive: back in view after ${ms(performance.now() - t0)}`,
      );
      await q1.send("3:2:k1:are you there");
      await k1.expect("3:are you there");
      await o1.send("3:1:room");
      await k1.expect("3:room");
      await k1.send("3:1:from k1");
      await o1.expect("3:from k1");
    });
  },
});
