/**
 * The cluster's events as the hub applies them, in the order the bus delivered them. Each node
 * tells its own clients about its view's changes (`4:`, `5:`, messages), so an event crosses the
 * bus once per node, not once per recipient. Fences make stale events change nothing.
 *
 * @module
 */

import { encodeLine } from "../protocol/codec.ts";
import type { Messages } from "./messages.ts";
import type { ClusterEvents, ClusterSession } from "./ports.ts";
import { leaveRoom, type Session } from "./room.ts";
import type { HubState } from "./state.ts";

const encoder = new TextEncoder();

/** What the cluster's events make the hub do beyond its state. */
export interface ClusterActs {
  /** Ends a local session that a newer login elsewhere replaced. */
  replace(session: Session): void;
  /** This node's own join came back from the bus. */
  ownJoinOrdered(user: string, fence: number, room: string | null): void;
}

/** The hub's {@linkcode ClusterEvents}. */
export class ClusterSide implements ClusterEvents {
  #state: HubState;
  #messages: Messages;
  #acts: ClusterActs;

  constructor(state: HubState, messages: Messages, acts: ClusterActs) {
    this.#state = state;
    this.#messages = messages;
    this.#acts = acts;
  }

  clusterClaim(user: string, fence: number, node: string): number {
    if (this.#state.view.fenceOf(user) >= fence) return 0; // overtaken already: stale
    this.#messages.flush();
    this.#state.view.setFence(user, fence);
    let ended = 0;
    const local = this.#state.sessions.get(user);
    if (local !== undefined && local.id < fence) {
      ended = local.id;
      this.#acts.replace(local);
    }
    this.#dropRemote(user);
    if (node !== this.#state.nodeId) this.#state.view.add(user, node, fence);
    return ended;
  }

  clusterEnded(user: string, fence: number, node: string): void {
    const remote = this.#state.view.get(user);
    if (remote === undefined || remote.fence !== fence || remote.node !== node) return;
    this.#messages.flush();
    this.#dropRemote(user);
  }

  clusterJoined: ClusterEvents["clusterJoined"] = (user, fence, node, room, roomPasswordHash) => {
    this.#messages.flush();
    if (node === this.#state.nodeId) return this.#acts.ownJoinOrdered(user, fence, room);
    let remote = this.#state.view.get(user);
    if (remote === undefined || remote.fence !== fence) {
      // A session whose claim this node did not see (it joined the cluster later): take it in,
      // unless something newer is known.
      this.clusterClaim(user, fence, node);
      remote = this.#state.view.get(user);
      if (remote === undefined || remote.fence !== fence) return;
    }
    // Created on another node a moment ago: the event carries what the store holds.
    const target = room === null ? null : this.#state.rooms.get(room) ??
      this.#state.rooms.add(room, encoder.encode(room), roomPasswordHash);
    if (remote.room === target) return;
    leaveRoom(remote);
    if (target !== null) {
      target.broadcast(encodeLine("4", target.nameBytes, user), null);
      target.addRemote(remote);
      remote.room = target;
    }
  };

  clusterNodeSessions(node: string, sessions: readonly ClusterSession[], watermark: number): void {
    this.#messages.flush();
    const listed = new Map<string, number>();
    for (const session of sessions) listed.set(session.user, session.fence);
    // Claims newer than the snapshot stay: the bus may deliver one before the snapshot.
    for (const remote of this.#state.view.sessionsOf(node)) {
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
    for (const remote of this.#state.view.sessionsOf(node)) {
      this.#dropRemote(remote.user);
      // A node declared down may be alive (stalled) and announce these very sessions again.
      this.#state.view.forgetFence(remote.user, remote.fence);
    }
  }

  clusterNodes(): string[] {
    return this.#state.view.nodes();
  }

  clusterSessions(): ClusterSession[] {
    return [...this.#state.sessions.values()].map((session) => ({
      user: session.user,
      fence: session.id,
      room: session.room?.name ?? null,
      roomPasswordHash: session.room?.passwordHash ?? null,
    }));
  }

  deliverRoom(room: string, chunk: Uint8Array, lines: number): void {
    this.#messages.flush();
    this.#messages.deliverRoom(this.#state.rooms.get(room), chunk, lines);
  }

  deliverDirect(users: readonly string[], line: Uint8Array): void {
    this.#messages.flush();
    this.#messages.deliverDirect(users, line);
  }

  #dropRemote(user: string): void {
    const remote = this.#state.view.remove(user);
    if (remote !== undefined) leaveRoom(remote);
  }
}
