// The ordering rule of docs/protocol.md (Rooms): a joiner's `2:` reply comes before any `3:`,
// `4:` or `5:` of that room reaches it, on one node and across a cluster alike. Tested without
// races left to chance: two hubs (two nodes) share a scripted bus, and the test walks every
// interleaving of the clients' commands with the bus handing each node its events.
import assert from "node:assert/strict";
import { type Command, parseCommand } from "../lib/protocol/codec.ts";
import {
  type ClusterEvents,
  Hub,
  type HubCluster,
  type HubResults,
  type HubWork,
} from "../lib/hub/hub.ts";
import { RecordingPeer } from "./hub_support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One event on the bus: for every node (a join), or for one node (a room run). */
interface BusEvent {
  to: string | null;
  /** The user whose join this is, if it is one. */
  joiner?: string;
  deliver: (events: ClusterEvents) => void;
}

/** The bus: one total order of events, and how far each node has read it. */
class ScriptedBus {
  log: BusEvent[] = [];
  read = new Map<string, number>();
  /** The next event for `node`, or undefined. */
  next(node: string): { event: BusEvent; at: number } | undefined {
    for (let at = this.read.get(node) ?? 0; at < this.log.length; at++) {
      const event = this.log[at];
      if (event.to === null || event.to === node) return { event, at };
    }
    return undefined;
  }
}

/** A node's side of the bus: what its hub publishes goes onto the shared log. */
class BusCluster implements HubCluster {
  constructor(readonly nodeId: string, readonly bus: ScriptedBus) {}
  ended(user: string, fence: number): void {
    const node = this.nodeId;
    this.bus.log.push({ to: null, deliver: (e) => e.clusterEnded(user, fence, node) });
  }
  joined(user: string, fence: number, room: string, hash: string | null): void {
    const node = this.nodeId;
    this.bus.log.push({
      to: null,
      joiner: user,
      deliver: (e) => e.clusterJoined(user, fence, node, room, hash),
    });
  }
  roomRun(nodes: Iterable<string>, room: Uint8Array, chunk: Uint8Array, lines: number): void {
    const name = decoder.decode(room);
    for (const node of nodes) {
      this.bus.log.push({ to: node, deliver: (e) => e.deliverRoom(name, chunk, lines) });
    }
  }
  direct(node: string, users: string[], line: Uint8Array): void {
    this.bus.log.push({ to: node, deliver: (e) => e.deliverDirect(users, line) });
  }
}

/** Work answered by the test, synchronously, right after the hub asks. */
class ScriptedWork implements HubWork {
  asked: [kind: string, ticket: number][] = [];
  checkLogin(ticket: number): void {
    this.asked.push(["login", ticket]);
  }
  claim(ticket: number): void {
    this.asked.push(["claim", ticket]);
  }
  storeRoom(ticket: number): void {
    this.asked.push(["store", ticket]);
  }
  checkRoomPassword(ticket: number): void {
    this.asked.push(["password", ticket]);
  }
}

interface Node {
  id: string;
  hub: Hub;
  results: HubResults;
  work: ScriptedWork;
}

/** A hub whose work the test answers, in a cluster on `bus` or alone; room R exists. */
function scriptedHub(cluster?: HubCluster): { hub: Hub; results: HubResults; work: ScriptedWork } {
  const work = new ScriptedWork();
  const edge: { results?: HubResults } = {};
  const hub = new Hub({
    work: (results) => {
      edge.results = results;
      return work;
    },
    cluster,
    schedule: () => {}, // runs are flushed by the next event, or by the test's step end
  });
  hub.loadRooms([{ name: "R", passwordHash: null }]);
  assert.ok(edge.results !== undefined);
  return { hub, results: edge.results, work };
}

function makeNode(id: string, bus: ScriptedBus): Node {
  return { id, ...scriptedHub(new BusCluster(id, bus)) };
}

const command = (line: string): Command => {
  const parsed = parseCommand(encoder.encode(line));
  assert.ok(parsed !== null);
  return parsed;
};

let nextFence = 1000;

/** Logs `user` in on `node`, answering the login and the claim, and tells every node. */
function login(node: Node, all: Node[], user: string): RecordingPeer {
  const peer = new RecordingPeer(user);
  node.hub.connect(peer);
  assert.equal(node.hub.handle(peer, command(`0:${user}:pw`)), false);
  node.results.loginChecked(node.work.asked.at(-1)![1], true);
  const fence = nextFence++;
  node.results.claimDecided(node.work.asked.at(-1)![1], fence);
  for (const other of all) other.hub.clusterEvents.clusterClaim(user, fence, node.id);
  return peer;
}

/** Delivers the whole bus to every node. */
function drain(bus: ScriptedBus, nodes: Node[]): void {
  for (const node of nodes) {
    for (let next = bus.next(node.id); next; next = bus.next(node.id)) {
      bus.read.set(node.id, next.at + 1);
      next.event.deliver(node.hub.clusterEvents);
    }
    node.hub.flush();
  }
}

/** Every order of `steps` that keeps each step after those it names in `after`. */
function* interleavings(
  steps: { name: string; after: string[] }[],
  done: string[] = [],
): Generator<string[]> {
  if (done.length === steps.length) {
    yield done;
    return;
  }
  for (const step of steps) {
    if (done.includes(step.name) || !step.after.every((name) => done.includes(name))) continue;
    yield* interleavings(steps, [...done, step.name]);
  }
}

/** What `peer` got about room R, starting with its `2:`, checked against the rule. */
function assertJoinedFirst(peer: RecordingPeer, order: string[]): string[] {
  const lines = peer.take();
  const first = lines.findIndex((line) => /^(2:R:|3:|4:R:|5:R:)/.test(line));
  assert.ok(first !== -1 && lines[first].startsWith("2:R:"), `${peer.label}: ${order}: ${lines}`);
  return lines.slice(first);
}

Deno.test("hub ordering: two joins of one room on two nodes, in every interleaving", () => {
  // alice joins R on node A; bob joins R on node B; carol, already in R on B, talks. Each node
  // learns of the joins and carol's message only when the bus hands them over.
  const steps = [
    { name: "alice joins", after: [] },
    { name: "bob joins", after: [] },
    { name: "carol says", after: [] },
    { name: "A reads 1", after: [] },
    { name: "A reads 2", after: ["A reads 1"] },
    { name: "A reads 3", after: ["A reads 2"] },
    { name: "B reads 1", after: [] },
    { name: "B reads 2", after: ["B reads 1"] },
    { name: "B reads 3", after: ["B reads 2"] },
  ];
  let orders = 0;
  for (const order of interleavings(steps)) {
    const bus = new ScriptedBus();
    const a = makeNode("A", bus);
    const b = makeNode("B", bus);
    const nodes = [a, b];
    const alice = login(a, nodes, "alice");
    const bob = login(b, nodes, "bob");
    const carol = login(b, nodes, "carol");
    assert.equal(b.hub.handle(carol, command("2:R")), false); // waits for the bus
    drain(bus, nodes);
    bus.log = [];
    bus.read.clear();
    for (const peer of [alice, bob, carol]) peer.take();
    const joins = { alice: a, bob: b } as const;
    for (const step of order) {
      const [who, verb, n] = step.split(" ");
      if (verb === "joins") {
        const node = joins[who as keyof typeof joins];
        const peer = who === "alice" ? alice : bob;
        assert.equal(node.hub.handle(peer, command("2:R")), false, "a join waits for the bus");
      } else if (verb === "says") {
        b.hub.handle(carol, command("3:1:hi"));
        b.hub.flush();
      } else {
        // A node reads the next event meant for it, if one has been published by now.
        const node = who === "A" ? a : b;
        const next = bus.next(node.id);
        assert.ok(Number(n) > 0);
        if (next === undefined) continue;
        bus.read.set(node.id, next.at + 1);
        next.event.deliver(node.hub.clusterEvents);
        node.hub.flush();
      }
    }
    drain(bus, nodes);
    orders++;
    // The bus's order of the two joins is the order every node applies them in.
    const [firstJoiner, secondJoiner] = bus.log.flatMap((event) => event.joiner ?? []);
    const peerOf = (user: string) => user === "alice" ? alice : bob;
    const first = assertJoinedFirst(peerOf(firstJoiner), order);
    const second = assertJoinedFirst(peerOf(secondJoiner), order);
    // The first joiner's 2: lists carol and itself; the second's lists all three.
    assert.equal(first[0], `2:R:${["carol", firstJoiner].sort().join(",")}`, `${order}`);
    assert.equal(second[0], "2:R:alice,bob,carol", `${order}`);
    assert.ok(first.includes(`4:R:${secondJoiner}`), `${firstJoiner} hears of ${secondJoiner}`);
    assert.ok(
      !second.includes(`4:R:${firstJoiner}`),
      `${secondJoiner} is not told of an earlier joiner`,
    );
    // carol's message reaches a joiner only after its 2:, and at most once.
    for (const lines of [first, second]) assert.ok(lines.filter((l) => l === "3:hi").length <= 1);
    assert.deepEqual(carol.take().filter((l) => l.startsWith("4:")).sort(), [
      "4:R:alice",
      "4:R:bob",
    ]);
  }
  assert.ok(orders > 100, `walked ${orders} interleavings`);
});

Deno.test("hub ordering: on one node a join is answered at once, before anything of the room", () => {
  const { hub, results, work } = scriptedHub();
  const peers = ["alice", "bob"].map((user) => {
    const peer = new RecordingPeer(user);
    hub.connect(peer);
    hub.handle(peer, command(`0:${user}:pw`));
    results.loginChecked(work.asked.at(-1)![1], true);
    return peer;
  });
  const [alice, bob] = peers;
  assert.equal(hub.handle(alice, command("2:R")), true);
  hub.handle(alice, command("3:0:before bob"));
  assert.equal(hub.handle(bob, command("2:R")), true); // flushes alice's run first
  hub.handle(alice, command("3:0:after bob"));
  hub.flush();
  assert.deepEqual(bob.take().slice(-2), ["2:R:alice,bob", "3:after bob"]);
  assert.deepEqual(alice.take().slice(-4), [
    "2:R:alice",
    "3:before bob",
    "4:R:bob",
    "3:after bob",
  ]);
});
