/**
 * The hub: sessions, rooms and routing. It is the one place that decides who receives what.
 *
 * Commands come in from connections (already parsed by codec.ts); encoded lines go out through
 * each connection's {@linkcode Peer}. The hub holds no sockets and runs no SQL: the store and the
 * password hasher are handed to it as small interfaces, and only logins and room joins (which
 * hash a password or write a room) ever wait on them. Everything else is synchronous.
 *
 * In a cluster the hub is also given a {@linkcode HubCluster}: it claims each login cluster-wide,
 * keeps a view of the sessions on other nodes (fed by the `cluster*` methods, and fenced so that
 * stale events change nothing), and hands the cluster what other nodes' clients must receive.
 * The Redis side of that is lib/cluster/link.ts; the hub still does no I/O.
 *
 * @module
 */

import {
  type Command,
  compareBytes,
  encodeError,
  encodeLine,
  encodeMessage,
  encodeRoomList,
  LOGGED_OUT,
  messageSize,
  writeMessage,
} from "../protocol/codec.ts";
import type { RoomRecord } from "../store/store.ts";

const encoder = new TextEncoder();

/** Why a connection's session ended while the connection stays open. */
export type SessionEndReason =
  /** A `0:` line failed (unknown user, wrong password, malformed). */
  | "login-failed"
  /** The same user logged in on another connection. */
  | "replaced"
  /** The operator removed the user. */
  | "removed";

/** One connection as the hub sees it: somewhere to send lines, and two notices. */
export interface Peer {
  /**
   * Queues encoded output for the client: one line, or several back to back (a run of room
   * messages), always ending in LF. The bytes may be shared with other peers: never modify them.
   */
  send(lines: Uint8Array): void;
  /** A session started on this connection. */
  sessionStarted(username: string): void;
  /** This connection's session ended, or a login failed; the connection stays open. */
  sessionEnded(reason: SessionEndReason): void;
}

/** What the hub needs of the store. */
export interface HubStore {
  /** The user's password hash, or undefined if there is no such user. */
  findUser(name: string): Promise<{ passwordHash: string } | undefined>;
  /** Stores a new room durably (the join is answered only after this resolves). */
  addRoom(name: string, passwordHash: string | null): Promise<void>;
  /** The stored room, or undefined: read when another process created the room first. */
  findRoom(name: string): Promise<RoomRecord | undefined>;
}

/**
 * What the hub tells the rest of a cluster (lib/cluster/link.ts carries it over Redis). Every method
 * but {@linkcode HubCluster.claim} returns at once: the cluster queues, the hub never waits on I/O.
 * Events from other nodes come back in through the hub's `cluster*` and `deliver*` methods.
 */
export interface HubCluster {
  /** This node's id: events from the cluster name the node they concern. */
  readonly nodeId: string;
  /**
   * Claims `user` cluster-wide for a new session. Resolves to the claim's fence (a number no
   * earlier claim of any user had, which is also the session id) once no other node has a live
   * session of the user, or to null when the claim was refused (a newer claim, the bus down).
   */
  claim(user: string): Promise<number | null>;
  /** A session (or a granted claim this node gave up) ended: others drop it. */
  ended(user: string, fence: number): void;
  /**
   * A local session joined `room` (leaving the room it was in, if any). Resolves once this node
   * has seen every join the bus ordered before this one, so the `2:` reply lists them: of two
   * joins at the same moment on two nodes, the later one's reply has both.
   */
  joined(user: string, fence: number, room: string, roomPasswordHash: string | null): Promise<void>;
  /** A run of `3:` lines (`lines` of them) for the members of `room` on each of `nodes`. */
  roomRun(nodes: Iterable<string>, room: Uint8Array, chunk: Uint8Array, lines: number): void;
  /** One `3:` line for `users`, who are all on `node`. */
  direct(node: string, users: string[], line: Uint8Array): void;
}

/** A session as a cluster snapshot lists it: what another node needs to route to it. */
export interface ClusterSession {
  user: string;
  fence: number;
  /** Its room, or null. */
  room: string | null;
  /** Its room's password hash (null for a public room, or no room). */
  roomPasswordHash: string | null;
}

/** What the hub needs of the password hasher (see password.ts). */
export interface HubPasswords {
  /** Whether the password matches; with `undefined` it does the same work and returns false. */
  verify(password: Uint8Array, stored: string | undefined): Promise<boolean>;
  /** A new hash of the password. */
  hash(password: Uint8Array): Promise<string>;
}

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Users and rooms. */
  store: HubStore;
  /** Password hashing. */
  passwords: HubPasswords;
  /** Deliver messages as `3:<sender>:<message>`. */
  stampSender?: boolean;
  /** The most rooms there may be; creating one more gets `9:2:room-limit`. */
  maxRooms?: number;
  /** The most distinct targets of a `3:2`; more gets `9:3:too-many-targets`. */
  maxTargets?: number;
  /** Called with failures that are the server's, not the client's (a store write failing). */
  onError?: (error: unknown) => void;
  /** The cluster this node belongs to; without it the hub is a whole server by itself. */
  cluster?: HubCluster;
}

class Session {
  room: Room | null = null;
  /** The username as UTF-8, made the first time a message is stamped with it. */
  userBytes: Uint8Array | null = null;
  /** `id` is also the session's fence in a cluster (see {@linkcode HubCluster.claim}). */
  constructor(readonly id: number, readonly user: string, readonly peer: Peer) {}
}

/** A session on another node, as this node's view of the cluster holds it. */
class RemoteSession {
  room: Room | null = null;
  constructor(readonly user: string, readonly node: string, readonly fence: number) {}
}

class Room {
  /** The members on this node. */
  readonly members = new Map<string, Session>();
  /** The members on other nodes. */
  readonly remote = new Map<string, RemoteSession>();
  /** How many of the remote members each other node has: where a room message must go. */
  readonly nodes = new Map<string, number>();
  #sorted: string[] | null = null;
  constructor(
    readonly name: string,
    readonly nameBytes: Uint8Array,
    readonly passwordHash: string | null,
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
    const left = this.nodes.get(member.node)! - 1;
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

  /** Sends `line` to every member but `except`; returns how many it went to. */
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
 * The state machine behind the protocol.
 *
 * @example Usage
 * ```ts
 * import { Hub, type Peer } from "./hub.ts";
 * import { parseCommand } from "../protocol/codec.ts";
 * const hub = new Hub({
 *   store: { findUser: async () => ({ passwordHash: "x" }), addRoom: async () => {} },
 *   passwords: { verify: async () => true, hash: async () => "x" },
 * });
 * const peer: Peer = { send: (l) => console.log(l), sessionStarted() {}, sessionEnded() {} };
 * hub.connect(peer);
 * await hub.handle(peer, parseCommand(new TextEncoder().encode("0:alice:pw"))!); // sends 0:1
 * hub.disconnect(peer);
 * ```
 */
export class Hub {
  readonly stampSender: boolean;
  readonly maxRooms: number;
  readonly maxTargets: number;
  #store: HubStore;
  #passwords: HubPasswords;
  #onError: (error: unknown) => void;
  #nextSessionId = 1;
  #peers = new Set<Peer>();
  #sessionsByPeer = new Map<Peer, Session>();
  #sessionsByUser = new Map<string, Session>();
  #rooms = new Map<string, Room>();
  #roomsSorted: Room[] | null = null;
  /** Rooms being created (hashing their password, writing them): later joiners wait for them. */
  #roomsPending = new Map<string, Promise<Room | null>>();
  /**
   * Room messages not yet sent: a run of `3:` lines to one room (with one sender left out, or
   * none), encoded back to back into {@linkcode Hub.#runBuffer} and sent as one chunk to each
   * recipient when the current turn of the event loop ends. A client that writes many messages
   * at once then costs one send per recipient, not one per message, and one allocation per run,
   * not one per message. Anything else the hub sends goes out after the run, which keeps every
   * recipient's lines in the order they were made. `#runRoom` is null when no run is pending.
   */
  #runRoom: Room | null = null;
  #runExcept: Session | null = null;
  #runLines = 0;
  #runBytes = 0;
  /** Scratch space of the pending run; copied out (exactly sized) when the run is sent. */
  #runBuffer = new Uint8Array(4096);
  #deliveries = 0;
  #cluster: HubCluster | null;
  /** Sessions on other nodes, by user: this node's view of the cluster, fed by its events. */
  #remote = new Map<string, RemoteSession>();
  /**
   * The newest fence seen for each user, here or elsewhere. An event that carries an older one
   * is stale (it was overtaken by a newer login) and changes nothing: this is what keeps a late
   * or replayed event from reviving a session that lost.
   */
  #fences = new Map<string, number>();
  /** How many sessions of the view each other node holds. */
  #remoteNodes = new Map<string, number>();

  constructor(options: HubOptions) {
    this.#store = options.store;
    this.#passwords = options.passwords;
    this.stampSender = options.stampSender ?? false;
    this.maxRooms = options.maxRooms ?? 10_000;
    this.maxTargets = options.maxTargets ?? 100;
    this.#onError = options.onError ?? (() => {});
    this.#cluster = options.cluster ?? null;
  }

  /** How many connections the hub knows. */
  get connectionCount(): number {
    return this.#peers.size;
  }

  /** How many sessions are logged in on this node. */
  get sessionCount(): number {
    return this.#sessionsByUser.size;
  }

  /** How many sessions this node knows of on other nodes. */
  get remoteSessionCount(): number {
    return this.#remote.size;
  }

  /** How many `3:` messages have been handed to recipients (one per recipient). */
  get deliveries(): number {
    return this.#deliveries;
  }

  /** How many rooms exist. */
  get roomCount(): number {
    return this.#rooms.size;
  }

  /** Whether a room of that name exists. */
  hasRoom(name: string): boolean {
    return this.#rooms.has(name);
  }

  /** Adds rooms read from the store (at start, or when another process created them). */
  loadRooms(records: Iterable<RoomRecord>): void {
    for (const record of records) {
      if (this.#rooms.has(record.name)) continue;
      this.#addRoom(new Room(record.name, encoder.encode(record.name), record.passwordHash));
    }
  }

  /** A new connection. */
  connect(peer: Peer): void {
    this.#peers.add(peer);
  }

  /** A connection closed: its session ends and its room is told. */
  disconnect(peer: Peer): void {
    this.flush();
    this.#endSession(peer);
    this.#peers.delete(peer);
  }

  /**
   * Handles one command from `peer`. Returns a promise only for logins and joins that wait on the
   * hasher or the store; the caller handles the connection's next line after it settles, which
   * keeps each connection's commands in order.
   */
  handle(peer: Peer, command: Command): void | Promise<void> {
    if (command.kind !== "say") this.flush();
    switch (command.kind) {
      case "login":
        return this.#login(peer, command.username, command.password);
      case "bad-login":
        this.#endSession(peer);
        this.#loginFailed(peer);
        return;
    }
    const session = this.#sessionsByPeer.get(peer);
    if (session === undefined) {
      // Any 1, 2 or 3 line before a login, well-formed or not, is answered "not logged in".
      peer.send(command.kind === "invalid" && command.code === "?" ? MALFORMED : LOGGED_OUT);
      return;
    }
    switch (command.kind) {
      case "invalid":
        peer.send(encodeError(command.code, command.reason));
        return;
      case "rooms":
        peer.send(this.#roomList());
        return;
      case "join":
        return this.#join(session, command.room, command.roomBytes, command.password);
      case "say":
        return this.#say(session, command.echo, command.body);
      case "tell":
        return this.#tell(session, command.targets, command.body);
    }
  }

  /** The operator removed `user`: its session (if any) ends with `0:-1`. */
  removeUser(user: string): void {
    this.flush();
    const session = this.#sessionsByUser.get(user);
    if (session === undefined) return;
    this.#endSession(session.peer);
    session.peer.send(LOGGED_OUT);
    session.peer.sessionEnded("removed");
  }

  /**
   * The operator removed a room. Its members are moved out of it, each told with `5:` lines (for
   * every member, itself included), and it no longer appears in the room list.
   */
  removeRoom(name: string): void {
    this.flush();
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    // Every node removes the room from the same store change: each tells its own members.
    for (const user of [...room.members.keys(), ...room.remote.keys()]) {
      room.broadcast(encodeLine("5", room.nameBytes, user), null);
    }
    for (const member of room.members.values()) member.room = null;
    for (const member of room.remote.values()) member.room = null;
    this.#rooms.delete(name);
    this.#roomsSorted = null;
  }

  /** Ends every session with `0:-1` (the server is stopping). */
  logoutAll(): void {
    this.flush();
    // Everyone goes at once: no one is told of others leaving before its own 0:-1.
    for (const room of this.#rooms.values()) room.clear();
    for (const session of this.#sessionsByUser.values()) {
      session.room = null;
      session.peer.send(LOGGED_OUT);
    }
    this.#sessionsByUser.clear();
    this.#sessionsByPeer.clear();
  }

  // The cluster's events, called by lib/cluster/link.ts in the order the bus delivered them. Each
  // node tells its own clients about its view's changes (`4:`, `5:`, messages), so an event
  // crosses the bus once per node, not once per recipient.

  /**
   * `user` was claimed on `node` with `fence`: any older session of the user ends, here (`0:-1`,
   * as for a login on another connection) or in the view (its room is told `5:`), and a claim
   * on another node enters the view. Returns the fence of the local session it ended, or 0.
   */
  clusterClaim(user: string, fence: number, node: string): number {
    if ((this.#fences.get(user) ?? 0) >= fence) return 0; // overtaken already: stale
    this.flush();
    this.#fences.set(user, fence);
    let ended = 0;
    const local = this.#sessionsByUser.get(user);
    if (local !== undefined && local.id < fence) {
      ended = local.id;
      this.#endSession(local.peer);
      local.peer.send(LOGGED_OUT);
      local.peer.sessionEnded("replaced");
    }
    this.#dropRemote(user);
    if (node !== this.#cluster?.nodeId) {
      this.#remote.set(user, new RemoteSession(user, node, fence));
      this.#remoteNodes.set(node, (this.#remoteNodes.get(node) ?? 0) + 1);
    }
    return ended;
  }

  /** The session `fence` of `user` on `node` ended: it leaves the view (and its room, `5:`). */
  clusterEnded(user: string, fence: number, node: string): void {
    const remote = this.#remote.get(user);
    if (remote === undefined || remote.fence !== fence || remote.node !== node) return;
    this.flush();
    this.#dropRemote(user);
  }

  /** The session `fence` of `user` on `node` is in `room` (null: in none) now. */
  clusterJoined(
    user: string,
    fence: number,
    node: string,
    room: string | null,
    roomPasswordHash: string | null,
  ): void {
    if (node === this.#cluster?.nodeId) return;
    let remote = this.#remote.get(user);
    if (remote === undefined || remote.fence !== fence) {
      // A session whose claim this node did not see (it joined the cluster later): take it in,
      // unless something newer is known.
      this.clusterClaim(user, fence, node);
      remote = this.#remote.get(user);
      if (remote === undefined || remote.fence !== fence) return;
    }
    let target = room === null ? null : this.#rooms.get(room);
    if (room !== null && target === undefined) {
      // Created on another node a moment ago: the event carries what the store holds.
      target = new Room(room, encoder.encode(room), roomPasswordHash);
      this.#addRoom(target);
    }
    if (remote.room === (target ?? null)) return;
    this.flush();
    this.#leaveRemote(remote);
    if (target) {
      target.broadcast(encodeLine("4", target.nameBytes, user), null);
      target.addRemote(remote);
      remote.room = target;
    }
  }

  /**
   * `node` sent a snapshot of its sessions, written when the newest claim it had seen had fence
   * `watermark`: its part of the view becomes exactly that, except for claims newer than the
   * snapshot (the bus may deliver one before the snapshot).
   */
  clusterNodeSessions(node: string, sessions: readonly ClusterSession[], watermark: number): void {
    const listed = new Map<string, number>();
    for (const session of sessions) listed.set(session.user, session.fence);
    for (const remote of [...this.#remote.values()]) {
      if (
        remote.node === node && remote.fence <= watermark &&
        listed.get(remote.user) !== remote.fence
      ) {
        this.flush();
        this.#dropRemote(remote.user);
      }
    }
    for (const session of sessions) {
      this.clusterJoined(session.user, session.fence, node, session.room, session.roomPasswordHash);
    }
  }

  /** `node` is gone (dead, stopped or restarted): its sessions leave the view and their rooms. */
  clusterNodeDown(node: string): void {
    for (const remote of [...this.#remote.values()]) {
      if (remote.node !== node) continue;
      this.flush();
      this.#dropRemote(remote.user);
      // A node declared down may be alive (stalled) and announce these very sessions again.
      if (this.#fences.get(remote.user) === remote.fence) this.#fences.delete(remote.user);
    }
  }

  /** The other nodes this node's view holds sessions of. */
  clusterNodes(): string[] {
    return [...this.#remoteNodes.keys()];
  }

  /** This node's sessions, as a snapshot for the others. */
  clusterSessions(): ClusterSession[] {
    return [...this.#sessionsByUser.values()].map((session) => ({
      user: session.user,
      fence: session.id,
      room: session.room?.name ?? null,
      roomPasswordHash: session.room?.passwordHash ?? null,
    }));
  }

  /** A run of `3:` lines (`lines` of them) from another node for this node's members of `room`. */
  deliverRoom(room: string, chunk: Uint8Array, lines: number): void {
    this.flush();
    const target = this.#rooms.get(room);
    if (target !== undefined) this.#deliveries += target.broadcast(chunk, null) * lines;
  }

  /** A `3:` line from another node for `users` on this node (those still here get it). */
  deliverDirect(users: readonly string[], line: Uint8Array): void {
    this.flush();
    for (const user of users) {
      const session = this.#sessionsByUser.get(user);
      if (session === undefined) continue;
      session.peer.send(line);
      this.#deliveries++;
    }
  }

  #dropRemote(user: string): void {
    const remote = this.#remote.get(user);
    if (remote === undefined) return;
    this.#remote.delete(user);
    const left = this.#remoteNodes.get(remote.node)! - 1;
    if (left === 0) this.#remoteNodes.delete(remote.node);
    else this.#remoteNodes.set(remote.node, left);
    this.#leaveRemote(remote);
  }

  #leaveRemote(remote: RemoteSession): void {
    const room = remote.room;
    if (room === null) return;
    room.deleteRemote(remote);
    remote.room = null;
    if (room.members.size > 0) room.broadcast(encodeLine("5", room.nameBytes, remote.user), null);
  }

  async #login(peer: Peer, username: string, password: Uint8Array): Promise<void> {
    this.#endSession(peer);
    password = password.slice(); // our own copy: the caller's view points into a read buffer
    let ok = false;
    try {
      const user = await this.#store.findUser(username);
      ok = await this.#passwords.verify(password, user?.passwordHash);
    } catch (error) {
      // A busy hasher or a failing store: the login fails, the server carries on.
      this.#onError(error);
    }
    this.flush(); // others may have queued room messages while we waited
    if (!this.#peers.has(peer)) return; // the connection closed while we checked
    if (!ok) {
      this.#loginFailed(peer);
      return;
    }
    let id = this.#nextSessionId++;
    if (this.#cluster !== null) {
      // The cluster answers once no other node has a live session of the user; only then does
      // this one start, so two sessions of a user never receive messages at the same time.
      const fence = await this.#cluster.claim(username);
      this.flush();
      if (fence === null) {
        if (this.#peers.has(peer)) this.#loginFailed(peer);
        return;
      }
      // Overtaken while the grant was on its way (a newer claim), or the connection went.
      if ((this.#fences.get(username) ?? 0) > fence || !this.#peers.has(peer)) {
        this.#cluster.ended(username, fence);
        if (this.#peers.has(peer)) this.#loginFailed(peer);
        return;
      }
      this.#fences.set(username, fence);
      id = fence;
    }
    const previous = this.#sessionsByUser.get(username);
    if (previous !== undefined) {
      this.#endSession(previous.peer);
      previous.peer.send(LOGGED_OUT);
      previous.peer.sessionEnded("replaced");
    }
    const session = new Session(id, username, peer);
    this.#sessionsByPeer.set(peer, session);
    this.#sessionsByUser.set(username, session);
    peer.send(encodeLine("0", String(session.id)));
    peer.sessionStarted(username);
  }

  #loginFailed(peer: Peer): void {
    peer.send(LOGGED_OUT);
    peer.sessionEnded("login-failed");
  }

  /** Ends the peer's session, if it has one: it leaves its room (telling the others). */
  #endSession(peer: Peer): void {
    const session = this.#sessionsByPeer.get(peer);
    if (session === undefined) return;
    this.#leaveRoom(session);
    this.#sessionsByPeer.delete(peer);
    this.#sessionsByUser.delete(session.user);
    this.#cluster?.ended(session.user, session.id);
  }

  #leaveRoom(session: Session): void {
    const room = session.room;
    if (room === null) return;
    room.delete(session);
    session.room = null;
    if (room.members.size > 0) room.broadcast(encodeLine("5", room.nameBytes, session.user), null);
  }

  #addRoom(room: Room): void {
    this.#rooms.set(room.name, room);
    this.#roomsSorted = null;
  }

  #roomList(): Uint8Array {
    // Only public rooms are listed (protocol.md: `1:` lists "public rooms"; a room with a
    // password is not one).
    this.#roomsSorted ??= [...this.#rooms.values()]
      .filter((room) => room.passwordHash === null)
      .sort((a, b) => compareBytes(a.nameBytes, b.nameBytes));
    return encodeRoomList(
      this.#roomsSorted.map((room) => ({
        nameBytes: room.nameBytes,
        members: room.sortedMembers(),
      })),
    );
  }

  async #join(
    session: Session,
    name: string,
    nameBytes: Uint8Array,
    password: Uint8Array,
  ): Promise<void> {
    const peer = session.peer;
    // Our own copies: the caller's views point into a read buffer, and we may wait below.
    nameBytes = nameBytes.slice();
    password = password.slice();
    // Await only a creation that is really pending: an `await undefined` here would yield, and a
    // second joiner of the same new room would slip past this check and create it twice.
    const pending = this.#rooms.has(name) ? undefined : this.#roomsPending.get(name);
    let room = this.#rooms.get(name) ?? (pending === undefined ? null : await pending);
    if (room === null && pending !== undefined) {
      // The creation we waited for failed: start over (someone else may be creating it now).
      if (this.#sessionsByPeer.get(peer) !== session) return;
      return this.#join(session, name, nameBytes, password);
    }
    if (room === null) {
      const created = this.#createRoom(name, nameBytes, password);
      if (created === "room-limit") {
        peer.send(encodeError("2", "room-limit"));
        return;
      }
      const outcome = await created;
      if (outcome === null) {
        this.flush();
        peer.send(encodeError("2", "server-error"));
        return;
      }
      room = outcome.room;
      // Another node or process made it first: join it as an existing room, password and all.
      if (outcome.existed && !await this.#roomPasswordMatches(room, password)) {
        this.flush();
        if (this.#sessionsByPeer.get(peer) === session) {
          peer.send(encodeError("2", "room-password"));
        }
        return;
      }
    } else if (!await this.#roomPasswordMatches(room, password)) {
      this.flush();
      if (this.#sessionsByPeer.get(peer) === session) peer.send(encodeError("2", "room-password"));
      return;
    }
    this.flush(); // others may have queued room messages while we waited
    // While we waited the session may have ended, or the room been removed.
    if (this.#sessionsByPeer.get(peer) !== session) return;
    if (this.#rooms.get(name) !== room) {
      peer.send(encodeError("2", "server-error"));
      return;
    }
    if (session.room !== room) {
      this.#leaveRoom(session);
      room.broadcast(encodeLine("4", room.nameBytes, session.user), null);
      room.add(session);
      session.room = room;
      const ordered = this.#cluster?.joined(session.user, session.id, room.name, room.passwordHash);
      if (ordered !== undefined) {
        await ordered;
        this.flush();
        if (this.#sessionsByPeer.get(peer) !== session || session.room !== room) return;
      }
    }
    peer.send(encodeLine("2", room.nameBytes, room.sortedMembers().join(",")));
  }

  /**
   * Creates a room: hashes its password, stores it, then makes it visible. Joins of the same name
   * that arrive meanwhile wait for this one and then join as they would an existing room. When
   * the store already has the room (another node or the admin CLI made it first), that room is
   * loaded instead, and `existed` says its password has yet to be checked.
   */
  #createRoom(
    name: string,
    nameBytes: Uint8Array,
    password: Uint8Array,
  ): Promise<{ room: Room; existed: boolean } | null> | "room-limit" {
    if (this.#rooms.size + this.#roomsPending.size >= this.maxRooms) return "room-limit";
    const creating = (async () => {
      try {
        const hash = password.length === 0 ? null : await this.#passwords.hash(password);
        let record: RoomRecord = { name, passwordHash: hash };
        let existed = false;
        try {
          await this.#store.addRoom(name, hash);
        } catch (error) {
          const stored = await this.#store.findRoom(name).catch(() => undefined);
          if (stored === undefined) throw error;
          record = stored;
          existed = true;
        }
        // An event from another node may have brought the room in while we waited.
        let room = this.#rooms.get(name);
        if (room === undefined) {
          room = new Room(name, nameBytes, record.passwordHash);
          this.#addRoom(room);
        }
        return { room, existed: existed || room.passwordHash !== hash };
      } catch (error) {
        this.#onError(error);
        return null;
      } finally {
        this.#roomsPending.delete(name);
      }
    })();
    this.#roomsPending.set(name, creating.then((outcome) => outcome?.room ?? null));
    return creating;
  }

  async #roomPasswordMatches(room: Room, password: Uint8Array): Promise<boolean> {
    if (room.passwordHash === null) return password.length === 0;
    try {
      return await this.#passwords.verify(password, room.passwordHash);
    } catch (error) {
      this.#onError(error);
      return false;
    }
  }

  #say(session: Session, echo: boolean, body: Uint8Array): void {
    const room = session.room;
    if (room === null) {
      session.peer.send(NOT_IN_ROOM);
      return;
    }
    const except = echo ? null : session;
    const sender = this.stampSender ? (session.userBytes ??= encoder.encode(session.user)) : null;
    const size = messageSize(body, sender);
    if (
      this.#runRoom !== room || this.#runExcept !== except || this.#runBytes + size > MAX_RUN_BYTES
    ) {
      this.flush();
      this.#runRoom = room;
      this.#runExcept = except;
      queueMicrotask(this.flush);
    }
    let buffer = this.#runBuffer;
    const at = this.#runBytes;
    if (at + size > buffer.length) {
      const grown = new Uint8Array(Math.max(at + size, buffer.length * 2));
      grown.set(buffer.subarray(0, at));
      this.#runBuffer = buffer = grown;
    }
    this.#runBytes = writeMessage(buffer, at, body, sender);
    this.#runLines++;
  }

  /**
   * Sends the pending run of room messages now. It also goes by itself when the current turn of
   * the event loop ends; call this to see its effect synchronously (tests do).
   */
  flush = (): void => {
    const room = this.#runRoom;
    if (room === null) return;
    const chunk = this.#runBuffer.slice(0, this.#runBytes);
    const lines = this.#runLines;
    const except = this.#runExcept;
    this.#runRoom = null;
    this.#runExcept = null;
    this.#runLines = 0;
    this.#runBytes = 0;
    if (this.#runBuffer.length > MAX_RUN_BYTES) this.#runBuffer = new Uint8Array(4096);
    this.#deliveries += room.broadcast(chunk, except) * lines;
    // The sender is on this node, so every member elsewhere gets the whole run.
    if (room.nodes.size > 0) {
      this.#cluster?.roomRun(room.nodes.keys(), room.nameBytes, chunk, lines);
    }
  };

  #tell(session: Session, targets: string[], body: Uint8Array): void {
    // Short lists (the usual case) are deduplicated in place: no Set per message.
    const distinct = targets.length <= SMALL_TARGET_LIST ? dedupe(targets) : [...new Set(targets)];
    if (distinct.length > this.maxTargets) {
      session.peer.send(TOO_MANY_TARGETS);
      return;
    }
    const line = encodeMessage(body, this.stampSender ? session.user : undefined);
    let notOnline: string[] | null = null;
    let elsewhere: Map<string, string[]> | null = null;
    for (let i = 0; i < distinct.length; i++) {
      const target = distinct[i];
      const recipient = this.#sessionsByUser.get(target);
      if (recipient !== undefined) {
        recipient.peer.send(line);
        this.#deliveries++;
        continue;
      }
      const remote = this.#remote.get(target);
      if (remote === undefined) (notOnline ??= []).push(target);
      else {
        elsewhere ??= new Map();
        const users = elsewhere.get(remote.node);
        if (users === undefined) elsewhere.set(remote.node, [target]);
        else users.push(target);
      }
    }
    // One message per node that holds recipients, never one per recipient.
    if (elsewhere !== null) {
      for (const [node, users] of elsewhere) this.#cluster!.direct(node, users, line);
    }
    if (notOnline !== null) session.peer.send(encodeError("3", "not-online", notOnline.join(",")));
  }
}

/** A run of room messages is sent once it holds this many bytes (and a new one starts). */
const MAX_RUN_BYTES = 64 * 1024;
/** Target lists up to this long are deduplicated by comparing names pairwise. */
const SMALL_TARGET_LIST = 16;

/** `names` without repeats, first occurrences kept in order (the array itself when it has none). */
function dedupe(names: string[]): string[] {
  for (let i = 1; i < names.length; i++) {
    for (let j = 0; j < i; j++) {
      if (names[i] === names[j]) return [...new Set(names)];
    }
  }
  return names;
}

const MALFORMED = encodeError("?", "malformed");
const NOT_IN_ROOM = encodeError("3", "not-in-room");
const TOO_MANY_TARGETS = encodeError("3", "too-many-targets");
