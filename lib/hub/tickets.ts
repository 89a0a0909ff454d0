/**
 * The hub's connections and their unfinished commands. A command that needs work from the edge
 * gets a ticket; the edge's answer names the ticket, and the answer counts only while the
 * ticket is still its connection's unfinished command (the connection may have closed, or its
 * session ended, meanwhile).
 *
 * @module
 */

import { Features } from "../protocol/v11.ts";
import type { Peer } from "./ports.ts";
import type { Room, Session } from "./room.ts";

/** A connection, with its session and its unfinished command. */
export interface Client {
  readonly peer: Peer;
  session: Session | null;
  /** The ticket of its unfinished command (0: none). */
  pending: number;
  /** Its v1.1 features: the peer's own, shared, so they outlive its logins. */
  readonly features: Features;
}

/** A join's arguments, kept while it waits. */
export interface JoinArgs {
  client: Client;
  session: Session;
  name: string;
  nameBytes: Uint8Array;
  password: Uint8Array;
}

/** An unfinished command. */
export type Pending =
  /** A login: its password being checked, or its claim being decided. */
  | { kind: "login" | "claim"; client: Client; user: string }
  /** A login whose session `id` waits for its resume token to be stored. */
  | { kind: "token"; client: Client; user: string; id: number }
  /** A join creating its room, or waiting for another join that creates it. */
  | { kind: "create" | "await-room"; join: JoinArgs }
  /** A join checking the room's password, or waiting for the bus to order it. */
  | { kind: "room-password" | "join-echo"; client: Client; session: Session; room: Room };

/**
 * Connections and tickets.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Tickets } from "./tickets.ts";
 * const tickets = new Tickets();
 * let done = 0;
 * const peer = { send() {}, sessionStarted() {}, sessionEnded() {}, commandDone: () => done++ };
 * const client = tickets.connect(peer);
 * const ticket = tickets.request(client, { kind: "login", client, user: "alice" });
 * assert.equal(tickets.current(ticket, client), true);
 * assert.equal(tickets.take(ticket)?.kind, "login");
 * tickets.done(client);
 * assert.equal(done, 1);
 * ```
 */
export class Tickets {
  /** Every connection, by its peer. */
  readonly clients: Map<Peer, Client> = new Map();
  #pending = new Map<number, Pending>();
  #next = 1;

  /** A new connection. */
  connect(peer: Peer): Client {
    const client: Client = {
      peer,
      session: null,
      pending: 0,
      features: peer.features ?? new Features(),
    };
    this.clients.set(peer, client);
    return client;
  }

  /** Records an unfinished command of `client` and returns its ticket. */
  request(client: Client, op: Pending): number {
    const ticket = this.#next++;
    this.#pending.set(ticket, op);
    client.pending = ticket;
    return ticket;
  }

  /** The unfinished command of `client`. */
  of(client: Client): Pending | undefined {
    return this.#pending.get(client.pending);
  }

  /** Removes and returns the command of `ticket`. */
  take(ticket: number): Pending | undefined {
    const op = this.#pending.get(ticket);
    this.#pending.delete(ticket);
    return op;
  }

  /** Whether `ticket` is still the unfinished command of a connected `client`. */
  current(ticket: number, client: Client): boolean {
    return client.pending === ticket && this.clients.get(client.peer) === client;
  }

  /** The client's command is finished: it may send the next. */
  done(client: Client): void {
    client.pending = 0;
    client.peer.commandDone();
  }

  /** Calls {@linkcode Tickets.done} when `finished` says the command is. */
  finish(client: Client, finished: boolean): void {
    if (finished) this.done(client);
  }

  /** The session ended: a join of it ends without a reply. */
  dropJoin(client: Client, session: Session): void {
    const op = this.#pending.get(client.pending);
    if (op !== undefined && joiningSession(op) === session) this.cancel(client);
  }

  /**
   * The client's unfinished command ends without a reply (its session or its connection went).
   * Work in flight still reports, and is ignored (a room being created is still made); only
   * the waits that nothing else would end are forgotten.
   */
  cancel(client: Client): void {
    if (client.pending === 0) return;
    const op = this.#pending.get(client.pending);
    if (op?.kind === "join-echo" || op?.kind === "await-room") this.#pending.delete(client.pending);
    this.done(client);
  }
}

/** The session an unfinished join belongs to (null: the command is a login). */
function joiningSession(op: Pending): Session | null {
  switch (op.kind) {
    case "login":
    case "claim":
    case "token":
      return null;
    case "create":
    case "await-room":
      return op.join.session;
    default:
      return op.session;
  }
}
