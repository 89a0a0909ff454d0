/**
 * Keeps the hub's view of the cluster in step with the bus: dispatches what the bus delivers
 * (presence events, and deliveries for this node's members) to the hub in the order it came,
 * and after every (re)connection re-registers this node, re-checks each local session's fence
 * (losers end) and announces this node's sessions; the others answer with theirs.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  decodeDeliveries,
  type DeliveryHandler,
  parsePresence,
  type PresenceEvent,
} from "./bus_codec.ts";
import type { BusConnection, BusHandlers } from "./bus_connection.ts";
import type { PendingClaims } from "./claims.ts";
import { type Join, JoinEchoes } from "./join_echoes.ts";
import { nodeChannel, ownerKey, PRESENCE_CHANNEL, RECLAIM_SCRIPT } from "./scripts.ts";
import type { ClusterEvents } from "../hub/ports.ts";
import type { Logger } from "../observe/log.ts";

/** The longest a join waits to come back on the bus before it is reported anyway. */
export const JOIN_ECHO_MS = 2000;
/** Sessions re-checked by one reclaim script. */
const RECLAIM_BATCH = 500;

/** What the sync sends through the link's ordered outbound path. */
export interface SyncOutbound {
  /** Publishes a presence event after the deliveries queued before it (unless down). */
  presence(event: PresenceEvent): void;
  /** Ends `user`'s session or claim `fence` cluster-wide, giving its ownership back. */
  release(user: string, fence: number): void;
  /** The bus went down: deliveries queued for the end of the turn are dropped. */
  dropQueued(): void;
}

/** Options of {@linkcode ClusterSync}. */
export interface ClusterSyncOptions {
  nodeId: string;
  /** Tells a restarted node (same id) from the one before it. */
  incarnation: string;
  log: Logger;
  /** The hub. */
  events: ClusterEvents;
  bus: BusConnection;
  claims: PendingClaims;
  outbound: SyncOutbound;
  /** The link's counters this part keeps. */
  stats: { syncs: number; messagesIn: number; bytesIn: number };
}

/**
 * What a started link does with the bus's events: made by `ClusterLink.start` with the hub and
 * the connections, and given to the connections as their {@linkcode BusHandlers}.
 *
 * @example Usage
 * ```ts ignore
 * const sync = new ClusterSync({ nodeId, incarnation, log, events: hub, bus, claims, outbound, stats });
 * bus.connect(sync);
 * ```
 */
export class ClusterSync implements BusHandlers {
  /** The node, the hub and the link's other parts this one works with. */
  readonly #options: ClusterSyncOptions;
  #channel: string;
  #channelBytes: Buffer;
  #deliveries: DeliveryHandler;
  #joins: JoinEchoes;
  #syncing: Promise<void> | null = null;
  #resyncWanted = false;
  #incarnations = new Map<string, string>();
  /** The newest fence in any claim this node has seen: where its snapshots are up to. */
  #watermark = 0;

  constructor(options: ClusterSyncOptions) {
    this.#options = options;
    this.#channel = nodeChannel(this.#options.nodeId);
    this.#channelBytes = Buffer.from(this.#channel);
    const events = this.#options.events;
    this.#deliveries = {
      room: (room, chunk, lines) => events.deliverRoom(room, chunk, lines),
      direct: (users, line) => events.deliverDirect(users, line),
    };
    this.#joins = new JoinEchoes(JOIN_ECHO_MS, (join) => this.#reportJoin(join));
  }

  // ---- Joins: this node's own, applied by the hub when the bus hands them back ----

  /** Publishes a local session's join; the hub hears it back through `clusterJoined`. */
  joined(join: Join): void {
    if (this.#options.bus.state === "down") {
      // Not published: the snapshot after reconnecting says it. Never call the hub back
      // from inside its own call.
      queueMicrotask(() => this.#reportJoin(join));
      return;
    }
    this.#joins.wait(join);
    this.#options.outbound.presence({ kind: "join", node: this.#options.nodeId, ...join });
  }

  /** Reports every join still on its way round (the bus went down, or the link is closing). */
  giveUpJoins(): void {
    this.#joins.giveUpAll();
  }

  #reportJoin(join: Join): void {
    this.#options.events.clusterJoined(
      join.user,
      join.fence,
      this.#options.nodeId,
      join.room,
      join.roomPasswordHash,
    );
  }

  // ---- BusHandlers ----

  ready(): void {
    this.#resync();
  }

  lost(): void {
    if (this.#syncing !== null) this.#resyncWanted = true; // the running sync is void
    if (this.#options.bus.state === "down" || this.#options.bus.closing) return;
    this.#options.bus.markDown();
    this.#options.outbound.dropQueued();
    this.giveUpJoins();
    this.#options.log.warn("bus-down");
    // Claims cannot finish without the bus; their fences are given back on the next claim.
    this.#options.claims.abandonAll();
  }

  message(channel: Buffer, message: Buffer): void {
    this.#options.stats.messagesIn++;
    this.#options.stats.bytesIn += message.length;
    if (this.#options.bus.closing) return;
    try {
      if (channel.equals(this.#channelBytes)) {
        decodeDeliveries(message, this.#deliveries);
      } else {
        this.#onPresence(parsePresence(message.toString("utf8")));
      }
    } catch (error) {
      this.#options.log.warn("bus-bad-message", { error: String(error) });
    }
  }

  viewedNodes(): string[] {
    return this.#options.events.clusterNodes();
  }

  unregistered(node: string): void {
    this.#options.log.info("node-gone", { gone: node, reason: "not registered" });
    this.#nodeGone(node);
  }

  // ---- Presence events ----

  #onPresence(event: PresenceEvent): void {
    switch (event.kind) {
      case "claim":
        return this.#onClaim(event);
      case "end":
        this.#options.events.clusterEnded(event.user, event.fence, event.node);
        this.#options.claims.ended(event.user, event.node, event.fence);
        return;
      case "down":
        if (event.node === this.#options.nodeId) {
          // Declared dead while alive (a stall longer than the TTL): announce ourselves again.
          this.#options.log.warn("bus-declared-down");
          this.#resync();
          return;
        }
        return this.#nodeGone(event.node);
      case "hello":
        if (event.node === this.#options.nodeId) return;
        this.#checkIncarnation(event.node, event.incarnation);
        this.#announceSessions();
        return;
      case "snapshot":
        if (event.node === this.#options.nodeId) return;
        this.#checkIncarnation(event.node, event.incarnation);
        this.#options.events.clusterNodeSessions(event.node, event.sessions, event.watermark);
        return;
      case "join":
        // This node's own joins too: the hub applies them now, in the bus's order.
        if (event.node === this.#options.nodeId) {
          this.#joins.echoed(event.user, event.fence, event.room);
        }
        this.#options.events.clusterJoined(
          event.user,
          event.fence,
          event.node,
          event.room,
          event.roomPasswordHash,
        );
        return;
    }
  }

  #onClaim(event: Extract<PresenceEvent, { kind: "claim" }>): void {
    if (event.fence > this.#watermark) this.#watermark = event.fence;
    const endedHere = this.#options.events.clusterClaim(event.user, event.fence, event.node);
    // Our own older claims of the user lost to this one.
    const overtakenPrev = this.#options.claims.overtaken(event.user, event.fence, event.prevFence);
    const releasedPrev = endedHere === event.prevFence || overtakenPrev;
    // The previous owner was this node, but it has no such session (it ended while the bus
    // was down, or an earlier incarnation held it): say so, or the claimer would wait for it.
    if (event.prevNode === this.#options.nodeId && event.prevAlive && !releasedPrev) {
      this.#options.outbound.release(event.user, event.prevFence);
    }
    if (event.node !== this.#options.nodeId) return;
    const mustWait = event.prevNode !== "" && event.prevNode !== this.#options.nodeId &&
      event.prevAlive;
    const waitFor = mustWait ? { node: event.prevNode, fence: event.prevFence } : null;
    if (!this.#options.claims.fenced(event.request, event.fence, waitFor)) {
      // Refused before its event came back (a timeout): give the fence back.
      this.#options.outbound.release(event.user, event.fence);
    }
  }

  #checkIncarnation(node: string, incarnation: string): void {
    const known = this.#incarnations.get(node);
    this.#incarnations.set(node, incarnation);
    if (known !== undefined && known !== incarnation) this.#nodeGone(node); // it restarted
  }

  /** A node is gone: its sessions leave the view, and claims waiting for it go ahead. */
  #nodeGone(node: string): void {
    this.#options.events.clusterNodeDown(node);
    this.#options.claims.nodeGone(node);
  }

  /** Publishes this node's sessions and the claims it is waiting on (others count them in). */
  #announceSessions(): void {
    const sessions = this.#options.events.clusterSessions();
    for (const { user, fence } of this.#options.claims.withFence()) {
      sessions.push({ user, fence, room: null, roomPasswordHash: null });
    }
    this.#options.outbound.presence({
      kind: "snapshot",
      node: this.#options.nodeId,
      incarnation: this.#options.incarnation,
      watermark: this.#watermark,
      sessions,
    });
  }

  // ---- (Re)synchronising ----

  /** After (re)connecting: subscribe, register, re-check every session's fence, announce. */
  #resync(): void {
    if (this.#options.bus.closing || this.#syncing !== null || !this.#options.bus.ready) return;
    const bus = this.#options.bus;
    this.#syncing = (async () => {
      try {
        bus.markSyncing();
        await bus.subscriber.subscribe(PRESENCE_CHANNEL, this.#channel);
        await bus.heartbeat(false);
        await this.#reclaim();
        this.#options.outbound.presence({
          kind: "hello",
          node: this.#options.nodeId,
          incarnation: this.#options.incarnation,
        });
        this.#announceSessions();
        if (!this.#resyncWanted) {
          this.#options.stats.syncs++;
          bus.markUp();
          this.#options.log.info("bus-up");
        }
      } catch (error) {
        this.#options.log.warn("bus-sync-failed", { error: String(error) });
        this.lost();
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
    const sessions = this.#options.events.clusterSessions();
    for (let i = 0; i < sessions.length; i += RECLAIM_BATCH) {
      const batch = sessions.slice(i, i + RECLAIM_BATCH);
      const winners = await this.#options.bus.commands.eval(
        RECLAIM_SCRIPT,
        batch.length,
        ...batch.map((s) => ownerKey(s.user)),
        this.#options.nodeId,
        ...batch.map((s) => s.fence),
      ) as string[];
      winners.forEach((winner, j) => {
        if (winner === "") return;
        const tab = winner.indexOf("\t");
        this.#options.events.clusterClaim(
          batch[j].user,
          Number(winner.slice(0, tab)),
          winner.slice(tab + 1),
        );
      });
    }
  }
}
