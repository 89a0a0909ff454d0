/**
 * v1.1 across a cluster (docs/protocol.md): a `from` client gets `3:<room>:<sender>:<message>`
 * for room and direct messages sent on another node, while v1 clients on either node get what
 * they always did, with and without --stamp-sender.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Cluster, joinSettles, redisInstalled, withCluster } from "./cluster_support.ts";
import type { TestClient } from "./helpers.ts";

const installed = redisInstalled("v11_cluster_test.ts");

/** Logs `user` into node `i` with `from` on. */
async function fromClient(c: Cluster, i: number, user: string): Promise<TestClient> {
  const client = await c.connect(i);
  await client.send("8:from");
  await client.expect("8:from");
  await client.send(`0:${user}:${c.password(user)}`);
  assert.match(await client.next(), /^0:\d+$/);
  return client;
}

/** alice (from) and bob (v1) on node 0, carol (from) and dave (v1) on node 1, all in `room`. */
async function fourInRoom(c: Cluster, room: string): Promise<TestClient[]> {
  const alice = await fromClient(c, 0, "alice");
  const bob = await c.login(0, "bob");
  const carol = await fromClient(c, 1, "carol");
  const dave = await c.login(1, "dave");
  const all = [alice, bob, carol, dave];
  const names = ["alice", "bob", "carol", "dave"];
  for (let i = 0; i < all.length; i++) {
    await joinSettles(all[i], room, names.slice(0, i + 1));
    for (let k = 0; k < i; k++) await all[k].expect(`4:${room}:${names[i]}`);
  }
  return all;
}

for (const stamp of [false, true]) {
  const flag = stamp ? " --stamp-sender" : "";
  Deno.test({
    name: `v1.1 cluster: from reaches other nodes' clients, v1 clients get v1${flag}`,
    ignore: !installed,
    fn: () =>
      withCluster({ nodes: 2, args: stamp ? ["--stamp-sender"] : [] }, async (c) => {
        const [alice, bob, carol, dave] = await fourInRoom(c, "hall");
        const v1 = (sender: string, text: string) => stamp ? `3:${sender}:${text}` : `3:${text}`;
        // A room message from node 0 reaches node 1 in both forms.
        await bob.send("3:0:a:b");
        await alice.expect("3:hall:bob:a:b");
        await bob.expect(v1("bob", "a:b"));
        await carol.expect("3:hall:bob:a:b");
        await dave.expect(v1("bob", "a:b"));
        // And from node 1 to node 0, the sender left out.
        await carol.send("3:1:hey");
        await alice.expect("3:hall:carol:hey");
        await bob.expect(v1("carol", "hey"));
        await dave.expect(v1("carol", "hey"));
        // Direct messages across nodes: the room field is empty.
        await dave.send("3:2:alice:bob:psst");
        await alice.expect("3::dave:psst");
        await bob.expect(v1("dave", "psst"));
        await alice.send("3:2:carol:dave:hi");
        await carol.expect("3::alice:hi");
        await dave.expect(v1("alice", "hi"));
        for (const client of [alice, bob, carol, dave]) await client.expectNothing(100);
      }),
  });
}

Deno.test({
  name: "v1.1 cluster: a draining node's sessions end normally: the other nodes hear 5:",
  ignore: !installed,
  fn: () =>
    withCluster({ nodes: 2, args: ["--drain-ms", "300"] }, async (c) => {
      const [alice, bob, carol, dave] = await fourInRoom(c, "lounge");
      await alice.send("8:why");
      await alice.expect("8:from,why");
      const stopping = c.stopNode(0);
      await alice.expect("7:shutdown");
      await alice.expect("0:-1");
      await bob.expect("5:lounge:alice"); // alice connected first: her batch goes first
      await bob.expect("0:-1");
      const heard = [await carol.next(), await carol.next()].sort();
      assert.deepEqual(heard, ["5:lounge:alice", "5:lounge:bob"]);
      assert.deepEqual([await dave.next(), await dave.next()].sort(), heard);
      assert.equal((await stopping)?.code, 0);
    }),
});
