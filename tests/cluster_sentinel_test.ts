/**
 * The bus behind Redis Sentinel: two nodes on `--cluster redis-sentinel://…` (a master, its
 * replica, three sentinels), the master killed with `kill -9`. The nodes must find the promoted
 * replica by themselves, deliver across nodes and accept logins again, resync presence, deliver
 * nothing twice, and say the truth on /metrics and /readyz while the bus is away.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Cluster,
  drain,
  fillRoom,
  listSettles,
  metricsPort,
  ms,
  redisInstalled,
  tryLogin,
  untilGone,
  withCluster,
} from "./cluster_support.ts";
import { sleep, USERS } from "./e2e_support.ts";
import { deliveredAgain, killMaster, startSentinels } from "./sentinel_support.ts";
import type { TestRedis } from "./redis_support.ts";

const installed = redisInstalled("cluster_sentinel_test.ts");

const POOL: Record<string, string> = { ...USERS };
for (const name of ["s1", "s2", "t1", "t2", "x1", "l1", "l2"]) POOL[name] = `pw-${name}`;

/** One value of a scrape (`name` may carry labels), or NaN when missing. */
function value(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

/** Node `i`'s /metrics and /readyz, read at once. */
async function probeNode(c: Cluster, i: number) {
  const port = await metricsPort(c, i);
  const [metrics, ready] = await Promise.all([
    fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()),
    fetch(`http://127.0.0.1:${port}/readyz`).then(async (r) => [r.status, await r.text()] as const),
  ]);
  return {
    up: value(metrics, "parley_bus_up"),
    down: value(metrics, 'parley_bus_state{state="down"}'),
    ageS: value(metrics, "parley_bus_last_message_age_seconds"),
    dropped: value(metrics, "parley_bus_dropped_total"),
    ready,
  };
}

/** The nodes connected to `redis`, one entry per connection, sorted. */
async function parleyClients(redis: TestRedis): Promise<string[]> {
  const list = String(await redis.command("CLIENT", "LIST"));
  return [...list.matchAll(/ name=parley:(\S+) /g)].map((m) => m[1]).sort();
}

/** Only probes, in order, each once. */
function assertProbes(lines: string[]): void {
  const probes = lines.filter((l) => l.startsWith("3:probe ")).map((l) => +l.slice(8));
  assert.ok(probes.length > 0 && probes.every((p, i) => i === 0 || p > probes[i - 1]), `${probes}`);
  assert.deepEqual(lines.filter((l) => !l.startsWith("3:probe ")), []);
}

Deno.test({
  name: "cluster sentinel: a switch-over, then the master killed; the nodes follow and recover",
  ignore: !installed,
  async fn() {
    // The Sentinel set starts while PostgreSQL does.
    const starting = startSentinels();
    try {
      const bus = starting.then((set) => set.url);
      const options = { nodes: 2, users: POOL, bus, args: ["--metrics-port", "0"] };
      await withCluster(options, async (c) => {
        const set = await starting;
        const [s1, t1] = await fillRoom(c, "fo", [[0, "s1"], [1, "t1"]]);
        const [s2] = await fillRoom(c, "fo2", [[0, "s2"]]);
        const x1 = await c.login(1, "x1");
        await listSettles(s1, "1:fo,s1,t1:fo2,s2");
        for (const i of [0, 1]) {
          const node = await probeNode(c, i);
          assert.deepEqual([node.up, node.down, node.ready[0]], [1, 0, 200], `n${i + 1} before`);
        }

        // A switch-over with the old master alive: both connections of both nodes must leave
        // it (a subscriber left on it would hear nothing: Centrifugo #1189).
        const switched = performance.now();
        await set.switchOver();
        const roles = await set.roles();
        assert.equal(roles.master, set.replica, "the replica is master now");
        // Sentinel would demote the old master (and close its clients) only 10 s or more later.
        for (const deadline = performance.now() + 5000;;) {
          const on = [await parleyClients(roles.master), await parleyClients(roles.replica)];
          if (on[0].join() === "n1,n1,n2,n2" && on[1].length === 0) break;
          assert.ok(performance.now() < deadline, `on (new, old) master: ${JSON.stringify(on)}`);
          await sleep(50);
        }
        const [toT1, toS1]: string[][] = [[], []];
        await deliveredAgain(s1, t1, toT1);
        await deliveredAgain(t1, s1, toS1);
        console.log(
          `switch-over: delivery back ${ms(performance.now() - switched)} after it began`,
        );
        await sleep(300);
        toT1.push(...await drain(t1));
        toS1.push(...await drain(s1));
        for (const lines of [toT1, toS1]) assertProbes(lines);
        await set.rejoin();

        let killedAt = 0;
        const { timeline, received, clients } = await killMaster(c, set, {
          from: s1,
          to: t1,
          logins: [[0, "l1"], [1, "l2"]],
          async whileDown() {
            // Nothing can be promoted for the sentinels' 500 ms of down-after: the bus is away.
            killedAt = performance.now();
            const before = await probeNode(c, 0);
            await s1.send("3:1:while away"); // for t1 on n2: dropped, never queued
            await s1.send("3:2:s2:local"); // on n1 itself: delivered
            await s2.expect("3:local");
            const [, reply] = await tryLogin(c, 0, "l1");
            assert.equal(reply, "0:-1", "a login while the bus is away");
            await x1.close(); // a logout while the bus is away: told by the resync
            const after = await probeNode(c, 0);
            for (const node of [before, after]) {
              assert.equal(node.up, 0, "parley_bus_up while away");
              assert.equal(node.down, 1, 'parley_bus_state{state="down"} while away');
              assert.equal(node.ready[0], 503, "/readyz while away");
              assert.match(node.ready[1], /^not ready: bus down/);
            }
            // Nothing was heard since the kill: the age is at least the time since it.
            const since = (performance.now() - killedAt) / 1000;
            assert.ok(after.ageS >= since, `age ${after.ageS} s, ${since} s since the kill`);
            assert.ok(after.dropped > before.dropped, "the message for n2 counted as dropped");
          },
        });
        console.log(
          `sentinel failover: promoted ${ms(timeline.promoted)} after the kill, cross-node ` +
            `delivery back after ${ms(timeline.delivery)}, logins after ${ms(timeline.logins)}`,
        );
        // Within seconds of the promotion (sentinels asked every 0.5 s at most).
        assert.ok(timeline.delivery - timeline.promoted < 5000, "delivery back within 5 s");
        assert.ok(timeline.logins - timeline.promoted < 5000, "logins back within 5 s");

        // Presence resynced on the new master: x1's logout while away reached n1, the new
        // logins are seen on both nodes.
        const full = "1:fo,s1,t1:fo2,s2";
        await untilGone(s1, "x1", full, 5000);
        await Promise.all([listSettles(s1, full, 5000), listSettles(t1, full, 5000)]);
        const [l1, l2] = clients;
        await l1.send("3:2:l2:t1:from l1");
        for (const x of [l2, t1]) await x.expect("3:from l1");
        await t1.send("3:1:from t1");
        await s1.expect("3:from t1");

        // Nothing twice: t1 got the probes in order, each once, and not what was dropped.
        await sleep(300);
        await t1.send("1");
        await t1.expect(full);
        assertProbes(received);
        await Promise.all([s1, s2, t1, l1, l2].map((x) => x.expectNothing(300)));
        for (const i of [0, 1]) {
          const node = await probeNode(c, i);
          assert.deepEqual([node.up, node.down, node.ready[0]], [1, 0, 200], `n${i + 1} after`);
          assert.ok(node.ageS < 5, `n${i + 1} hears the bus again: ${node.ageS} s`);
        }
        // Both connections of both nodes are on the master the sentinels promoted.
        assert.deepEqual(await parleyClients(set.master), ["n1", "n1", "n2", "n2"]);
      });
    } finally {
      await (await starting.catch(() => null))?.stop();
    }
  },
});
