/**
 * The hub's boundary: what goes in and what comes out. The hub is a synchronous state machine;
 * everything slow (the store, the password hasher, the cluster's claims) happens at its edge,
 * which the hub asks through {@linkcode HubWork} and which answers through {@linkcode HubResults}.
 * Connections are {@linkcode Peer}s; the cluster is a {@linkcode HubCluster} going out and
 * {@linkcode ClusterEvents} coming in.
 *
 * @module
 */

import type { Features } from "../protocol/v11.ts";

/** Why a connection's session ended while the connection stays open. */
export type SessionEndReason =
  /** A `0:` line failed (unknown user, wrong password, malformed). */
  | "login-failed"
  /** A `0:` line could not be checked (the password hasher's queue is full): not a failure. */
  | "login-busy"
  /** The same user logged in on another connection. */
  | "replaced"
  /** The operator removed the user. */
  | "removed";

/** One connection as the hub sees it: somewhere to send lines, and notices. */
export interface Peer {
  /** The remote address, which the edge's work queue serves in turn with the others. */
  readonly remoteAddress?: string;
  /** The v1.1 features the connection turned on (a peer without one gets its own in the hub). */
  readonly features?: Features;
  /**
   * Queues encoded output for the client: one line, or several back to back (a run of room
   * messages), always ending in LF. The bytes may be shared with other peers: never modify them.
   */
  send(lines: Uint8Array): void;
  /** A session started on this connection (`sessionId`: the number its `0:` line gave). */
  sessionStarted(username: string, sessionId: number): void;
  /**
   * This connection's session ended, or a login failed; the connection stays open. `username` is
   * the name a failed login tried, when the line named one (for the operator's log).
   */
  sessionEnded(reason: SessionEndReason, username?: string): void;
  /**
   * The command that {@linkcode HubResults}' caller left pending (a `handle` that returned
   * false) is finished: the connection may hand the hub its next line.
   */
  commandDone(): void;
  /** A join's room password (of `room`) was checked and was wrong. */
  roomPasswordFailed?(room: string): void;
}

/** A room as the store holds it. */
export interface RoomRecord {
  name: string;
  /** The room password's hash; null for a public room. */
  passwordHash: string | null;
  /** The user whose join made it (null or absent: made before makers were recorded). */
  maker?: string | null;
}

/** What storing a new room came to: the stored room, and whether this request created it. */
export interface StoredRoom {
  record: RoomRecord;
  /** False when the store had the room already (another node or the admin CLI made it first). */
  created: boolean;
}

/** What checking a password came to: right, wrong, or not checked because the edge is busy. */
export type CheckOutcome = boolean | "busy";

/**
 * Work the hub asks of its edge. Every method returns at once and must not answer before it
 * has returned: the edge reports the outcome later by calling the {@linkcode HubResults}
 * method named in each description with the same `ticket`. `address` is the asking peer's
 * remote address: slow work is served address by address, in turn.
 */
export interface HubWork {
  /**
   * Looks up `username` and checks `password` against its hash, doing the same work when there
   * is no such user → {@linkcode HubResults.loginChecked}.
   */
  checkLogin(ticket: number, username: string, password: Uint8Array, address: string): void;
  /**
   * Checks a resume token of `username` (no password hash) → {@linkcode HubResults.resumeChecked}.
   * Without it every token is refused.
   */
  checkResume?(ticket: number, username: string, token: string, address: string): void;
  /** Claims `username` cluster-wide (only with a cluster) → {@linkcode HubResults.claimDecided}. */
  claim(ticket: number, username: string): void;
  /**
   * Stores a new resume token for the session of `username` about to start, which makes its
   * older tokens useless → {@linkcode HubResults.tokenIssued}. Without it no token is issued.
   */
  issueToken?(ticket: number, username: string): void;
  /**
   * Hashes `password` (none when empty: a public room) and stores the room as made by `maker`,
   * or reads the stored one when it exists already → {@linkcode HubResults.roomStored}.
   */
  storeRoom(
    ticket: number,
    name: string,
    password: Uint8Array,
    address: string,
    maker: string,
  ): void;
  /** Checks a room password against the room's hash → {@linkcode HubResults.roomPasswordChecked}. */
  checkRoomPassword(
    ticket: number,
    password: Uint8Array,
    passwordHash: string,
    address: string,
  ): void;
}

/** The outcomes of {@linkcode HubWork}, fed back into the hub as events. */
export interface HubResults {
  /** Whether the login's password matched (false too on a server error), or "busy". */
  loginChecked(ticket: number, ok: CheckOutcome): void;
  /** Whether the resume token was accepted (false too on a server error), or "busy". */
  resumeChecked(ticket: number, ok: CheckOutcome): void;
  /** The claim's fence (also the session id), or null when the claim was refused. */
  claimDecided(ticket: number, fence: number | null): void;
  /** The new resume token, once stored; null when storing it failed. */
  tokenIssued(ticket: number, token: string | null): void;
  /** The room as stored, or null when storing it failed. */
  roomStored(ticket: number, outcome: StoredRoom | null): void;
  /** Whether the room password matched (false too on a server error), or "busy". */
  roomPasswordChecked(ticket: number, ok: CheckOutcome): void;
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

/**
 * What the hub tells the rest of a cluster. Every method returns at once: the cluster queues,
 * the hub never waits on I/O. Claims are made by the server's edge (ClusterLink.claim), not here.
 */
export interface HubCluster {
  readonly nodeId: string;
  /** A session (or a granted claim this node gave up) ended: others drop it. */
  ended(user: string, fence: number): void;
  /**
   * A local session asks to join `room`. The link publishes it on the bus and reports it back
   * through ClusterEvents.clusterJoined (with node = this node) when the bus delivers it back,
   * so the hub applies the join at the point the bus ordered it; if it does not come back within
   * JOIN_ECHO_MS, or the bus is down or the link closes, the link reports it back anyway
   * (once; a late echo after that is reported again and the hub ignores the duplicate).
   */
  joined(user: string, fence: number, room: string, roomPasswordHash: string | null): void;
  /** A run of `3:` lines (`lines` of them) for the members of `room` on each of `nodes`. */
  roomRun(nodes: Iterable<string>, room: Uint8Array, chunk: Uint8Array, lines: number): void;
  /** One `3:` line for `users`, who are all on `node`. */
  direct(node: string, users: string[], line: Uint8Array): void;
}

/** What the cluster tells the hub, in the order the bus delivered it. */
export interface ClusterEvents {
  /**
   * `user` was claimed on `node` with `fence`: any older session of the user ends. Returns the
   * fence of the local session it ended, or 0.
   */
  clusterClaim(user: string, fence: number, node: string): number;
  /** The session `fence` of `user` on `node` ended. */
  clusterEnded(user: string, fence: number, node: string): void;
  /** The session `fence` of `user` on `node` is in `room` (null: in none) now. */
  clusterJoined(
    user: string,
    fence: number,
    node: string,
    room: string | null,
    roomPasswordHash: string | null,
  ): void;
  /** `node`'s sessions, as of the newest claim it had seen (`watermark`). */
  clusterNodeSessions(node: string, sessions: readonly ClusterSession[], watermark: number): void;
  /** `node` is gone: its sessions leave the view. */
  clusterNodeDown(node: string): void;
  /** The other nodes the view holds sessions of. */
  clusterNodes(): string[];
  /** This node's sessions, as a snapshot for the others. */
  clusterSessions(): ClusterSession[];
  /** A run of `3:` lines from another node for this node's members of `room`. */
  deliverRoom(room: string, chunk: Uint8Array, lines: number): void;
  /** A `3:` line from another node for `users` on this node. */
  deliverDirect(users: readonly string[], line: Uint8Array): void;
}
