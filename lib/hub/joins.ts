/**
 * Joining a room (`2:`): creating it when it does not exist, checking its password, and, in a
 * cluster, waiting for the bus to order the join among everyone else's before it takes effect.
 *
 * The rule this file keeps (docs/protocol.md, Rooms): the joiner's `2:` reply comes before any
 * `3:`, `4:` or `5:` of that room reaches it. A join takes effect in one synchronous step
 * ({@linkcode Joins.moveInto}): the session becomes a member and gets its `2:` together, so
 * nothing of the room can reach it in between. In a cluster that step happens when the bus
 * hands this node's own join event back, so every node applies the joins of a room in the same
 * order, and a `2:` lists everyone whose join the bus ordered earlier.
 *
 * @module
 */

import { encodeError, encodeLine } from "../protocol/codec.ts";
import { DEFAULT_MAX_ROOMS_PER_USER } from "../protocol/limits.ts";
import type { CheckOutcome, HubWork, StoredRoom } from "./ports.ts";
import { leaveRoom, type Room, type Session } from "./room.ts";
import type { HubState } from "./state.ts";
import type { Client, JoinArgs } from "./tickets.ts";

/** The hub's joins. Each method returns whether the join is finished (false: it waits). */
export class Joins {
  #state: HubState;
  #work: HubWork;
  /** Joins waiting for a room being created, by room name: their tickets. */
  #creating = new Map<string, number[]>();
  /** Rooms being created, by the user creating them: they count toward its share. */
  #creatingBy = new Map<string, number>();

  constructor(state: HubState, work: HubWork) {
    this.#state = state;
    this.#work = work;
  }

  /** A `2:` line. */
  join(join: JoinArgs): boolean {
    const { client, name } = join;
    const room = this.#state.rooms.get(name);
    if (room !== undefined) return this.#checkPassword(join, room);
    const waiting = this.#creating.get(name);
    if (waiting !== undefined) {
      waiting.push(this.#state.tickets.request(client, { kind: "await-room", join }));
      return false;
    }
    const { maxRooms, maxRoomsPerUser = DEFAULT_MAX_ROOMS_PER_USER } = this.#state.settings;
    const user = join.session.user;
    const mine = this.#state.rooms.madeBy(user) + (this.#creatingBy.get(user) ?? 0);
    if (this.#state.rooms.size + this.#creating.size >= maxRooms || mine >= maxRoomsPerUser) {
      client.peer.send(ROOM_LIMIT);
      return true;
    }
    this.#creating.set(name, []);
    this.#creatingBy.set(user, (this.#creatingBy.get(user) ?? 0) + 1);
    const ticket = this.#state.tickets.request(client, { kind: "create", join });
    const address = client.peer.remoteAddress ?? "";
    this.#work.storeRoom(ticket, name, join.password, address, user);
    return false;
  }

  /** The edge stored a new room (or found it stored already), or failed to. */
  roomStored(ticket: number, outcome: StoredRoom | null): void {
    const tickets = this.#state.tickets;
    const op = tickets.take(ticket);
    if (op?.kind !== "create") return;
    const { join } = op;
    const waiting = this.#creating.get(join.name) ?? [];
    this.#creating.delete(join.name);
    const user = join.session.user;
    const creating = (this.#creatingBy.get(user) ?? 1) - 1;
    if (creating > 0) this.#creatingBy.set(user, creating);
    else this.#creatingBy.delete(user);
    // An event from another node may have brought the room in while it was stored.
    const { rooms } = this.#state;
    const room = outcome === null ? undefined : rooms.get(join.name) ??
      rooms.add(
        join.name,
        join.nameBytes,
        outcome.record.passwordHash,
        outcome.record.maker ?? null,
      );
    if (tickets.current(ticket, join.client)) {
      if (room === undefined) {
        join.client.peer.send(SERVER_ERROR);
        tickets.done(join.client);
      } else if (outcome?.created && room.passwordHash === outcome.record.passwordHash) {
        tickets.finish(join.client, this.#enter(join.client, join.session, room));
      } else {
        // Made first elsewhere: joined as an existing room, password and all.
        tickets.finish(join.client, this.#checkPassword(join, room));
      }
    }
    // Joins that waited for this one go again: as joins of an existing room, or, if it failed,
    // from the start (someone else may be creating it by now).
    for (const waiter of waiting) {
      const wait = tickets.take(waiter);
      if (wait?.kind === "await-room" && tickets.current(waiter, wait.join.client)) {
        wait.join.client.pending = 0;
        tickets.finish(wait.join.client, this.join(wait.join));
      }
    }
  }

  /** The edge checked a room password. */
  roomPasswordChecked(ticket: number, ok: CheckOutcome): void {
    const tickets = this.#state.tickets;
    const op = tickets.take(ticket);
    if (op?.kind !== "room-password" || !tickets.current(ticket, op.client)) return;
    if (ok !== true) {
      // Not checked (busy) is not a wrong password: the connection does not count it as one.
      op.client.peer.send(ok === "busy" ? SERVER_ERROR : ROOM_PASSWORD);
      if (ok === false) op.client.peer.roomPasswordFailed?.(op.room.name);
      tickets.done(op.client);
    } else if (this.#state.rooms.get(op.room.name) !== op.room) {
      op.client.peer.send(SERVER_ERROR); // removed while the password was checked
      tickets.done(op.client);
    } else {
      tickets.finish(op.client, this.#enter(op.client, op.session, op.room));
    }
  }

  /** This node's own join came back from the bus: it takes effect now, in the bus's order. */
  ownJoinOrdered(session: Session, client: Client, name: string | null): void {
    const op = this.#state.tickets.of(client);
    if (op?.kind !== "join-echo" || op.session !== session || op.room.name !== name) return;
    this.#state.tickets.take(client.pending);
    if (this.#state.rooms.get(op.room.name) !== op.room) client.peer.send(SERVER_ERROR); // removed
    else this.moveInto(session, op.room);
    this.#state.tickets.done(client);
  }

  /** Leaves the old room (`5:` there), enters `room` (`4:` there), and replies `2:`. */
  moveInto(session: Session, room: Room): true {
    if (session.room !== room) {
      leaveRoom(session);
      room.broadcast(encodeLine("4", room.nameBytes, session.user), null);
      room.add(session);
      session.room = room;
    }
    room.used = true;
    session.peer.send(encodeLine("2", room.nameBytes, room.sortedMembers().join(",")));
    return true;
  }

  #checkPassword({ client, session, password }: JoinArgs, room: Room): boolean {
    // No password can match a public room, and no room password is empty: answered unhashed.
    if (room.passwordHash === null || password.length === 0) {
      const open = room.passwordHash === null && password.length === 0;
      if (open) return this.#enter(client, session, room);
      client.peer.send(ROOM_PASSWORD);
      return true;
    }
    const ticket = this.#state.tickets.request(client, {
      kind: "room-password",
      client,
      session,
      room,
    });
    const address = client.peer.remoteAddress ?? "";
    this.#work.checkRoomPassword(ticket, password, room.passwordHash, address);
    return false;
  }

  /** The password is right: the session moves into `room` (in a cluster, once the bus says). */
  #enter(client: Client, session: Session, room: Room): boolean {
    if (session.room === room || this.#state.cluster === null) return this.moveInto(session, room);
    this.#state.tickets.request(client, { kind: "join-echo", client, session, room });
    this.#state.cluster.joined(session.user, session.id, room.name, room.passwordHash);
    return false;
  }
}

const ROOM_PASSWORD = encodeError("2", "room-password");
const ROOM_LIMIT = encodeError("2", "room-limit");
const SERVER_ERROR = encodeError("2", "server-error");
