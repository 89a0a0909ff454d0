/**
 * The hub's records: a session on this node, a session on another node as this node's view
 * holds it, and a room with its members on every node.
 *
 * @module
 */

import { encodeLine } from "../protocol/codec.ts";
import { Features } from "../protocol/v11.ts";
import type { Peer } from "./ports.ts";

/** A session on this node. */
export class Session {
  room: Room | null = null;
  #userBytes: Uint8Array | null = null;
  /**
   * `id` is also the session's fence in a cluster (see ClusterLink.claim); `features` are its
   * connection's (`from` picks the form of the `3:` lines it gets).
   */
  constructor(
    readonly id: number,
    readonly user: string,
    readonly peer: Peer,
    readonly features: Features = peer.features ?? new Features(),
  ) {}

  /** The username as UTF-8, made the first time a message carries it. */
  get userBytes(): Uint8Array {
    return this.#userBytes ??= utf8.encode(this.user);
  }
}

const utf8 = new TextEncoder();

/** A run of `3:` lines in the v1 form and, made only when someone asks, the `from` form. */
export interface RunForms {
  /** The lines as v1 sends them (`3:<message>`, or `3:<sender>:<message>` with --stamp-sender). */
  plain(): Uint8Array;
  /** The same lines as `from` clients get them: `3:<room>:<sender>:<message>`. */
  from(): Uint8Array;
}

/** A session on another node, as this node's view of the cluster holds it. */
export class RemoteSession {
  room: Room | null = null;
  constructor(readonly user: string, readonly node: string, readonly fence: number) {}
}

/**
 * A room: its members here and elsewhere, and where its messages must go.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RemoteSession, Room } from "./room.ts";
 * const room = new Room("lobby", new TextEncoder().encode("lobby"), null);
 * room.addRemote(new RemoteSession("bob", "node-2", 7));
 * assert.deepEqual(room.sortedMembers(), ["bob"]);
 * assert.deepEqual([...room.nodes.keys()], ["node-2"]);
 * ```
 */
export class Room {
  /** The members on this node. */
  readonly members = new Map<string, Session>();
  /** The members on other nodes. */
  readonly remote = new Map<string, RemoteSession>();
  /** How many of the remote members each other node has: where a room message must go. */
  readonly nodes = new Map<string, number>();
  #sorted: string[] | null = null;
  /** Whether someone joined it since the hub last reported its rooms in use. */
  used = false;
  constructor(
    readonly name: string,
    readonly nameBytes: Uint8Array,
    readonly passwordHash: string | null,
    /** The user whose join made it; null for rooms made before makers were recorded. */
    readonly maker: string | null = null,
  ) {}

  /** Member names on every node, sorted; cached until the membership changes. */
  sortedMembers(): string[] {
    return this.#sorted ??= [...this.members.keys(), ...this.remote.keys()].sort();
  }

  addRemote(member: RemoteSession): void {
    this.remote.set(member.user, member);
    this.nodes.set(member.node, (this.nodes.get(member.node) ?? 0) + 1);
    this.#sorted = null;
  }

  deleteRemote(member: RemoteSession): void {
    this.remote.delete(member.user);
    const left = (this.nodes.get(member.node) ?? 1) - 1;
    if (left === 0) this.nodes.delete(member.node);
    else this.nodes.set(member.node, left);
    this.#sorted = null;
  }

  add(session: Session): void {
    this.members.set(session.user, session);
    this.#sorted = null;
  }

  delete(session: Session): void {
    this.members.delete(session.user);
    this.#sorted = null;
  }

  clear(): void {
    this.members.clear();
    this.remote.clear();
    this.nodes.clear();
    this.#sorted = null;
  }

  /**
   * Sends a run to every member on this node but `except`, each in the form its features ask
   * for; each form is made at most once. Returns how many members it went to.
   */
  broadcastRun(forms: RunForms, except: Session | null): number {
    let sent = 0;
    let plain: Uint8Array | null = null;
    let from: Uint8Array | null = null;
    for (const member of this.members.values()) {
      if (member === except) continue;
      if (member.features.from) member.peer.send(from ??= forms.from());
      else member.peer.send(plain ??= forms.plain());
      sent++;
    }
    return sent;
  }

  /** Sends `line` to every member on this node but `except`; returns how many it went to. */
  broadcast(line: Uint8Array, except: Session | null): number {
    let sent = 0;
    for (const member of this.members.values()) {
      if (member !== except) {
        member.peer.send(line);
        sent++;
      }
    }
    return sent;
  }
}

/**
 * A member here (a {@linkcode Session}) or elsewhere (a {@linkcode RemoteSession}) leaves its
 * room, if it is in one; this node's members left behind get `5:`.
 */
export function leaveRoom(member: Session | RemoteSession): void {
  const room = member.room;
  if (room === null) return;
  if (member instanceof Session) room.delete(member);
  else room.deleteRemote(member);
  member.room = null;
  if (room.members.size > 0) room.broadcast(encodeLine("5", room.nameBytes, member.user), null);
}
