/**
 * The cluster link: one node's connection to the bus (Redis), behind the hub's
 * {@linkcode HubCluster} seam. The hub stays a pure state machine; the link does the I/O.
 *
 * Design, in short (docs/cluster.md has the long form):
 * - Two Redis connections: one for commands, one subscribed to the presence channel (every
 *   node) and to this node's own delivery channel (lib/cluster/bus_connection.ts). Everything a
 *   node sends goes out on its one command connection, in order, and Redis hands one subscriber
 *   every message in the order it ran them, so what one sender sends arrives in the order sent.
 * - Ownership of a user is fenced: the claim script (lib/cluster/scripts.ts) takes a new fence
 *   from one counter (never below Redis's clock in microseconds, so it keeps rising when Redis
 *   restarts), records `owner:<user> = fence, node` and publishes the claim, all atomically. A
 *   newer fence always wins, so a late or replayed event can never revive a session that lost.
 *   A new session starts only when the previous owner has released (or is dead), so two never
 *   receive at once (lib/cluster/claims.ts).
 * - Liveness: each node keeps its expiry time in a sorted set; any node that has been connected
 *   for a whole TTL reaps the expired ones and announces `down`. A heartbeat unanswered for a
 *   few seconds drops the connections, so a silent network failure is noticed.
 * - Presence is a local view in the hub fed by events (lib/cluster/sync.ts), so routing costs
 *   no Redis round trip. A local join too is applied when the bus hands it back, in the order
 *   the bus gave every node's joins.
 * - Redis down: local chat goes on, logins are refused, deliveries to other nodes are dropped
 *   (never queued for later, so nothing arrives twice). On reconnect the node re-registers,
 *   re-checks each session's fence (losers end), and publishes a snapshot; others answer
 *   with theirs.
 *
 * This file is the link's face: the {@linkcode HubCluster} methods, claims, and the outbound
 * path, which batches the turn's delivery records into one PUBLISH per node.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { encodeDirect, encodeRoomRun, formatPresence, type PresenceEvent } from "./bus_codec.ts";
import { BusConnection, type LinkState } from "./bus_connection.ts";
import { parseBusUrl } from "./bus_url.ts";
import { PendingClaims } from "./claims.ts";
import {
  CLAIM_SCRIPT,
  FENCE_KEY,
  LEAVE_SCRIPT,
  nodeChannel,
  NODES_KEY,
  ownerKey,
  PRESENCE_CHANNEL,
  RELEASE_SCRIPT,
} from "./scripts.ts";
import { ClusterSync } from "./sync.ts";
import type { ClusterEvents, HubCluster } from "../hub/ports.ts";
import { describeError, type Logger } from "../observe/log.ts";

export type { LinkState } from "./bus_connection.ts";

/** Deliveries not yet acknowledged by Redis past which more are dropped (a stalled bus). */
const MAX_IN_FLIGHT_BYTES = 64 << 20;

/** Options of {@linkcode ClusterLink}. */
export interface ClusterOptions {
  /** The bus: `redis://`, `rediss://` or `redis-sentinel://` (lib/cluster/bus_url.ts). */
  url: string;
  /** A PEM file of the CAs a `rediss://` server's certificate must chain to (`--cluster-ca`). */
  caFile?: string;
  /** This node's id. */
  nodeId: string;
  /** How long this node keeps its users after its last heartbeat, if it goes silent. */
  nodeTtlMs: number;
  /** Where connection changes are logged. */
  log: Logger;
}

/** The link's counters, for /metrics. */
export interface ClusterStats {
  /** PUBLISH and script calls sent. */
  commands: number;
  /** Delivery payload bytes published. */
  bytesOut: number;
  /** Messages received on the bus. */
  messagesIn: number;
  /** Bytes received on the bus. */
  bytesIn: number;
  /** Deliveries dropped because the bus was down or stalled. */
  dropped: number;
  /** Times the link (re)synchronised after connecting. */
  syncs: number;
}

/** What {@linkcode ClusterLink.start} sets up: the connections and what feeds the hub. */
interface Started {
  bus: BusConnection;
  sync: ClusterSync;
}

/**
 * One node's link to the cluster bus. Made before the hub (the hub is given it), started
 * with the hub once the hub exists.
 *
 * @example Usage
 * ```ts ignore
 * const link = new ClusterLink({ url: "redis://127.0.0.1:6379", nodeId: "n1", nodeTtlMs: 10_000, log });
 * const hub = new Hub({ store, passwords, cluster: link });
 * await link.start(hub);
 * // ...
 * await link.close();
 * ```
 */
export class ClusterLink implements HubCluster {
  readonly nodeId: string;
  /** Tells a restarted node (same id) from the one before it. */
  readonly incarnation: string = randomBytes(8).toString("hex");
  readonly stats: ClusterStats = {
    commands: 0,
    bytesOut: 0,
    messagesIn: 0,
    bytesIn: 0,
    dropped: 0,
    syncs: 0,
  };
  #options: ClusterOptions;
  #log: Logger;
  /** Null until {@linkcode ClusterLink.start}: the link is down until then. */
  #started: Started | null = null;
  #claims: PendingClaims;
  /** Delivery records waiting for the end of this turn, by node: one PUBLISH per node. */
  #queued = new Map<string, Uint8Array[]>();
  #flushQueued = false;
  #inFlightBytes = 0;

  constructor(options: ClusterOptions) {
    this.nodeId = options.nodeId;
    this.#options = options;
    this.#log = options.log;
    this.#claims = new PendingClaims({
      timeoutMs: options.nodeTtlMs + 2000,
      giveBack: (user, fence) => this.#release(user, fence),
    });
  }

  /** Whether the link is connected and synchronised. */
  get up(): boolean {
    return this.state === "up";
  }

  /** `up`, `syncing` or `down`. */
  get state(): LinkState {
    return this.#started?.bus.state ?? "down";
  }

  /** Milliseconds since the bus last delivered a message or answered a heartbeat. */
  get silentMs(): number {
    return this.#started?.bus.silentMs ?? 0;
  }

  /**
   * Connects, subscribes and announces this node; resolves once synchronised, or after
   * `waitMs` with the link still trying in the background (logins are refused until then).
   */
  async start(events: ClusterEvents, waitMs = 5000): Promise<void> {
    const { caFile, url } = this.#options;
    let ca: string | undefined;
    try {
      ca = caFile ? Deno.readTextFileSync(caFile) : undefined;
    } catch (error) {
      throw new Error(`cannot read --cluster-ca ${caFile}: ${describeError(error)}`);
    }
    const target = parseBusUrl(url, ca);
    // Loaded here, so a server without --cluster never loads the Redis client (its logging
    // module reads the whole environment, and it costs memory a single node has no use for).
    const { Redis } = await import("ioredis");
    const bus = new BusConnection(Redis, { ...this.#options, target, stats: this.stats });
    const sync = new ClusterSync({
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      log: this.#log,
      events,
      bus,
      claims: this.#claims,
      outbound: {
        presence: (event) => this.#presence(event),
        release: (user, fence) => this.#release(user, fence),
        dropQueued: () => this.#queued.clear(),
      },
      stats: this.stats,
    });
    this.#started = { bus, sync };
    bus.connect(sync);
    const deadline = Date.now() + waitMs;
    while (bus.state !== "up" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (bus.state !== "up") {
      this.#log.warn("bus-down", { reason: "not connected yet; retrying" });
    }
  }

  /**
   * Claims `user` cluster-wide for a new session. Resolves to the claim's fence (a number no
   * earlier claim of any user had, which is also the session id) once no other node has a live
   * session of the user, or to null when the claim was refused (a newer claim, the bus down).
   */
  claim(user: string): Promise<number | null> {
    const bus = this.#started?.bus;
    if (bus === undefined || bus.state !== "up") return Promise.resolve(null);
    const { request, decided } = this.#claims.open(user);
    this.#flush();
    this.stats.commands++;
    bus.commands.eval(
      CLAIM_SCRIPT,
      3,
      FENCE_KEY,
      ownerKey(user),
      NODES_KEY,
      user,
      this.nodeId,
      request,
      PRESENCE_CHANNEL,
    ).catch((error: Error) => {
      this.#log.warn("claim-failed", { user, error: error.message });
      this.#claims.refuse(request);
    });
    return decided;
  }

  // ---- HubCluster: what the hub tells the cluster ----

  ended(user: string, fence: number): void {
    this.#release(user, fence);
  }

  joined(user: string, fence: number, room: string, roomPasswordHash: string | null): void {
    // Not started: no session can have joined anything yet.
    this.#started?.sync.joined({ user, fence, room, roomPasswordHash });
  }

  roomRun(nodes: Iterable<string>, room: Uint8Array, chunk: Uint8Array, lines: number): void {
    const record = encodeRoomRun(room, chunk, lines);
    for (const node of nodes) this.#queue(node, record);
  }

  direct(node: string, users: string[], line: Uint8Array): void {
    this.#queue(node, encodeDirect(users, line));
  }

  /** Leaves the cluster (others drop this node's sessions at once) and disconnects. */
  async close(): Promise<void> {
    const started = this.#started;
    started?.bus.startClosing();
    this.#claims.refuseAll();
    if (started === null) return;
    const { bus, sync } = started;
    if (bus.state !== "down") {
      this.#flush();
      try {
        await withTimeout(
          bus.commands.eval(LEAVE_SCRIPT, 1, NODES_KEY, this.nodeId, PRESENCE_CHANNEL),
          1000,
        );
      } catch { /* the others will find out from the missing heartbeat */ }
    }
    bus.markDown();
    sync.giveUpJoins();
    bus.disconnect();
  }

  // ---- Outbound ----

  /** The connections, unless the link is down (nothing is sent then). */
  #sendingBus(): BusConnection | null {
    const bus = this.#started?.bus;
    return bus === undefined || bus.state === "down" ? null : bus;
  }

  #queue(node: string, record: Uint8Array): void {
    if (this.#sendingBus() === null || this.#inFlightBytes > MAX_IN_FLIGHT_BYTES) {
      this.stats.dropped++;
      return;
    }
    const records = this.#queued.get(node);
    if (records === undefined) this.#queued.set(node, [record]);
    else records.push(record);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Publishes the turn's delivery records: one PUBLISH per node. */
  #flush = (): void => {
    this.#flushQueued = false;
    if (this.#queued.size === 0) return;
    const bus = this.#sendingBus();
    if (bus === null) {
      // Went down this turn: never held back for later, where it could arrive twice.
      this.stats.dropped += this.#queued.size;
      this.#queued.clear();
      return;
    }
    for (const [node, records] of this.#queued) {
      const payload = records.length === 1
        ? Buffer.from(records[0].buffer, records[0].byteOffset, records[0].byteLength)
        : Buffer.concat(records);
      const size = payload.length;
      this.#inFlightBytes += size;
      this.stats.commands++;
      this.stats.bytesOut += size;
      bus.commands.publish(nodeChannel(node), payload).then(
        () => this.#inFlightBytes -= size,
        () => {
          this.#inFlightBytes -= size;
          this.stats.dropped++;
        },
      );
    }
    this.#queued.clear();
  };

  #presence(event: PresenceEvent): void {
    const bus = this.#sendingBus();
    if (bus === null) return; // the snapshot after reconnecting says it instead
    this.#flush(); // keep deliveries and presence in the order the hub made them
    this.stats.commands++;
    bus.commands.publish(PRESENCE_CHANNEL, formatPresence(event)).catch(() => {});
  }

  #release(user: string, fence: number): void {
    const bus = this.#sendingBus();
    if (bus === null) return; // the owner key is checked again on the next claim
    this.#flush();
    this.stats.commands++;
    bus.commands.eval(
      RELEASE_SCRIPT,
      1,
      ownerKey(user),
      user,
      fence,
      this.nodeId,
      PRESENCE_CHANNEL,
    ).catch(() => {});
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timed out")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
