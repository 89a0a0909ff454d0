/**
 * The cluster's events as the hub applies them, in the order the bus delivered them. Each node
 * tells its own clients about its view's changes (`4:`, `5:`, messages), so an event crosses the
 * bus once per node, not once per recipient. Fences make stale events change nothing.
 *
 * @module
 */

import { encodeLine } from "../protocol/codec.ts";
import type { ClusterView } from "./cluster_view.ts";
import type { Messages } from "./messages.ts";
import type { ClusterEvents, ClusterSession } from "./ports.ts";
import { leaveRemoteRoom, type Session } from "./room.ts";
import type { Rooms } from "./rooms.ts";

const encoder = new TextEncoder();

/** What {@linkcode ClusterSide} works with: the hub's own parts, and two of its acts. */
export interface ClusterSideOptions {
  nodeId: string;
  view: ClusterView;
  rooms: Rooms;
  sessions: ReadonlyMap<string, Session>;
  messages: Messages;
  /** Ends a local session that a newer login elsewhere replaced. */
  replace(session: Session): void;
  /** This node's own join came back from the bus. */
  ownJoinOrdered(user: string, fence: number, room: string | null): void;
}

/** The hub's {@linkcode ClusterEvents}. */
export class ClusterSide implements ClusterEvents {
  #nodeId: string;
  #view: ClusterView;
  #rooms: Rooms;
  #sessions: ReadonlyMap<string, Session>;
  #messages: Messages;
  #replace: (session: Session) => void;
  #ownJoinOrdered: (user: string, fence: number, room: string | null) => void;

  constructor(options: ClusterSideOptions) {
    this.#nodeId = options.nodeId;
    this.#view = options.view;
    this.#rooms = options.rooms;
    this.#sessions = options.sessions;
    this.#messages = options.messages;
    this.#replace = options.replace;
    this.#ownJoinOrdered = options.ownJoinOrdered;
  }

  clusterClaim(user: string, fence: number, node: string): number {
    if (this.#view.fenceOf(user) >= fence) return 0; // overtaken already: stale
    this.#messages.flush();
    this.#view.setFence(user, fence);
    let ended = 0;
    const local = this.#sessions.get(user);
    if (local !== undefined && local.id < fence) {
      ended = local.id;
      this.#replace(local);
    }
    this.#dropRemote(user);
    if (node !== this.#nodeId) this.#view.add(user, node, fence);
    return ended;
  }

  clusterEnded(user: string, fence: number, node: string): void {
    const remote = this.#view.get(user);
    if (remote === undefined || remote.fence !== fence || remote.node !== node) return;
    this.#messages.flush();
    this.#dropRemote(user);
  }

  clusterJoined(
    user: string,
    fence: number,
    node: string,
    room: string | null,
    roomPasswordHash: string | null,
  ): void {
    this.#messages.flush();
    if (node === this.#nodeId) return this.#ownJoinOrdered(user, fence, room);
    let remote = this.#view.get(user);
    if (remote === undefined || remote.fence !== fence) {
      // A session whose claim this node did not see (it joined the cluster later): take it in,
      // unless something newer is known.
      this.clusterClaim(user, fence, node);
      remote = this.#view.get(user);
      if (remote === undefined || remote.fence !== fence) return;
    }
    // Created on another node a moment ago: the event carries what the store holds.
    const target = room === null
      ? null
      : this.#rooms.get(room) ?? this.#rooms.add(room, encoder.encode(room), roomPasswordHash);
    if (remote.room === target) return;
    leaveRemoteRoom(remote);
    if (target !== null) {
      target.broadcast(encodeLine("4", target.nameBytes, user), null);
      target.addRemote(remote);
      remote.room = target;
    }
  }

  clusterNodeSessions(node: string, sessions: readonly ClusterSession[], watermark: number): void {
    this.#messages.flush();
    const listed = new Map<string, number>();
    for (const session of sessions) listed.set(session.user, session.fence);
    // Claims newer than the snapshot stay: the bus may deliver one before the snapshot.
    for (const remote of this.#view.sessionsOf(node)) {
      if (remote.fence <= watermark && listed.get(remote.user) !== remote.fence) {
        this.#dropRemote(remote.user);
      }
    }
    for (const session of sessions) {
      this.clusterJoined(session.user, session.fence, node, session.room, session.roomPasswordHash);
    }
  }

  clusterNodeDown(node: string): void {
    this.#messages.flush();
    for (const remote of this.#view.sessionsOf(node)) {
      this.#dropRemote(remote.user);
      // A node declared down may be alive (stalled) and announce these very sessions again.
      this.#view.forgetFence(remote.user, remote.fence);
    }
  }

  clusterNodes(): string[] {
    return this.#view.nodes();
  }

  clusterSessions(): ClusterSession[] {
    return [...this.#sessions.values()].map((session) => ({
      user: session.user,
      fence: session.id,
      room: session.room?.name ?? null,
      roomPasswordHash: session.room?.passwordHash ?? null,
    }));
  }

  deliverRoom(room: string, chunk: Uint8Array, lines: number): void {
    this.#messages.flush();
    this.#messages.deliverRoom(this.#rooms.get(room), chunk, lines);
  }

  deliverDirect(users: readonly string[], line: Uint8Array): void {
    this.#messages.flush();
    this.#messages.deliverDirect(users, line);
  }

  #dropRemote(user: string): void {
    const remote = this.#view.remove(user);
    if (remote !== undefined) leaveRemoteRoom(remote);
  }
}
