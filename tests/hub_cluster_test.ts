// Unit tests of the hub's cluster side (lib/hub/hub.ts): its view of other nodes' sessions, the
// fencing rules that keep stale events from changing it, and what it hands the cluster to send.
// The cluster here records calls and answers claims as the test says; the Redis link itself is
// tested against a real Redis in tests/cluster_link_test.ts and end to end in tests/cluster_*.
import assert from "node:assert/strict";
import { parseCommand } from "../lib/protocol/codec.ts";
import type { ClusterEvents, Hub, HubCluster } from "../lib/hub/hub.ts";
import type { EdgeClaims } from "../lib/server/hub_edge.ts";
import type { SqliteStore } from "../lib/store/sqlite_store.ts";
import { connectAs, inRoom, makeHub, RecordingPeer, send } from "./hub_support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A cluster that records what the hub asks of it. Claims (made by the edge) get fences the test
 * hands out; a join comes back to the hub as the bus would hand it back, on the next microtask.
 */
class RecordingCluster implements HubCluster, EdgeClaims {
  readonly nodeId = "here";
  /** The hub whose joins come back (set once it is made). */
  events: ClusterEvents | null = null;
  calls: string[] = [];
  nextFence = 100;
  /** What the next claims resolve to: a fence (default: the next one) or null. */
  answers: (number | null)[] = [];
  claim(user: string): Promise<number | null> {
    const answer = this.answers.length > 0 ? this.answers.shift()! : this.nextFence++;
    this.calls.push(`claim ${user}`);
    return Promise.resolve(answer);
  }
  ended(user: string, fence: number): void {
    this.calls.push(`ended ${user} ${fence}`);
  }
  joined(user: string, fence: number, room: string, hash: string | null): void {
    this.calls.push(`joined ${user} ${fence} ${room} ${hash === null ? "public" : "password"}`);
    queueMicrotask(() => this.events?.clusterJoined(user, fence, this.nodeId, room, hash));
  }
  roomRun(nodes: Iterable<string>, room: Uint8Array, chunk: Uint8Array, lines: number): void {
    const text = decoder.decode(chunk).replaceAll("\n", "|");
    this.calls.push(`roomRun ${[...nodes].join(",")} ${decoder.decode(room)} ${lines} ${text}`);
  }
  direct(node: string, users: string[], line: Uint8Array): void {
    this.calls.push(`direct ${node} ${users.join(",")} ${decoder.decode(line).trimEnd()}`);
  }
  take(): string[] {
    const calls = this.calls;
    this.calls = [];
    return calls;
  }
}

/** A hub in a cluster of recorded calls (on its own store, or on `store`, shared). */
async function clusterHub(store?: SqliteStore) {
  const cluster = new RecordingCluster();
  const made = await makeHub({ cluster, claims: cluster }, store);
  cluster.events = made.hub.clusterEvents;
  return { ...made, cluster };
}

/** Runs `body` on a hub in a cluster of recorded calls, closing its store afterwards. */
async function withClusterHub(
  body: (made: Awaited<ReturnType<typeof clusterHub>>) => Promise<void>,
): Promise<void> {
  const made = await clusterHub();
  try {
    await body(made);
  } finally {
    await made.store.close();
  }
}

/** Logs `user` in here and has it join lobby, its replies discarded. */
async function inLobby(hub: Hub, user: string): Promise<RecordingPeer> {
  const peer = await connectAs(hub, user);
  await inRoom(hub, "lobby", peer);
  return peer;
}

/** Another node's session: `user` claimed with `fence` on `node`, and in `room` (public). */
function remoteIn(hub: Hub, user: string, fence: number, node: string, room: string): void {
  hub.clusterEvents.clusterClaim(user, fence, node);
  hub.clusterEvents.clusterJoined(user, fence, node, room, null);
}

// A login claims the user first; what the claim answers decides the login.
for (
  const { rule, answers, replies } of [
    {
      rule: "a login claims the user first, and the fence is the session id",
      answers: [], // the next fence: 100
      replies: ["0:100", "@started:alice"],
    },
    {
      rule: "a refused claim is a failed login (0:-1), and nothing is ended",
      answers: [null],
      replies: ["0:-1", "@ended:login-failed"],
    },
  ]
) {
  Deno.test(`hub cluster: ${rule}`, () =>
    withClusterHub(async ({ hub, cluster }) => {
      cluster.answers.push(...answers);
      const alice = await connectAs(hub, "alice");
      assert.deepEqual(alice.take(), replies);
      assert.deepEqual(cluster.take(), ["claim alice"]);
    }));
}

Deno.test("hub cluster: a grant overtaken by a newer claim is given back, not started", () =>
  withClusterHub(async ({ hub, cluster }) => {
    const peer = new RecordingPeer("alice");
    hub.connect(peer);
    const { promise, resolve } = Promise.withResolvers<number | null>();
    cluster.claim = (user) => {
      cluster.calls.push(`claim ${user}`);
      return promise;
    };
    const loggingIn = send(hub, peer, "0:alice:pw");
    while (cluster.calls.length === 0) await new Promise((r) => setTimeout(r, 1));
    // The newer claim's event is handled before our grant's continuation runs.
    hub.clusterEvents.clusterClaim("alice", 8, "there");
    resolve(7);
    await loggingIn;
    assert.deepEqual(peer.take(), ["0:-1", "@ended:login-failed"]);
    assert.deepEqual(cluster.take(), ["claim alice", "ended alice 7"]);
    assert.equal(hub.sessionCount, 0);
    assert.equal(hub.remoteSessionCount, 1);
  }));

Deno.test("hub cluster: a newer claim elsewhere ends the local session: 0:-1 and 5: here", () =>
  withClusterHub(async ({ hub, cluster }) => {
    const alice = await connectAs(hub, "alice");
    const bob = await connectAs(hub, "bob");
    await inRoom(hub, "lobby", alice, bob);
    cluster.take();
    assert.equal(
      hub.clusterEvents.clusterClaim("alice", 99, "there"),
      0,
      "an older fence is stale",
    );
    assert.deepEqual(alice.take(), []);
    assert.equal(
      hub.clusterEvents.clusterClaim("alice", 500, "there"),
      100,
      "returns the fence it ended",
    );
    assert.deepEqual(alice.take(), ["0:-1", "@ended:replaced"]);
    assert.deepEqual(bob.take(), ["5:lobby:alice"]);
    assert.deepEqual(cluster.take(), ["ended alice 100"]);
    // alice is now on the other node: a 3:2 goes there, once.
    await send(hub, bob, "3:2:alice:carol:hi");
    // Between nodes, lines travel in the v1.1 from form (lib/hub/from_form.ts).
    assert.deepEqual(cluster.take(), ["direct there alice 3::bob:hi"]);
    assert.deepEqual(bob.take(), ["9:3:not-online:carol"]);
  }));

Deno.test("hub cluster: remote members are listed, told of, and reached once per node", () =>
  withClusterHub(async ({ hub, cluster }) => {
    const bob = await inLobby(hub, "bob");
    cluster.take();
    remoteIn(hub, "alice", 500, "n2", "lobby");
    remoteIn(hub, "carol", 501, "n3", "lobby");
    remoteIn(hub, "dave", 502, "n3", "lobby");
    assert.deepEqual(bob.take(), ["4:lobby:alice", "4:lobby:carol", "4:lobby:dave"]);
    await send(hub, bob, "1");
    assert.deepEqual(bob.take(), ["1:lobby,alice,bob,carol,dave"]);
    // Two lines in one turn, as a client's burst arrives.
    hub.handle(bob, parseCommand(encoder.encode("3:1:one"))!);
    hub.handle(bob, parseCommand(encoder.encode("3:1:two"))!);
    hub.flush();
    // One run for both messages, once per node (n3 has two members), not once per recipient.
    assert.deepEqual(cluster.take(), ["roomRun n2,n3 lobby 2 3:lobby:bob:one|3:lobby:bob:two|"]);
    // Switching rooms elsewhere: 5: here; a session ending elsewhere: 5: here.
    hub.clusterEvents.clusterJoined("carol", 501, "n3", "den", null);
    hub.clusterEvents.clusterEnded("dave", 502, "n3");
    assert.deepEqual(bob.take(), ["5:lobby:carol", "5:lobby:dave"]);
    await send(hub, bob, "1");
    assert.deepEqual(bob.take(), ["1:den,carol:lobby,alice,bob"]);
  }));

Deno.test("hub cluster: stale events (older fences, wrong node) change nothing", () =>
  withClusterHub(async ({ hub }) => {
    const bob = await inLobby(hub, "bob");
    remoteIn(hub, "alice", 600, "n2", "lobby");
    bob.take();
    hub.clusterEvents.clusterJoined("alice", 599, "n1", "lobby", null); // an older session's late join
    hub.clusterEvents.clusterEnded("alice", 599, "n1"); // and its late end
    hub.clusterEvents.clusterEnded("alice", 600, "n1"); // the right fence from the wrong node
    hub.clusterEvents.clusterClaim("alice", 598, "n1");
    assert.deepEqual(bob.take(), []);
    await send(hub, bob, "2:lobby");
    assert.deepEqual(bob.take(), ["2:lobby:alice,bob"]);
  }));

Deno.test("hub cluster: a room first seen in another node's join is made here with its hash", () =>
  withClusterHub(async ({ hub }) => {
    hub.clusterEvents.clusterClaim("alice", 700, "n2");
    hub.clusterEvents.clusterJoined("alice", 700, "n2", "vip", "scrypt$not-a-real-hash");
    assert.ok(hub.hasRoom("vip"));
    const bob = await connectAs(hub, "bob");
    bob.take();
    await send(hub, bob, "1");
    assert.deepEqual(bob.take(), ["1:"], "a password room is not listed");
    await send(hub, bob, "2:vip");
    assert.deepEqual(bob.take(), ["9:2:room-password"]);
  }));

Deno.test("hub cluster: a room another node stored first is joined, its password checked", () =>
  withClusterHub(async ({ hub, store }) => {
    // Another node on the same store creates "den" with a password; no event reaches this one.
    const { hub: other } = await clusterHub(store);
    const carol = await connectAs(other, "carol");
    await send(other, carol, "2:den:secret");
    assert.deepEqual(carol.take().slice(-1), ["2:den:carol"]);
    const bob = await connectAs(hub, "bob");
    bob.take();
    await send(hub, bob, "2:den:wrong");
    assert.deepEqual(bob.take(), ["9:2:room-password"]);
    await send(hub, bob, "2:den");
    assert.deepEqual(bob.take(), ["9:2:room-password"]);
    await send(hub, bob, "2:den:secret");
    assert.deepEqual(bob.take(), ["2:den:bob"], "carol is on the other node, which sent no event");
  }));

Deno.test("hub cluster: a snapshot replaces the node's part; a node down drops it", () =>
  withClusterHub(async ({ hub }) => {
    const bob = await inLobby(hub, "bob");
    remoteIn(hub, "alice", 800, "n2", "lobby");
    hub.clusterEvents.clusterClaim("carol", 801, "n2");
    bob.take();
    hub.clusterEvents.clusterClaim("Zed", 900, "n2"); // claimed after n2 wrote the snapshot below
    hub.clusterEvents.clusterNodeSessions("n2", [
      { user: "carol", fence: 801, room: "lobby", roomPasswordHash: null },
      { user: "dave", fence: 802, room: null, roomPasswordHash: null },
    ], 850);
    assert.deepEqual(bob.take(), ["5:lobby:alice", "4:lobby:carol"]);
    assert.equal(hub.remoteSessionCount, 3, "carol, dave, and Zed: newer than the snapshot");
    hub.clusterEvents.clusterNodeDown("n2");
    assert.deepEqual(bob.take(), ["5:lobby:carol"]);
    assert.equal(hub.remoteSessionCount, 0);
    await send(hub, bob, "3:2:carol,dave:hi");
    assert.deepEqual(bob.take(), ["9:3:not-online:carol,dave"]);
  }));

Deno.test("hub cluster: deliveries from the bus reach this node's members only", () =>
  withClusterHub(async ({ hub }) => {
    const bob = await connectAs(hub, "bob");
    const carol = await connectAs(hub, "carol");
    await inRoom(hub, "lobby", bob);
    carol.take();
    // Lines come in the from form; members without from get the v1 form.
    const lines = (text: string) => new TextEncoder().encode(text);
    hub.clusterEvents.deliverRoom("lobby", lines("3:lobby:x:a\n3:lobby:y:b\n"), 2);
    hub.clusterEvents.deliverRoom("nowhere", lines("3:nowhere:x:c\n"), 1);
    hub.clusterEvents.deliverDirect(["carol", "dave"], lines("3::x:d\n"));
    assert.deepEqual(bob.take(), ["3:a", "3:b"]);
    assert.deepEqual(carol.take(), ["3:d"]);
    assert.equal(hub.deliveries, 3);
  }));

Deno.test("hub cluster: a node declared down while alive comes back with its next snapshot", () =>
  withClusterHub(async ({ hub }) => {
    const bob = await connectAs(hub, "bob");
    await send(hub, bob, "2:lobby");
    remoteIn(hub, "alice", 900, "n2", "lobby");
    assert.deepEqual(hub.clusterEvents.clusterNodes(), ["n2"]);
    bob.take();
    hub.clusterEvents.clusterNodeDown("n2");
    assert.deepEqual(hub.clusterEvents.clusterNodes(), []);
    // n2 was only stalled: it resyncs and lists the same session, same fence.
    hub.clusterEvents.clusterNodeSessions("n2", [
      { user: "alice", fence: 900, room: "lobby", roomPasswordHash: null },
    ], 900);
    assert.deepEqual(bob.take(), ["5:lobby:alice", "4:lobby:alice"]);
    assert.deepEqual(hub.clusterEvents.clusterNodes(), ["n2"]);
    // An ended session is not revived by a late join of it.
    hub.clusterEvents.clusterEnded("alice", 900, "n2");
    hub.clusterEvents.clusterJoined("alice", 900, "n2", "lobby", null);
    assert.deepEqual(bob.take(), ["5:lobby:alice"]);
    assert.equal(hub.remoteSessionCount, 0);
  }));
