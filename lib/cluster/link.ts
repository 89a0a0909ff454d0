/**
 * The cluster link: one node's connection to the bus (Redis), behind the hub's
 * {@linkcode HubCluster} seam. The hub stays a pure state machine; this file does the I/O.
 *
 * Design, in short (docs/cluster.md has the long form):
 * - Two Redis connections: one for commands, one subscribed to the presence channel (every
 *   node) and to this node's own delivery channel. Everything a node sends goes out on its one
 *   command connection, in order, and Redis hands one subscriber every message in the order it
 *   ran them, so what one sender sends arrives in the order sent.
 * - Ownership of a user is fenced: the claim script takes a new fence from one counter (never
 *   below Redis's clock in microseconds, so it keeps rising when Redis restarts), records
 *   `owner:<user> = fence, node` and publishes the claim, all atomically. A newer fence always
 *   wins, so a late or replayed event can never revive a session that lost. A new session starts
 *   only when the previous owner has released (or is dead), so two never receive at once.
 * - Liveness: each node keeps its expiry time in a sorted set; any node that has been connected
 *   for a whole TTL reaps the expired ones and announces `down`. A heartbeat unanswered for a
 *   few seconds drops the connections, so a silent network failure is noticed.
 * - Presence is a local view in the hub fed by events, so routing costs no Redis round trip.
 * - Redis down: local chat goes on, logins are refused, deliveries to other nodes are dropped
 *   (never queued for later, so nothing arrives twice). On reconnect the node re-registers,
 *   re-checks each session's fence (losers end), and publishes a snapshot; others answer
 *   with theirs.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
// Loaded by start(), so a server without --cluster never loads the Redis client (its logging
// module reads the whole environment, and it costs memory a single node has no use for).
import type { Redis, RedisOptions } from "ioredis";
import {
  decodeDeliveries,
  type DeliveryHandler,
  encodeDirect,
  encodeRoomRun,
  formatPresence,
  parsePresence,
  type PresenceEvent,
} from "./bus_codec.ts";
import type { Hub, HubCluster } from "../hub/hub.ts";
import type { Logger } from "../observe/log.ts";

/** The channel every node hears presence on. */
export const PRESENCE_CHANNEL = "parley:presence";
/** Where a node's deliveries go. */
export function nodeChannel(node: string): string {
  return `parley:node:${node}`;
}
const FENCE_KEY = "parley:fence";
const NODES_KEY = "parley:nodes";
const LAST_BEAT_KEY = "parley:last-beat";
/** Longer than any node's heartbeat interval (at most 500 ms): a gap this long is a Redis stall. */
const STALL_MS = 2000;
function ownerKey(user: string): string {
  return `parley:owner:${user}`;
}

/** Deliveries not yet acknowledged by Redis past which more are dropped (a stalled bus). */
const MAX_IN_FLIGHT_BYTES = 64 << 20;
/** The longest a `2:` reply waits for its join to come back on the bus. */
const JOIN_ECHO_MS = 2000;
/** Sessions re-checked by one reclaim script. */
const RECLAIM_BATCH = 500;

// Redis 7 replicates scripts by their effects, so reading TIME before writing is allowed.
const NOW_MS = `local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)`;

/**
 * KEYS: fence counter, owner key, nodes. ARGV: user, node, request, channel. The fence is the
 * larger of the counter plus one and Redis's clock in microseconds: it rises even when Redis
 * restarts empty, or from an older snapshot, so a new claim always beats every earlier one.
 */
const CLAIM_SCRIPT = `${NOW_MS}
local nowUs = now[1] .. string.sub('000000' .. now[2], -6)
local next = redis.call('INCR', KEYS[1])
if next < tonumber(nowUs) then
  redis.call('SET', KEYS[1], nowUs)
  next = tonumber(nowUs)
end
local fence = string.format('%.0f', next)
local prev = redis.call('GET', KEYS[2])
local prevNode, prevFence, prevAlive = '', '0', '0'
if prev then
  local tab = string.find(prev, '\\t', 1, true)
  prevFence = string.sub(prev, 1, tab - 1)
  prevNode = string.sub(prev, tab + 1)
  local expires = redis.call('ZSCORE', KEYS[3], prevNode)
  if expires and tonumber(expires) > nowMs then prevAlive = '1' end
end
redis.call('SET', KEYS[2], fence .. '\\t' .. ARGV[2])
redis.call('PUBLISH', ARGV[4], table.concat(
  {'claim', ARGV[1], fence, ARGV[2], ARGV[3], prevNode, prevFence, prevAlive}, '\\t'))
return fence`;

/** KEYS: owner key. ARGV: user, fence, node, channel. */
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[2] .. '\\t' .. ARGV[3] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[4], table.concat({'end', ARGV[1], ARGV[2], ARGV[3]}, '\\t'))
return 1`;

/**
 * KEYS: nodes, time of the last heartbeat. ARGV: node, ttl ms, channel, reap (1 or 0).
 * Returns the live nodes when reaping. A gap since the last heartbeat of any node longer than
 * STALL_MS means Redis itself stood still (no node could beat): every expiry moves on by the
 * gap, so the nodes are not declared dead for Redis's silence.
 */
const HEARTBEAT_SCRIPT = `${NOW_MS}
local last = tonumber(redis.call('GET', KEYS[2]) or nowMs)
if nowMs - last > ${STALL_MS} then
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    redis.call('ZADD', KEYS[1], tonumber(all[i + 1]) + nowMs - last, all[i])
  end
end
redis.call('SET', KEYS[2], nowMs)
redis.call('ZADD', KEYS[1], nowMs + tonumber(ARGV[2]), ARGV[1])
if ARGV[4] ~= '1' then return {} end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs)) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('PUBLISH', ARGV[3], 'down\\t' .. node)
end
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

/** KEYS: nodes. ARGV: node, channel. */
const LEAVE_SCRIPT = `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'down\\t' .. ARGV[1])
return 1`;

/**
 * KEYS: owner keys. ARGV: node, then each key's fence. For each: keeps (and re-records) the
 * node's ownership unless a newer fence holds the key; returns "" (kept) or the winner.
 */
const RECLAIM_SCRIPT = `local out = {}
for i, key in ipairs(KEYS) do
  local mine = ARGV[i + 1] .. '\\t' .. ARGV[1]
  local current = redis.call('GET', key)
  local winner = ''
  if current then
    local tab = string.find(current, '\\t', 1, true)
    if tonumber(string.sub(current, 1, tab - 1)) > tonumber(ARGV[i + 1]) then winner = current end
  end
  if winner == '' and current ~= mine then redis.call('SET', key, mine) end
  out[i] = winner
end
return out`;

/** Options of {@linkcode ClusterLink}. */
export interface ClusterOptions {
  /** The bus: `redis://host:port[/db]`. */
  url: string;
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

interface Claim {
  user: string;
  request: number;
  /** 0 until the claim's own event came back. */
  fence: number;
  /** The owner to wait for ("" when not waiting). */
  prevNode: string;
  prevFence: number;
  resolve: (fence: number | null) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * One node's link to the cluster bus.
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
  #ttlMs: number;
  #log: Logger;
  #hub: Hub | null = null;
  #url: string;
  #commands!: Redis;
  #subscriber!: Redis;
  #channel: string;
  #channelBytes: Buffer;
  /** `up`: connected and synchronised; claims are only granted then. */
  #state: "down" | "syncing" | "up" = "down";
  #upSince = 0;
  #closing = false;
  #syncing: Promise<void> | null = null;
  #resyncWanted = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** When the heartbeat now awaiting its answer went out (0: none is). */
  #beatSentAt = 0;
  #nextRequest = 1;
  #claims = new Map<number, Claim>();
  #incarnations = new Map<string, string>();
  /** The newest fence in any claim this node has seen: where its snapshots are up to. */
  #watermark = 0;
  /** Delivery records waiting for the end of this turn, by node: one PUBLISH per node. */
  #pending = new Map<string, Uint8Array[]>();
  #flushQueued = false;
  /** This node's joins not yet seen back on the bus, oldest first (their `2:` replies wait). */
  #joinsInFlight: (() => void)[] = [];
  #inFlightBytes = 0;
  #deliveryHandler: DeliveryHandler;

  constructor(options: ClusterOptions) {
    this.nodeId = options.nodeId;
    this.#ttlMs = options.nodeTtlMs;
    this.#log = options.log;
    this.#channel = nodeChannel(this.nodeId);
    this.#channelBytes = Buffer.from(this.#channel);
    this.#url = options.url;
    this.#deliveryHandler = {
      room: (room, chunk, lines) => this.#hub!.deliverRoom(room, chunk, lines),
      direct: (users, line) => this.#hub!.deliverDirect(users, line),
    };
  }

  /** Whether the link is connected and synchronised. */
  get up(): boolean {
    return this.#state === "up";
  }

  /** `up`, `syncing` or `down`. */
  get state(): "down" | "syncing" | "up" {
    return this.#state;
  }

  /**
   * Connects, subscribes and announces this node; resolves once synchronised, or after
   * `waitMs` with the link still trying in the background (logins are refused until then).
   */
  async start(hub: Hub, waitMs = 5000): Promise<void> {
    this.#hub = hub;
    const { Redis } = await import("ioredis");
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      // Fail commands at once while disconnected: a delivery held back and sent later could
      // arrive after the resync, twice or out of order.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
      connectTimeout: 2000,
      connectionName: `parley:${this.nodeId}`,
    };
    this.#commands = new Redis(this.#url, redisOptions);
    this.#subscriber = new Redis(this.#url, { ...redisOptions, autoResubscribe: false });
    const connections = [["commands", this.#commands], ["subscriber", this.#subscriber]] as const;
    for (const [name, connection] of connections) {
      // ioredis reports every failed reconnect too; bus-down/bus-up say what matters.
      connection.on("error", (error: Error) => {
        if (!this.#closing) {
          this.#log.debug("bus-error", { connection: name, error: error.message });
        }
      });
      connection.on("close", () => this.#lost());
      // Either connection coming (back) up after a loss starts a resync; the second of the two
      // finds one running or done.
      connection.on("ready", () => {
        if (this.#state !== "up") this.#resync();
      });
    }
    this.#subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      this.#receive(channel, message);
    });
    const interval = Math.max(100, Math.min(500, Math.floor(this.#ttlMs / 4)));
    this.#heartbeat = setInterval(() => this.#beat(), interval);
    this.#commands.connect().catch(() => {}); // retried by ioredis; "ready" starts the sync
    this.#subscriber.connect().catch(() => {});
    const deadline = Date.now() + waitMs;
    while (this.#state !== "up" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (this.#state !== "up") {
      this.#log.warn("bus-down", { reason: "not connected yet; retrying" });
    }
  }

  // ---- HubCluster: what the hub tells the cluster ----

  claim(user: string): Promise<number | null> {
    if (this.#state !== "up") return Promise.resolve(null);
    const { promise, resolve } = Promise.withResolvers<number | null>();
    const request = this.#nextRequest++;
    const claim: Claim = {
      user,
      request,
      fence: 0,
      prevNode: "",
      prevFence: 0,
      resolve,
      // The previous owner answers at once when alive and connected; when it is not, its
      // heartbeat stops and it is declared down within the TTL.
      timer: setTimeout(() => this.#refuse(claim), this.#ttlMs + 2000),
    };
    this.#claims.set(request, claim);
    this.#flush();
    this.stats.commands++;
    this.#commands.eval(
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
      this.#refuse(claim);
    });
    return promise;
  }

  ended(user: string, fence: number): void {
    this.#release(user, fence);
  }

  joined(
    user: string,
    fence: number,
    room: string,
    roomPasswordHash: string | null,
  ): Promise<void> {
    if (this.#state === "down") return Promise.resolve(); // the snapshot will say it
    const { promise, resolve } = Promise.withResolvers<void>();
    // A lost event must not hold the reply for long: the view is as good as it gets by then.
    const timer = setTimeout(resolve, JOIN_ECHO_MS);
    this.#joinsInFlight.push(() => {
      clearTimeout(timer);
      resolve();
    });
    this.#presence({ kind: "join", user, fence, node: this.nodeId, room, roomPasswordHash });
    return promise;
  }

  /** Lets every join waiting for its own event go (the bus is down or the link closing). */
  #releaseJoins(): void {
    for (const done of this.#joinsInFlight.splice(0)) done();
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
    this.#closing = true;
    clearInterval(this.#heartbeat);
    for (const claim of [...this.#claims.values()]) this.#refuse(claim);
    if (this.#state !== "down") {
      this.#flush();
      try {
        await withTimeout(
          this.#commands.eval(LEAVE_SCRIPT, 1, NODES_KEY, this.nodeId, PRESENCE_CHANNEL),
          1000,
        );
      } catch { /* the others will find out from the missing heartbeat */ }
    }
    this.#state = "down";
    this.#releaseJoins();
    this.#commands?.disconnect();
    this.#subscriber?.disconnect();
  }

  // ---- Outbound ----

  #queue(node: string, record: Uint8Array): void {
    if (this.#state === "down" || this.#inFlightBytes > MAX_IN_FLIGHT_BYTES) {
      this.stats.dropped++;
      return;
    }
    const records = this.#pending.get(node);
    if (records === undefined) this.#pending.set(node, [record]);
    else records.push(record);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Publishes the turn's delivery records: one PUBLISH per node. */
  #flush = (): void => {
    this.#flushQueued = false;
    if (this.#pending.size === 0) return;
    for (const [node, records] of this.#pending) {
      const payload = records.length === 1
        ? Buffer.from(records[0].buffer, records[0].byteOffset, records[0].byteLength)
        : Buffer.concat(records);
      const size = payload.length;
      this.#inFlightBytes += size;
      this.stats.commands++;
      this.stats.bytesOut += size;
      this.#commands.publish(nodeChannel(node), payload).then(
        () => this.#inFlightBytes -= size,
        () => {
          this.#inFlightBytes -= size;
          this.stats.dropped++;
        },
      );
    }
    this.#pending.clear();
  };

  #presence(event: PresenceEvent): void {
    if (this.#state === "down") return; // the snapshot after reconnecting says it instead
    this.#flush(); // keep deliveries and presence in the order the hub made them
    this.stats.commands++;
    this.#commands.publish(PRESENCE_CHANNEL, formatPresence(event)).catch(() => {});
  }

  #release(user: string, fence: number): void {
    if (this.#state === "down") return; // the owner key is checked again on the next claim
    this.#flush();
    this.stats.commands++;
    this.#commands.eval(
      RELEASE_SCRIPT,
      1,
      ownerKey(user),
      user,
      fence,
      this.nodeId,
      PRESENCE_CHANNEL,
    ).catch(() => {});
  }

  // ---- Claims ----

  #grant(claim: Claim): void {
    clearTimeout(claim.timer);
    this.#claims.delete(claim.request);
    claim.resolve(claim.fence);
  }

  /** Refuses a claim; a claim that got a fence gives it back, so nobody waits for it. */
  #refuse(claim: Claim): void {
    if (!this.#claims.delete(claim.request)) return;
    clearTimeout(claim.timer);
    if (claim.fence !== 0) this.#release(claim.user, claim.fence);
    claim.resolve(null);
  }

  // ---- Inbound ----

  #receive(channel: Buffer, message: Buffer): void {
    this.stats.messagesIn++;
    this.stats.bytesIn += message.length;
    if (this.#hub === null || this.#closing) return;
    try {
      if (channel.equals(this.#channelBytes)) {
        decodeDeliveries(message, this.#deliveryHandler);
      } else {
        this.#onPresence(parsePresence(message.toString("utf8")));
      }
    } catch (error) {
      this.#log.warn("bus-bad-message", { error: String(error) });
    }
  }

  #onPresence(event: PresenceEvent): void {
    const hub = this.#hub!;
    switch (event.kind) {
      case "claim":
        return this.#onClaim(event);
      case "end":
        hub.clusterEnded(event.user, event.fence, event.node);
        for (const claim of this.#claims.values()) {
          if (
            claim.user === event.user && claim.prevNode === event.node &&
            claim.prevFence === event.fence
          ) this.#grant(claim);
        }
        return;
      case "down":
        if (event.node === this.nodeId) {
          // Declared dead while alive (a stall longer than the TTL): announce ourselves again.
          this.#log.warn("bus-declared-down");
          this.#resync();
          return;
        }
        return this.#nodeGone(event.node);
      case "hello":
        if (event.node === this.nodeId) return;
        this.#checkIncarnation(event.node, event.incarnation);
        this.#announceSessions();
        return;
      case "snapshot":
        if (event.node === this.nodeId) return;
        this.#checkIncarnation(event.node, event.incarnation);
        hub.clusterNodeSessions(event.node, event.sessions, event.watermark);
        return;
      case "join":
        hub.clusterJoined(event.user, event.fence, event.node, event.room, event.roomPasswordHash);
        // This node's own joins come back in the order it published them.
        if (event.node === this.nodeId) this.#joinsInFlight.shift()?.();
        return;
    }
  }

  #onClaim(event: Extract<PresenceEvent, { kind: "claim" }>): void {
    if (event.fence > this.#watermark) this.#watermark = event.fence;
    const endedHere = this.#hub!.clusterClaim(event.user, event.fence, event.node);
    let releasedPrev = endedHere === event.prevFence;
    // Our own older claims of the user lost to this one.
    for (const claim of [...this.#claims.values()]) {
      if (claim.user === event.user && claim.fence !== 0 && claim.fence < event.fence) {
        if (claim.fence === event.prevFence) releasedPrev = true;
        this.#refuse(claim);
      }
    }
    // The previous owner was this node, but it has no such session (it ended while the bus
    // was down, or an earlier incarnation held it): say so, or the claimer would wait for it.
    if (event.prevNode === this.nodeId && event.prevAlive && !releasedPrev) {
      this.#release(event.user, event.prevFence);
    }
    if (event.node !== this.nodeId) return;
    const claim = this.#claims.get(event.request);
    if (claim === undefined) {
      // Refused before its event came back (a timeout): give the fence back.
      this.#release(event.user, event.fence);
      return;
    }
    claim.fence = event.fence;
    const mustWait = event.prevNode !== "" && event.prevNode !== this.nodeId && event.prevAlive;
    if (!mustWait) {
      this.#grant(claim);
      return;
    }
    claim.prevNode = event.prevNode;
    claim.prevFence = event.prevFence;
  }

  #checkIncarnation(node: string, incarnation: string): void {
    const known = this.#incarnations.get(node);
    this.#incarnations.set(node, incarnation);
    if (known !== undefined && known !== incarnation) this.#nodeGone(node); // it restarted
  }

  /** A node is gone: its sessions leave the view, and claims waiting for it go ahead. */
  #nodeGone(node: string): void {
    this.#hub!.clusterNodeDown(node);
    for (const claim of [...this.#claims.values()]) {
      if (claim.prevNode === node) this.#grant(claim);
    }
  }

  /** Publishes this node's sessions and the claims it is waiting on (others count them in). */
  #announceSessions(): void {
    const sessions = this.#hub!.clusterSessions();
    for (const claim of this.#claims.values()) {
      if (claim.fence !== 0) {
        sessions.push({ user: claim.user, fence: claim.fence, room: null, roomPasswordHash: null });
      }
    }
    this.#presence({
      kind: "snapshot",
      node: this.nodeId,
      incarnation: this.incarnation,
      watermark: this.#watermark,
      sessions,
    });
  }

  // ---- Connection ----

  #lost(): void {
    if (this.#syncing !== null) this.#resyncWanted = true; // the running sync is void
    if (this.#state === "down" || this.#closing) return;
    this.#state = "down";
    this.#pending.clear();
    this.#releaseJoins();
    this.#log.warn("bus-down");
    // Claims cannot finish without the bus; their fences are given back on the next claim.
    for (const claim of [...this.#claims.values()]) {
      clearTimeout(claim.timer);
      this.#claims.delete(claim.request);
      claim.resolve(null);
    }
  }

  /** After (re)connecting: subscribe, register, re-check every session's fence, announce. */
  #resync(): void {
    if (this.#closing || this.#syncing !== null) return;
    if (this.#commands.status !== "ready" || this.#subscriber.status !== "ready") return;
    this.#syncing = (async () => {
      try {
        this.#state = "syncing";
        await this.#subscriber.subscribe(PRESENCE_CHANNEL, this.#channel);
        await this.#heartbeatScript(false);
        await this.#reclaim();
        this.#presence({ kind: "hello", node: this.nodeId, incarnation: this.incarnation });
        this.#announceSessions();
        if (!this.#resyncWanted) {
          this.stats.syncs++;
          this.#state = "up";
          this.#upSince = Date.now();
          this.#log.info("bus-up");
        }
      } catch (error) {
        this.#log.warn("bus-sync-failed", { error: String(error) });
        this.#lost();
      } finally {
        this.#syncing = null;
        if (this.#resyncWanted) {
          this.#resyncWanted = false;
          setTimeout(() => this.#resync(), 100); // not a tight loop if Redis keeps failing it
        }
      }
    })();
  }

  /** Keeps each local session whose fence still owns its user; ends those a newer login won. */
  async #reclaim(): Promise<void> {
    const sessions = this.#hub!.clusterSessions();
    for (let i = 0; i < sessions.length; i += RECLAIM_BATCH) {
      const batch = sessions.slice(i, i + RECLAIM_BATCH);
      const winners = await this.#commands.eval(
        RECLAIM_SCRIPT,
        batch.length,
        ...batch.map((s) => ownerKey(s.user)),
        this.nodeId,
        ...batch.map((s) => s.fence),
      ) as string[];
      winners.forEach((winner, j) => {
        if (winner === "") return;
        const tab = winner.indexOf("\t");
        this.#hub!.clusterClaim(batch[j].user, Number(winner.slice(0, tab)), winner.slice(tab + 1));
      });
    }
  }

  /** Registers this node for another TTL; when `reap`, also reaps and returns the live nodes. */
  #heartbeatScript(reap: boolean): Promise<string[]> {
    return this.#commands.eval(
      HEARTBEAT_SCRIPT,
      2,
      NODES_KEY,
      LAST_BEAT_KEY,
      this.nodeId,
      this.#ttlMs,
      PRESENCE_CHANNEL,
      reap ? 1 : 0,
    ) as Promise<string[]>;
  }

  #beat(): void {
    if (this.#state !== "up") return;
    const now = Date.now();
    if (this.#beatSentAt !== 0) {
      // A link that stopped answering without closing (a silent network failure): TCP could
      // take minutes to notice, so drop both connections and let them reconnect.
      if (now - this.#beatSentAt > Math.min(5000, Math.max(1000, this.#ttlMs / 2))) {
        this.#log.warn("bus-stalled", { ms: now - this.#beatSentAt });
        this.#beatSentAt = 0;
        this.#lost(); // down now, not when the closes come through
        this.#commands.disconnect(true);
        this.#subscriber.disconnect(true);
      }
      return;
    }
    // Reap only after a whole TTL connected: after an outage every node needs that long to
    // heartbeat again, and must not be declared dead for the silence the outage caused.
    const reap = now - this.#upSince >= this.#ttlMs;
    // Nodes the view held before the script ran: each has registered before it said anything.
    const viewed = reap ? this.#hub!.clusterNodes() : [];
    this.#beatSentAt = now;
    this.stats.commands++;
    Promise.all([
      this.#heartbeatScript(reap),
      this.#subscriber.ping(), // the subscriber connection must be alive too
    ]).then(([live]) => {
      this.#beatSentAt = 0;
      if (!reap || this.#state !== "up") return;
      // A node the view holds but Redis does not know died where no `down` could be said
      // (while Redis was down, or just before it restarted empty).
      const alive = new Set(live);
      for (const node of viewed) {
        if (!alive.has(node)) {
          this.#log.info("node-gone", { gone: node, reason: "not registered" });
          this.#nodeGone(node);
        }
      }
    }, () => this.#beatSentAt = 0);
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
