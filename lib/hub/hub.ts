/**
 * The hub: sessions, rooms and routing. It is the one place that decides who receives what.
 *
 * It is a synchronous state machine. Commands come in from connections (already parsed by the
 * codec) and the outcomes of slow work come in as events ({@linkcode HubResults}); lines go out
 * through each connection's {@linkcode Peer}, and requests for work go out through
 * {@linkcode HubWork}. Nothing here awaits, so nothing can change between two steps of a
 * command, and output order holds by construction: every entry point but a room message first
 * sends the pending run of room messages ({@linkcode RoomRuns}), then its own lines.
 *
 * A command that needs work (a login, a join that creates a room or checks a password) leaves
 * its connection busy: {@linkcode Hub.handle} returns false, and the peer is told
 * {@linkcode Peer.commandDone} when the command is finished, so each connection's commands stay
 * in order.
 *
 * In a cluster the hub also gets a {@linkcode HubCluster}: it keeps a view of the sessions on
 * other nodes ({@linkcode ClusterView}), fed through its {@linkcode ClusterEvents} methods, and
 * applies this node's own joins when the bus hands them back, at the place the bus ordered them
 * among everyone else's: that is what puts a joiner's `2:` before any `4:` of that room.
 *
 * @module
 */

import { type Command, encodeError, encodeLine, LOGGED_OUT } from "../protocol/codec.ts";
import { DEFAULT_MAX_ROOMS, DEFAULT_MAX_TARGETS } from "../protocol/limits.ts";
import { whyLine } from "../protocol/v11.ts";
import { ClusterSide } from "./cluster_events.ts";
import { Joins } from "./joins.ts";
import { Messages } from "./messages.ts";
import { LoginSteps } from "./login_steps.ts";
import { logoutAll, removeRoom } from "./operator.ts";
import type {
  CheckOutcome,
  ClusterEvents,
  HubCluster,
  HubResults,
  HubWork,
  Peer,
  RoomRecord,
  StoredRoom,
} from "./ports.ts";
import { leaveRoom, Session } from "./room.ts";
import { HubState } from "./state.ts";
import type { Client } from "./tickets.ts";

export type * from "./ports.ts";

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Makes the edge that does the hub's slow work, given where to report its outcomes. */
  work: (results: HubResults) => HubWork;
  /** Deliver messages as `3:<sender>:<message>`. */
  stampSender?: boolean;
  /** The most rooms there may be; creating one more gets `9:2:room-limit`. */
  maxRooms?: number;
  /** The most rooms one user may have made; creating one more gets `9:2:room-limit`. */
  maxRoomsPerUser?: number;
  /** The most distinct targets of a `3:2`; more gets `9:3:too-many-targets`. */
  maxTargets?: number;
  /** The cluster this node belongs to; without it the hub is a whole server by itself. */
  cluster?: HubCluster;
  /** Runs a task when the current one ends: sends a run of room messages (queueMicrotask). */
  schedule?: (task: () => void) => void;
}

/**
 * The state machine behind the protocol.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, type HubResults, type Peer } from "./hub.ts";
 * import { parseCommand } from "../protocol/codec.ts";
 * const checks: number[] = [];
 * const edge: { results?: HubResults } = {};
 * const hub = new Hub({
 *   work: (results) => {
 *     edge.results = results;
 *     return {
 *       checkLogin: (ticket) => checks.push(ticket),
 *       claim() {},
 *       storeRoom() {},
 *       checkRoomPassword() {},
 *     };
 *   },
 * });
 * const got: string[] = [];
 * const peer: Peer = {
 *   send: (line) => got.push(new TextDecoder().decode(line)),
 *   sessionStarted() {},
 *   sessionEnded() {},
 *   commandDone: () => got.push("(done)"),
 * };
 * hub.connect(peer);
 * const login = parseCommand(new TextEncoder().encode("0:alice:pw"));
 * assert.ok(login !== null);
 * assert.equal(hub.handle(peer, login), false); // it waits for the password check
 * edge.results?.loginChecked(checks[0], true); // the edge says the password matched
 * assert.deepEqual(got, ["0:1\n", "(done)"]);
 * ```
 */
export class Hub implements HubResults {
  readonly stampSender: boolean;
  /** What the cluster link tells this hub (see lib/cluster/). */
  readonly clusterEvents: ClusterEvents;
  #state: HubState;
  #work: HubWork;
  #messages: Messages;
  #joins: Joins;
  #logins: LoginSteps;

  constructor(options: HubOptions) {
    this.stampSender = options.stampSender ?? false;
    const state = this.#state = new HubState(options.cluster ?? null, {
      stampSender: this.stampSender,
      maxRooms: options.maxRooms ?? DEFAULT_MAX_ROOMS,
      maxRoomsPerUser: options.maxRoomsPerUser,
      maxTargets: options.maxTargets ?? DEFAULT_MAX_TARGETS,
    });
    this.#messages = new Messages(state, options.schedule ?? queueMicrotask);
    this.clusterEvents = new ClusterSide(state, this.#messages, {
      replace: (session) => this.#kick(session, "replaced"),
      ownJoinOrdered: (user, fence, room) => {
        const session = state.sessions.get(user);
        const client = session && state.tickets.clients.get(session.peer);
        if (session?.id === fence && client) this.#joins.ownJoinOrdered(session, client, room);
      },
    });
    this.#work = options.work(this);
    this.#joins = new Joins(state, this.#work);
    this.#logins = new LoginSteps(state, this.#work, {
      start: (client, user, id, token) => this.#startSession(client, user, id, token),
      fail: (client, outcome, user) => this.#loginFailed(client, outcome, user),
    });
  }

  /** How many connections the hub knows. */
  get connectionCount(): number {
    return this.#state.tickets.clients.size;
  }

  /** How many sessions are logged in on this node. */
  get sessionCount(): number {
    return this.#state.sessions.size;
  }

  /** How many sessions this node knows of on other nodes. */
  get remoteSessionCount(): number {
    return this.#state.view.size;
  }

  /** How many `3:` messages have been handed to recipients (one per recipient). */
  get deliveries(): number {
    return this.#messages.deliveries;
  }

  /** How many rooms exist. */
  get roomCount(): number {
    return this.#state.rooms.size;
  }

  /** Whether a room of that name exists. */
  hasRoom(name: string): boolean {
    return this.#state.rooms.get(name) !== undefined;
  }

  /**
   * The rooms used since the last call (joined, or with members here now), for the server to
   * record in the store.
   */
  takeUsedRooms(): string[] {
    return this.#state.rooms.takeUsed();
  }

  /** Adds rooms read from the store (at start, or when another process created them). */
  loadRooms(records: Iterable<RoomRecord>): void {
    for (const record of records) this.#state.rooms.load(record);
  }

  /** Sends the pending run of room messages now (it also goes by itself when the task ends). */
  flush(): void {
    this.#messages.flush();
  }

  /** A new connection. */
  connect(peer: Peer): void {
    this.#state.tickets.connect(peer);
  }

  /** A connection closed: its session ends and its room is told. */
  disconnect(peer: Peer): void {
    this.flush();
    const client = this.#state.tickets.clients.get(peer);
    if (client === undefined) return;
    this.#endSession(client);
    this.#state.tickets.cancel(client);
    this.#state.tickets.clients.delete(peer);
  }

  /**
   * Handles one command from `peer`. Returns true when it is finished, false when it waits for
   * work: then the peer hears {@linkcode Peer.commandDone}, and must not send another command
   * before.
   */
  handle(peer: Peer, command: Command): boolean {
    if (command.kind !== "say") this.flush();
    const client = this.#state.tickets.clients.get(peer);
    if (client === undefined) return true; // closed already
    if (client.pending !== 0) throw new Error("a command is already pending on this connection");
    switch (command.kind) {
      case "login":
      case "resume":
        return this.#login(client, command);
      case "bad-login":
      case "bad-resume":
        this.#endSession(client);
        return this.#loginFailed(client);
      case "features": // at any time, logged in or not
        peer.send(client.features.ask(command.names));
        return true;
    }
    if (command.kind === "invalid" && command.code === "8") {
      peer.send(encodeError("8", "malformed"));
      return true;
    }
    const session = client.session;
    if (session === null) {
      // Any 1, 2 or 3 line before a login, well-formed or not, is answered "not logged in".
      peer.send(command.kind === "invalid" && command.code === "?" ? MALFORMED : LOGGED_OUT);
      return true;
    }
    switch (command.kind) {
      case "invalid":
        peer.send(encodeError(command.code, command.reason));
        return true;
      case "rooms":
        peer.send(this.#state.rooms.list());
        return true;
      case "join":
        return this.#joins.join({
          client,
          session,
          name: command.room,
          nameBytes: command.roomBytes.slice(), // own copies: the caller's point into a read buffer
          password: command.password.slice(),
        });
      case "say":
        this.#messages.say(session, command.echo, command.body);
        return true;
      case "tell":
        this.#messages.tell(session, command.targets, command.body);
        return true;
    }
  }

  /**
   * Ends `peer`'s session as if it had logged out (its room is told, here and on other nodes)
   * and tells it `0:-1`; the server's drain does this before closing each connection.
   */
  logout(peer: Peer): void {
    this.flush();
    const client = this.#state.tickets.clients.get(peer);
    if (client?.session == null) return;
    this.#endSession(client);
    peer.send(LOGGED_OUT);
  }

  /** The operator removed `user`: its session (if any) ends with `0:-1`. */
  removeUser(user: string): void {
    this.flush();
    const session = this.#state.sessions.get(user);
    if (session !== undefined) this.#kick(session, "removed");
  }

  /**
   * The operator removed a room. Its members are moved out of it, each told with `5:` lines (for
   * every member, itself included), and it no longer appears in the room list.
   */
  removeRoom(name: string): void {
    this.flush();
    removeRoom(this.#state, name);
  }

  /** Ends every session with `0:-1` (the server is stopping). */
  logoutAll(): void {
    this.flush();
    logoutAll(this.#state);
  }

  // ---- Results of the edge's work (HubResults) ----

  /** A resume token was checked: the same as a password (a refused token is a failed login). */
  resumeChecked(ticket: number, ok: CheckOutcome): void {
    this.loginChecked(ticket, ok);
  }

  loginChecked(ticket: number, ok: CheckOutcome): void {
    this.flush();
    const tickets = this.#state.tickets;
    const op = tickets.take(ticket);
    if (op?.kind !== "login" || !tickets.current(ticket, op.client)) return;
    const { client, user } = op;
    if (ok !== true) return tickets.finish(client, this.#loginFailed(client, ok, user));
    tickets.finish(client, this.#logins.passed(client, user));
  }

  claimDecided(ticket: number, fence: number | null): void {
    this.flush();
    this.#logins.claimDecided(ticket, fence);
  }

  tokenIssued(ticket: number, token: string | null): void {
    this.flush();
    this.#logins.tokenIssued(ticket, token);
  }

  roomStored(ticket: number, outcome: StoredRoom | null): void {
    this.flush();
    this.#joins.roomStored(ticket, outcome);
  }

  roomPasswordChecked(ticket: number, ok: CheckOutcome): void {
    this.flush();
    this.#joins.roomPasswordChecked(ticket, ok);
  }

  // ---- Sessions ----

  /** A `0:` (password) or `6:` (resume token) login: checked by the edge, then as one. */
  #login(client: Client, command: Extract<Command, { kind: "login" | "resume" }>): boolean {
    this.#endSession(client);
    const user = command.username;
    const ticket = this.#state.tickets.request(client, { kind: "login", client, user });
    const address = client.peer.remoteAddress ?? "";
    if (command.kind === "login") {
      this.#work.checkLogin(ticket, user, command.password.slice(), address);
    } else if (this.#work.checkResume !== undefined) {
      this.#work.checkResume(ticket, user, command.token, address);
    } else {
      queueMicrotask(() => this.resumeChecked(ticket, false)); // no tokens: none is accepted
    }
    return false;
  }

  /** A login failed (or, "busy", could not be checked: `7:busy` first with `why`): `0:-1`. */
  #loginFailed(client: Client, outcome: false | "busy" = false, user?: string): true {
    const peer = client.peer;
    if (outcome === "busy" && client.features.why) peer.send(whyLine("busy"));
    peer.send(LOGGED_OUT);
    peer.sessionEnded(outcome === "busy" ? "login-busy" : "login-failed", user);
    return true;
  }

  #startSession(client: Client, user: string, id: number, token?: string): true {
    const previous = this.#state.sessions.get(user);
    if (previous !== undefined) this.#kick(previous, "replaced");
    const session = new Session(id, user, client.peer, client.features);
    client.session = session;
    this.#state.sessions.set(user, session);
    client.peer.send(encodeLine("0", String(id)));
    if (token !== undefined && client.features.resume) client.peer.send(encodeLine("6", token));
    client.peer.sessionStarted(user, id);
    return true;
  }

  /** Ends a session from outside its connection: `0:-1`, and the connection stays open. */
  #kick(session: Session, reason: "replaced" | "removed"): void {
    const client = this.#state.tickets.clients.get(session.peer);
    if (client !== undefined) this.#endSession(client);
    if (session.features.why) session.peer.send(whyLine(reason));
    session.peer.send(LOGGED_OUT);
    session.peer.sessionEnded(reason);
  }

  /** Ends the client's session, if it has one: it leaves its room, and its join is dropped. */
  #endSession(client: Client): void {
    const session = client.session;
    if (session === null) return;
    leaveRoom(session);
    client.session = null;
    this.#state.sessions.delete(session.user);
    this.#state.cluster?.ended(session.user, session.id);
    this.#state.tickets.dropJoin(client, session);
  }
}

const MALFORMED = encodeError("?", "malformed");
