/**
 * Network partitions, on a real network of namespaces (tests/netns_support.ts): a node cut off
 * from Redis for longer than its TTL while its clients still reach it, then healed; and 50 ms of
 * delay between a node and Redis. Checks what docs/cluster.md states ("A partition") and prints
 * what it measured.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  closingSteps,
  type Cluster,
  drain,
  fillRoom,
  joinSettles,
  listSettles,
  loginSoon,
  ms,
  redisInstalled,
  userPool,
  withCluster,
} from "./cluster_support.ts";
import { sleep } from "./e2e_support.ts";
import { type TestClient, waitFor } from "./helpers.ts";
import { netnsRefusal, startNetLab } from "./netns_support.ts";

const FILE = "cluster_partition_test.ts";
const refusal = redisInstalled(FILE) ? await netnsRefusal() : "no redis-server";
if (refusal !== null) console.warn(`SKIPPED ${FILE}: ${refusal}`);

/** Short, so a cut past it fits a test; still four heartbeats long. */
const TTL_MS = 1000;
/** The delay between a node and Redis, each way. */
const DELAY_MS = 50;
const pool = userPool("p", 12);

/** Waits until node `i` has logged `event` `count` times; resolves to the ms since `since`. */
async function logged(c: Cluster, i: number, event: string, count: number, since: number) {
  const pattern = new RegExp(` ${event}( |$)`, "gm");
  await waitFor(() => (c.log(i).match(pattern) ?? []).length >= count, `n${i + 1} ${event}`);
  return performance.now() - since;
}

/** What a client has received, gathered by {@linkcode Seen.take} so no line is lost. */
class Seen {
  readonly lines: string[] = [];
  constructor(readonly client: TestClient) {}
  /** Takes what came since the last call. */
  async take(): Promise<string[]> {
    const got = await drain(this.client);
    this.lines.push(...got);
    return this.lines;
  }
  /** Waits until `line` has come. */
  async until(line: string, timeoutMs = 5000): Promise<void> {
    await waitFor(async () => (await this.take()).includes(line), line, timeoutMs);
  }
  /** The messages (`3:` lines) received. */
  get messages(): string[] {
    return this.lines.filter((l) => l.startsWith("3:"));
  }
}

/** Sorted, comma-joined: a room list's members. */
const members = (...users: string[]) => [...users].sort().join(",");

Deno.test({
  name: "cluster partition: cut off from Redis past the TTL, healed; and 50 ms of delay",
  ignore: refusal !== null,
  async fn(t) {
    const lab = await startNetLab(2);
    try {
      await withCluster(
        { nodes: 2, users: pool.users, nodeTtlMs: TTL_MS, placement: lab.placement },
        async (c) => {
          const step = closingSteps(t, c);
          await step("cut past the TTL: the newer session wins, the stale one ends", async () => {
            const [a, b, l, u1, u2] = pool.take(5);
            const started = performance.now();
            const [oldA, bc, lc] = await fillRoom(c, "cut", [[0, a], [1, b], [0, l]]);
            const q1 = await c.login(0, u1); // in no room: asks `1` without hearing the room
            const q2 = await c.login(1, u2);
            const all = `1:cut,${members(a, b, l)}`;
            for (const q of [q1, q2]) await listSettles(q, all);
            // The reaper only runs on a node connected for a whole TTL.
            await sleep(Math.max(0, TTL_MS - (performance.now() - started)));

            await lab.cut(0);
            const t0 = performance.now();
            // Sent before n1 can know of the cut: it sits in n1's socket to Redis.
            await oldA.send("3:1:in flight");
            await lc.expect("3:in flight");
            const down = await logged(c, 0, "bus-down", 1, t0);
            // n2 declares n1 dead after its TTL: its users leave n2's view.
            const left = [await bc.next(5000), await bc.next(5000)].sort();
            assert.deepEqual(left, [`5:cut:${a}`, `5:cut:${l}`]);
            const dropped = performance.now() - t0;
            const newA = await loginSoon(c, 1, a, 5000);
            const relogin = performance.now() - t0;
            await joinSettles(newA, "cut", [a, b]);
            await bc.expect(`4:cut:${a}`);
            // Both sides go on: n1's users among themselves (the stale session too), n2's
            // with the new session; nothing crosses.
            await oldA.send(`3:2:${l}:local`);
            await lc.expect("3:local");
            await oldA.send("3:1:during the cut");
            await lc.expect("3:during the cut");
            await bc.send("3:1:to the new one");
            await newA.expect("3:to the new one");
            const seen = { old: new Seen(oldA), newA: new Seen(newA), b: new Seen(bc) };
            const l1 = new Seen(lc);

            await lab.heal(0);
            const t1 = performance.now();
            await seen.old.until("0:-1", 10_000);
            const ended = performance.now() - t1;
            const up = await logged(c, 0, "bus-up", 2, t1);
            for (const q of [q1, q2]) await listSettles(q, all, 5000);
            const whole = performance.now() - t1;
            // One live session of a, on n2: what is sent to a from either node reaches it.
            await q1.send(`3:2:${a}:from n1`);
            await q2.send(`3:2:${a}:from n2`);
            await lc.send("3:1:after");
            await seen.newA.until("3:after");
            await newA.send("3:1:from the new one");
            await seen.b.until("3:from the new one");
            await l1.until("3:from the new one");
            await seen.newA.until("3:from n1");
            await seen.newA.until("3:from n2");
            await sleep(300);
            for (const x of [...Object.values(seen), l1]) await x.take();
            console.log(
              `cut (TTL ${TTL_MS} ms): n1 bus-down ${ms(down)} after the cut; its users ` +
                `dropped on n2 after ${ms(dropped)}; the user logged in on n2 after ` +
                `${ms(relogin)}. Healed: n1's stale session ended after ${ms(ended)}, n1 ` +
                `bus-up after ${ms(up)}, both views whole after ${ms(whole)}`,
            );
            // The stale session ended and heard nothing more.
            assert.deepEqual(seen.old.lines, ["0:-1"]);
            // Nothing sent on n1 before the heal reached n2, late or twice.
            assert.deepEqual(seen.b.messages, ["3:after", "3:from the new one"]);
            assert.deepEqual(
              [...seen.newA.messages].sort(),
              ["3:after", "3:from n1", "3:from n2"],
            );
            // n1's room: the stale a left, the new a is in it, and it heard the new one once.
            assert.deepEqual(l1.lines.filter((x) => !x.startsWith("3:")).sort(), [
              `4:cut:${a}`,
              `5:cut:${a}`,
            ]);
            assert.deepEqual(l1.messages, ["3:from the new one"]);
            const owner = await c.redis.command("GET", `parley:owner:${a}`);
            assert.match(String(owner), /\tn2$/, "a is owned by n2");
          });

          await step("50 ms between a node and Redis: room order and the kick hold", async () => {
            const [a, b, l, k] = pool.take(4);
            await lab.delay(0, DELAY_MS);
            try {
              const [ac, bc, lc] = await fillRoom(c, "slow", [[0, a], [1, b], [0, l]]);
              // The delay is there: n1's messages reach n2 no sooner than it.
              const t0 = performance.now();
              await ac.send("3:1:m0");
              await bc.expect("3:m0");
              const crossing = performance.now() - t0;
              await lc.expect("3:m0");
              assert.ok(crossing >= DELAY_MS, `crossed in ${ms(crossing)}`);
              // Both nodes' members send at once; each message arrives once, in order.
              const sent = (who: string) => Array.from({ length: 30 }, (_, i) => `3:${who}${i}`);
              await Promise.all([
                ac.send(sent("a").map((m) => `3:1:${m.slice(2)}`).join("\n")),
                bc.send(sent("b").map((m) => `3:1:${m.slice(2)}`).join("\n")),
              ]);
              const [atA, atB, atL] = [new Seen(ac), new Seen(bc), new Seen(lc)];
              await atA.until(sent("b").at(-1)!);
              await atB.until(sent("a").at(-1)!);
              await atL.until(sent("a").at(-1)!);
              await atL.until(sent("b").at(-1)!);
              await sleep(200);
              const from = (x: Seen, who: string) =>
                x.messages.filter((m) => m.startsWith(`3:${who}`));
              assert.deepEqual(atA.lines, sent("b"));
              assert.deepEqual(atB.lines, sent("a"));
              assert.deepEqual(from(atL, "a"), sent("a"));
              assert.deepEqual(from(atL, "b"), sent("b"));
              assert.equal(atL.lines.length, 60);

              // The kick, both ways across the delay: the old session ends before the new one
              // starts, and the newest alone gets what is sent to the user.
              let old = await c.login(1, k);
              const kicks: string[] = [];
              for (const node of [0, 1]) {
                const fresh = await c.connect(node);
                const t1 = performance.now();
                await fresh.send(`0:${k}:${c.password(k)}`);
                const [ended, [reply, granted]] = await Promise.all([
                  old.expect("0:-1").then(() => performance.now() - t1),
                  fresh.next().then((line) => [line, performance.now() - t1] as const),
                ]);
                assert.match(reply, /^0:[1-9]\d*$/);
                assert.ok(ended <= granted, `old ended ${ms(ended)}, new began ${ms(granted)}`);
                kicks.push(`on n${node + 1}: old ended ${ms(ended)}, new began ${ms(granted)}`);
                const sender = node === 0 ? bc : lc; // from the other node, then the same
                await sender.send(`3:2:${k}:to ${node}`);
                await fresh.expect(`3:to ${node}`);
                await old.expectNothing(100);
                old = fresh;
              }
              console.log(
                `${DELAY_MS} ms each way between n1 and Redis (${lab.delayBy}): a room message ` +
                  `from n1 reached n2 after ${ms(crossing)}; 30 + 30 messages sent at once ` +
                  `arrived once each, in order; the kick ${kicks.join("; ")}`,
              );
            } finally {
              await lab.heal(0);
            }
          });
        },
      );
    } finally {
      await lab.close();
    }
  },
});
