// The Redis link (lib/cluster/link.ts) against a real, throwaway Redis, with two or three hubs in this
// process sharing one in-memory store: the claim protocol under races, liveness (heartbeats and
// reaping), and what happens when Redis restarts. End-to-end cases over TCP, with real node
// processes and PostgreSQL, are in tests/cluster_*_test.ts.
import assert from "node:assert/strict";
import { ClusterLink } from "../lib/cluster/link.ts";
import { Hub } from "../lib/hub/hub.ts";
import { Logger } from "../lib/observe/log.ts";
import { hubEdge } from "../lib/server/hub_edge.ts";
import type { SqliteStore } from "../lib/store/sqlite_store.ts";
import { hasher, makeHub, RecordingPeer, send } from "./hub_support.ts";
import { startRedis, type TestRedis } from "./redis_support.ts";

const TTL_MS = 1000;

/**
 * A TCP proxy in front of Redis that a test can cut (every connection dropped, new ones refused)
 * and heal: a network partition between one node and the bus, with nothing faked in the node.
 */
class CuttableProxy {
  #listener: Deno.Listener | null = null;
  #conns = new Set<Deno.Conn>();
  readonly port: number;
  constructor(readonly upstreamPort: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accept(this.#listener);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    for await (const client of listener) {
      let upstream: Deno.Conn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.upstreamPort });
      } catch {
        client.close();
        continue;
      }
      this.#conns.add(client);
      this.#conns.add(upstream);
      const end = () => {
        for (const conn of [client, upstream]) {
          if (this.#conns.delete(conn)) {
            try {
              conn.close();
            } catch { /* closed */ }
          }
        }
      };
      client.readable.pipeTo(upstream.writable, { preventClose: true }).catch(() => {}).finally(
        end,
      );
      upstream.readable.pipeTo(client.writable, { preventClose: true }).catch(() => {}).finally(
        end,
      );
    }
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.#listener?.close();
    this.#listener = null;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    this.#conns.clear();
  }

  /** Accepts connections again, on the same port. */
  heal(): void {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#accept(this.#listener);
  }
}

interface Node {
  id: string;
  hub: Hub;
  link: ClusterLink;
}

/** Hubs on one store, each with its own link to `redis`; everything closed by `close()`. */
class Nodes {
  readonly nodes: Node[] = [];
  readonly logs: string[] = [];
  constructor(readonly redis: TestRedis, readonly store: SqliteStore) {}

  readonly proxies: CuttableProxy[] = [];

  /** A node; with `cuttable`, it reaches Redis through a proxy the test can cut. */
  async add(id: string, cuttable = false): Promise<Node & { proxy?: CuttableProxy }> {
    const log = new Logger("debug", (line) => this.logs.push(`${id}: ${line}`));
    let proxy: CuttableProxy | undefined;
    if (cuttable) this.proxies.push(proxy = new CuttableProxy(this.redis.port));
    const url = proxy?.url ?? this.redis.url;
    const link = new ClusterLink({ url, nodeId: id, nodeTtlMs: TTL_MS, log });
    const work = hubEdge({
      store: this.store,
      passwords: hasher,
      claims: link,
      onError: (error) => this.logs.push(`${id}: edge error ${error}`),
    });
    const hub = new Hub({ work, cluster: link });
    await link.start(hub.clusterEvents);
    assert.ok(link.up, `${id} is up`);
    const node = { id, hub, link, proxy };
    this.nodes.push(node);
    return node;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.link.close()));
    for (const proxy of this.proxies) proxy.cut();
  }
}

async function withNodes(body: (nodes: Nodes) => Promise<void>): Promise<void> {
  const redis = await startRedis();
  const { store } = await makeHub();
  const nodes = new Nodes(redis, store);
  try {
    await body(nodes);
  } finally {
    await nodes.close();
    await store.close();
    await redis.stop();
  }
}

async function login(hub: Hub, user: string): Promise<RecordingPeer> {
  const peer = new RecordingPeer(user);
  hub.connect(peer);
  await send(hub, peer, `0:${user}:pw`);
  return peer;
}

/** Waits until `check` holds, polling; fails with `what` after `ms`. */
async function until(what: string, check: () => boolean, ms = 3000): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

Deno.test("cluster link: racing logins of one user on two nodes leave one live session, 30 times", async () => {
  await withNodes(async (nodes) => {
    const a = await nodes.add("a");
    const b = await nodes.add("b");
    for (let round = 0; round < 30; round++) {
      const onA = new RecordingPeer("on-a");
      const onB = new RecordingPeer("on-b");
      a.hub.connect(onA);
      b.hub.connect(onB);
      await Promise.all([send(a.hub, onA, "0:alice:pw"), send(b.hub, onB, "0:alice:pw")]);
      // Let the loser's kick, if any, arrive.
      await until("one alice", () => a.hub.sessionCount + b.hub.sessionCount === 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(a.hub.sessionCount + b.hub.sessionCount, 1, `round ${round}`);
      const liveOn = a.hub.sessionCount === 1 ? onA : onB;
      const other = liveOn === onA ? onB : onA;
      assert.equal(liveOn.log.filter((l) => l === "0:-1").length, 0, `round ${round}`);
      assert.equal(
        other.log.at(-1),
        "@ended:" + (other.log.includes("@started:alice") ? "replaced" : "login-failed"),
      );
      // Both views agree on where alice is.
      const liveHub = liveOn === onA ? a.hub : b.hub;
      const otherHub = liveOn === onA ? b.hub : a.hub;
      await until("view", () => otherHub.remoteSessionCount === 1);
      assert.equal(liveHub.remoteSessionCount, 0);
      a.hub.disconnect(onA);
      b.hub.disconnect(onB);
      await until(
        "both views empty",
        () => a.hub.remoteSessionCount + b.hub.remoteSessionCount === 0,
      );
    }
  });
});

Deno.test("cluster link: a node that stops heartbeating is declared down within the TTL", async () => {
  await withNodes(async (nodes) => {
    const a = await nodes.add("a", true);
    const b = await nodes.add("b");
    const bob = await login(b.hub, "bob");
    await send(b.hub, bob, "2:lobby");
    const alice = await login(a.hub, "alice");
    await send(a.hub, alice, "2:lobby");
    await until("bob sees alice", () => bob.log.includes("4:lobby:alice")).catch((e) => {
      console.log(bob.log, alice.log, nodes.logs);
      throw e;
    });
    // Reaping starts only after a whole TTL connected.
    await new Promise((r) => setTimeout(r, TTL_MS));
    // Cut a off the bus: its heartbeats stop, as a SIGKILL would stop them.
    const killedAt = performance.now();
    a.proxy!.cut();
    await until("5: for alice", () => bob.log.includes("5:lobby:alice"), TTL_MS + 2000);
    const took = performance.now() - killedAt;
    console.log(`node declared down ${took.toFixed(0)} ms after it went silent (TTL ${TTL_MS})`);
    assert.ok(took <= TTL_MS + 1000, `took ${took} ms`);
    assert.equal(b.hub.remoteSessionCount, 0);
    // A login of alice on b is not held up by the dead owner.
    const again = await login(b.hub, "alice");
    assert.match(again.log[0], /^0:\d+$/);
  });
});

Deno.test("cluster link: Redis restarts empty; local chat goes on, logins wait, then all resyncs", async () => {
  await withNodes(async (nodes) => {
    const a = await nodes.add("a");
    const b = await nodes.add("b");
    const alice = await login(a.hub, "alice");
    const carol = await login(a.hub, "carol");
    const bob = await login(b.hub, "bob");
    for (const [hub, peer] of [[a.hub, alice], [a.hub, carol], [b.hub, bob]] as const) {
      await send(hub, peer, "2:lobby");
    }
    await until("views", () => a.hub.remoteSessionCount === 1 && b.hub.remoteSessionCount === 2);
    await nodes.redis.stop();
    await until("links down", () => !a.link.up && !b.link.up);
    alice.take();
    carol.take();
    await send(a.hub, alice, "3:1:still here");
    assert.deepEqual(carol.take(), ["3:still here"], "same-node chat goes on");
    const refused = await login(b.hub, "dave");
    assert.deepEqual(refused.take(), ["0:-1", "@ended:login-failed"], "no login without the bus");
    await nodes.redis.restart();
    const resynced = await until("links up", () => a.link.up && b.link.up, 10_000);
    console.log(`links resynced ${resynced.toFixed(0)} ms after Redis came back`);
    await until(
      "views rebuilt",
      () => a.hub.remoteSessionCount === 1 && b.hub.remoteSessionCount === 2,
    );
    bob.take();
    await send(a.hub, alice, "3:1:across again");
    await until("bob gets it", () => bob.log.includes("3:across again"));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(bob.take(), ["3:across again"], "exactly once");
    await send(b.hub, bob, "1");
    assert.deepEqual(bob.take(), ["1:lobby,alice,bob,carol"]);
    // Fences survive the empty restart: a new login of alice on b ends the one on a.
    alice.take();
    const alice2 = await login(b.hub, "alice");
    assert.match(alice2.take()[0], /^0:\d+$/);
    assert.deepEqual(alice.take(), ["0:-1", "@ended:replaced"]);
  });
});

Deno.test("cluster link: after an outage, a session a newer login replaced is ended by the resync", async () => {
  await withNodes(async (nodes) => {
    const a = await nodes.add("a", true);
    const b = await nodes.add("b");
    const alice = await login(a.hub, "alice");
    assert.match(alice.log[0], /^0:\d+$/);
    // Reaping starts only after a whole TTL connected.
    await new Promise((r) => setTimeout(r, TTL_MS));
    // a loses the bus (a partition: Redis stays up for b).
    a.proxy!.cut();
    // While a is cut off and not yet declared down, a newer login of alice on b must wait for
    // a's release; once a is declared down (TTL), it goes ahead.
    const start = performance.now();
    const alice2 = await login(b.hub, "alice");
    const waited = performance.now() - start;
    assert.match(alice2.log[0], /^0:\d+$/, alice2.log.join("|"));
    console.log(`login waited ${waited.toFixed(0)} ms for the cut-off owner (TTL ${TTL_MS})`);
    // a reconnects: the resync finds the newer fence and ends the stale session, not b's.
    a.proxy!.heal();
    await until("stale session ended", () => alice.log.includes("0:-1"), 10_000);
    assert.equal(a.hub.sessionCount, 0);
    assert.equal(b.hub.sessionCount, 1);
    assert.ok(!alice2.log.includes("0:-1"), "the newer session lives");
  });
});

Deno.test("cluster link: Redis stalls past the TTL; nobody is declared dead, and all resumes", async () => {
  await withNodes(async (nodes) => {
    const a = await nodes.add("a");
    const b = await nodes.add("b");
    const alice = await login(a.hub, "alice");
    const bob = await login(b.hub, "bob");
    await send(a.hub, alice, "2:lobby");
    await send(b.hub, bob, "2:lobby");
    await until("views", () => a.hub.remoteSessionCount === 1 && b.hub.remoteSessionCount === 1);
    await new Promise((r) => setTimeout(r, TTL_MS)); // reaping on
    Deno.kill(nodes.redis.pid, "SIGSTOP");
    try {
      await until("the links notice", () => !a.link.up && !b.link.up);
      await new Promise((r) => setTimeout(r, TTL_MS + 1500));
    } finally {
      Deno.kill(nodes.redis.pid, "SIGCONT");
    }
    const resumed = await until("links up", () => a.link.up && b.link.up, 10_000);
    await new Promise((r) => setTimeout(r, 200));
    alice.take();
    bob.take();
    await send(b.hub, bob, "3:2:alice:after the stall");
    await send(a.hub, alice, "3:1:and back");
    await until(
      "both ways",
      () => alice.log.includes("3:after the stall") && bob.log.includes("3:and back"),
    );
    console.log(`links up ${resumed.toFixed(0)} ms after Redis resumed`);
    assert.deepEqual(nodes.logs.filter((l) => /down\b.*gone|node-gone/.test(l)), []);
    assert.equal(a.hub.remoteSessionCount + b.hub.remoteSessionCount, 2);
  });
});

Deno.test("cluster link: of two joins at the same moment on two nodes, the later reply lists both, 20 times", async () => {
  await withNodes(async (nodes) => {
    const a = await nodes.add("a");
    const b = await nodes.add("b");
    const alice = await login(a.hub, "alice");
    const bob = await login(b.hub, "bob");
    await until("views", () => a.hub.remoteSessionCount === 1 && b.hub.remoteSessionCount === 1);
    for (let round = 0; round < 20; round++) {
      alice.take();
      bob.take();
      const room = `same-moment-${round}`;
      await Promise.all([send(a.hub, alice, `2:${room}`), send(b.hub, bob, `2:${room}`)]);
      const replies = [...alice.take(), ...bob.take()].filter((l) => l.startsWith("2:"));
      assert.equal(replies.length, 2, `round ${round}: ${replies}`);
      assert.ok(replies.includes(`2:${room}:alice,bob`), `round ${round}: ${replies}`);
    }
  });
});
