/**
 * The hub: sessions, rooms and routing. It is the one place that decides who receives what.
 *
 * Commands come in from connections (already parsed by codec.ts); encoded lines go out through
 * each connection's {@linkcode Peer}. The hub holds no sockets and runs no SQL: the store and the
 * password hasher are handed to it as small interfaces, and only logins and room joins (which
 * hash a password or write a room) ever wait on them. Everything else is synchronous.
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
} from "./codec.ts";
import type { RoomRecord } from "./store.ts";

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
}

class Session {
  room: Room | null = null;
  /** The username as UTF-8, made the first time a message is stamped with it. */
  userBytes: Uint8Array | null = null;
  constructor(readonly id: number, readonly user: string, readonly peer: Peer) {}
}

class Room {
  readonly members = new Map<string, Session>();
  #sorted: string[] | null = null;
  constructor(
    readonly name: string,
    readonly nameBytes: Uint8Array,
    readonly passwordHash: string | null,
  ) {}

  /** Member names, sorted; cached until the membership changes. */
  sortedMembers(): string[] {
    return this.#sorted ??= [...this.members.keys()].sort();
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
 * import { parseCommand } from "./codec.ts";
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

  constructor(options: HubOptions) {
    this.#store = options.store;
    this.#passwords = options.passwords;
    this.stampSender = options.stampSender ?? false;
    this.maxRooms = options.maxRooms ?? 10_000;
    this.maxTargets = options.maxTargets ?? 100;
    this.#onError = options.onError ?? (() => {});
  }

  /** How many connections the hub knows. */
  get connectionCount(): number {
    return this.#peers.size;
  }

  /** How many sessions are logged in. */
  get sessionCount(): number {
    return this.#sessionsByUser.size;
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
    const members = [...room.members.values()];
    for (const member of members) {
      const left = encodeLine("5", room.nameBytes, member.user);
      room.broadcast(left, null);
    }
    for (const member of members) member.room = null;
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
    const previous = this.#sessionsByUser.get(username);
    if (previous !== undefined) {
      this.#endSession(previous.peer);
      previous.peer.send(LOGGED_OUT);
      previous.peer.sessionEnded("replaced");
    }
    const session = new Session(this.#nextSessionId++, username, peer);
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
      room = await created;
      if (room === null) {
        this.flush();
        peer.send(encodeError("2", "server-error"));
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
    }
    peer.send(encodeLine("2", room.nameBytes, room.sortedMembers().join(",")));
  }

  /**
   * Creates a room: hashes its password, stores it, then makes it visible. Joins of the same name
   * that arrive meanwhile wait for this one and then join as they would an existing room.
   */
  #createRoom(
    name: string,
    nameBytes: Uint8Array,
    password: Uint8Array,
  ): Promise<Room | null> | "room-limit" {
    if (this.#rooms.size + this.#roomsPending.size >= this.maxRooms) return "room-limit";
    const creating = (async () => {
      try {
        const hash = password.length === 0 ? null : await this.#passwords.hash(password);
        await this.#store.addRoom(name, hash);
        const room = new Room(name, nameBytes, hash);
        this.#addRoom(room);
        return room;
      } catch (error) {
        this.#onError(error);
        return null;
      } finally {
        this.#roomsPending.delete(name);
      }
    })();
    this.#roomsPending.set(name, creating);
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
    for (let i = 0; i < distinct.length; i++) {
      const target = distinct[i];
      const recipient = this.#sessionsByUser.get(target);
      if (recipient !== undefined) {
        recipient.peer.send(line);
        this.#deliveries++;
      } else (notOnline ??= []).push(target);
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
