/**
 * Sessions across a cluster: a login on one node ends the user's session on another exactly as
 * it would on one server, and never do two sessions of a user receive at once, not during a
 * handover under a stream of messages, and not when two logins race on two nodes.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  closingSteps,
  drain,
  fillRoom,
  redisInstalled,
  userPool,
  withCluster,
} from "./cluster_support.ts";
import { sessionId, sleep, USERS } from "./e2e_support.ts";
import type { TestClient } from "./helpers.ts";

const installed = redisInstalled("cluster_sessions_test.ts");

/** Users `s01`…`s40`, besides the usual ones; each case takes users no other case uses. */
const pool = userPool("s", 40);
const ALL_USERS = { ...USERS, ...pool.users };
const take = pool.take;

function login(user: string): string {
  return `0:${user}:${ALL_USERS[user]}`;
}

/** The numbers of the `3:r<k>` and `3:d<k>` lines among `lines`. */
function numbers(lines: string[]): number[] {
  return lines.flatMap((line) => {
    const match = /^3:[rd](\d+)$/.exec(line);
    return match ? [Number(match[1])] : [];
  });
}

/**
 * `user`'s session `old` (on node `from`, in `room` with `near` on `from` and `far` on the
 * other node) is taken over by a login on connection `fresh` (node `to`) while `sender` (in the
 * room, on a third node) streams room and direct messages numbered 1, 2, …. Checks that no
 * number reaches both sessions, that the old one's stop before the new one's start, and that
 * the room on both nodes sees the user leave and come back.
 */
async function handover(
  user: string,
  room: string,
  old: TestClient,
  fresh: TestClient,
  near: TestClient,
  far: TestClient,
  sender: TestClient,
): Promise<void> {
  let streaming = true;
  let sent = 0;
  const stream = (async () => {
    while (streaming) {
      sent++;
      await sender.send(sent % 2 ? `3:1:r${sent}` : `3:2:${user}:d${sent}`);
      await sleep(2);
    }
  })();
  try {
    await sleep(300);
    await fresh.send(login(user));
    const reply = await fresh.next();
    sessionId(reply);
    await fresh.send(`2:${room}`);
    await sleep(300);
  } finally {
    streaming = false;
    await stream;
  }
  await sleep(300);
  const oldLines = await drain(old);
  const newLines = await drain(fresh);
  const nearLines = await drain(near);
  const farLines = await drain(far);
  await drain(sender); // 9:3:not-online while neither session had the user: allowed

  // The old session: messages, then 0:-1, then nothing at all.
  const end = oldLines.indexOf("0:-1");
  assert.ok(end !== -1, `the old session got 0:-1: ${JSON.stringify(oldLines.slice(-5))}`);
  assert.deepEqual(oldLines.slice(end + 1), [], "nothing after 0:-1");
  assert.ok(oldLines.slice(0, end).every((l) => /^3:[rd]\d+$/.test(l)), "only messages before");
  // The new one: its room's 2: reply and messages (a direct one may come before the reply).
  const joinReply = newLines.findIndex((l) => l.startsWith(`2:${room}:`));
  assert.ok(joinReply !== -1, "the new session joined");
  assert.deepEqual(
    newLines.filter((l) => !/^3:[rd]\d+$/.test(l)),
    [newLines[joinReply]],
    "the new session got messages and its join reply only",
  );
  const before = numbers(oldLines);
  const after = numbers(newLines);
  assert.ok(before.length > 0, "the old session got messages before the handover");
  assert.ok(after.length > 0, "the new session got messages after it");
  const both = before.filter((k) => after.includes(k));
  assert.deepEqual(both, [], "no message reached both sessions");
  assert.ok(
    Math.max(...before) < Math.min(...after),
    `the old session stopped (at ${Math.max(...before)}) before the new one started (at ${
      Math.min(...after)
    })`,
  );
  // Each session's messages are in the order sent, none twice.
  for (const got of [before, after]) {
    assert.ok(got.every((k, i) => i === 0 || k > got[i - 1]), `in order: ${got.join(" ")}`);
  }
  // Both nodes' members of the room: the user left (5:) and came back (4:), once each, in
  // that order, amid the room messages (all of them, in order).
  for (const lines of [nearLines, farLines]) {
    const presence = lines.filter((l) => !/^3:r\d+$/.test(l));
    assert.deepEqual(presence, [`5:${room}:${user}`, `4:${room}:${user}`]);
    const got = numbers(lines);
    const expected = Array.from({ length: sent }, (_, i) => i + 1).filter((k) => k % 2);
    assert.deepEqual(got, expected, "the room's others got every room message, once, in order");
  }
}

Deno.test({
  name: "cluster sessions: one live session per user across the nodes",
  ignore: !installed,
  async fn(t) {
    await withCluster({ nodes: 3, users: ALL_USERS }, async (c) => {
      const step = closingSteps(t, c);

      await step("a login on another node ends the session there, as on one node", async () => {
        const [u, w, y, s] = take(4);
        const room = "handover";
        const members: [number, string][] = [[0, u], [0, w], [1, y], [2, s]];
        const [a, near, far, sender] = await fillRoom(c, room, members, 2000);

        // n1 → n2, then back to n1 on the connection that lost (it stays open, free to log in).
        const b = await c.connect(1);
        await handover(u, room, a, b, near, far, sender);
        await handover(u, room, b, a, near, far, sender);

        // The session that won works: it chats with both nodes, and the loser hears nothing.
        await a.send("3:1:back");
        for (const x of [near, far, sender]) await x.expect("3:back");
        await sender.send(`3:2:${u}:to you`);
        await a.expect("3:to you");
        await b.expectNothing(200);
        assert.equal(b.closed, false, "the replaced connection stays open");
      });

      await step("two logins of one user racing on two nodes leave one session", async () => {
        const users = take(6);
        const [watcher] = take(1);
        const sender = await c.login(2, watcher);
        const live = new Map<string, TestClient>();
        let winsOnN1 = 0;
        let replacedAfterGrant = 0;
        const rounds = 24;
        for (let round = 0; round < rounds; round++) {
          const user = users[round % users.length];
          const previous = live.get(user); // from six rounds ago: it must end too
          const x = await c.connect(0);
          const y = await c.connect(1);
          await Promise.all([x.send(login(user)), y.send(login(user))]);
          const got = new Map<TestClient, string[]>([[x, []], [y, []]]);
          const prevLines: string[] = [];
          const deadline = Date.now() + 10_000;
          let quietSince = Date.now();
          for (;;) {
            await sleep(20);
            for (const [client, lines] of got) {
              const more = await drain(client);
              if (more.length > 0) quietSince = Date.now();
              lines.push(...more);
            }
            if (previous) prevLines.push(...await drain(previous));
            const last = [...got.values()].map((lines) => lines.at(-1));
            const settled = last.every((l) => l !== undefined) &&
              last.filter((l) => l !== "0:-1").length === 1;
            if (settled && Date.now() - quietSince >= 150) break;
            if (Date.now() > deadline) {
              throw new Error(
                `round ${round} did not settle: ${JSON.stringify([...got.values()])}`,
              );
            }
          }
          const [xs, ys] = [got.get(x)!, got.get(y)!];
          for (const lines of [xs, ys]) {
            assert.ok(lines.length <= 2, `round ${round}: ${JSON.stringify([xs, ys])}`);
            assert.ok(lines.every((l, i) => i === lines.length - 1 ? true : /^0:\d+$/.test(l)));
            if (lines.length === 2) assert.equal(lines[1], "0:-1");
            if (lines.length === 1 && lines[0] !== "0:-1") sessionId(lines[0]);
          }
          const winner = xs.at(-1) !== "0:-1" ? x : y;
          const loser = winner === x ? y : x;
          if (winner === x) winsOnN1++;
          if (xs.length + ys.length > 2) replacedAfterGrant++;
          if (previous) {
            assert.deepEqual(prevLines, ["0:-1"], `round ${round}: the earlier session ended`);
          }
          // A message to the user reaches the winner only.
          await sender.send(`3:2:${user}:ping ${round}`);
          await winner.expect(`3:ping ${round}`);
          await Promise.all([loser.expectNothing(100), sender.expectNothing(0)]);
          await loser.close();
          live.set(user, winner);
        }
        console.log(
          `login races: ${rounds} rounds, n1 won ${winsOnN1}, n2 won ${
            rounds - winsOnN1
          }, ${replacedAfterGrant} where the first granted lost to the second`,
        );
      });
    });
  },
});
