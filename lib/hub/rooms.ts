/**
 * The room registry: every room by name, and the `1:` room list, cached until a room comes or
 * goes.
 *
 * @module
 */

import { compareBytes, encodeRoomList } from "../protocol/codec.ts";
import type { RoomRecord } from "./ports.ts";
import { Room } from "./room.ts";

const encoder = new TextEncoder();

/**
 * The rooms of a hub.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rooms } from "./rooms.ts";
 * const rooms = new Rooms();
 * rooms.load({ name: "zoo", passwordHash: null });
 * rooms.load({ name: "attic", passwordHash: "hash" }); // has a password: not listed
 * rooms.load({ name: "lobby", passwordHash: null });
 * assert.equal(new TextDecoder().decode(rooms.list()), "1:lobby:zoo\n");
 * ```
 */
export class Rooms {
  #rooms = new Map<string, Room>();
  /** The public rooms in byte order of their names; null until the list is asked for. */
  #listed: Room[] | null = null;

  /** How many rooms exist. */
  get size(): number {
    return this.#rooms.size;
  }

  /** The room of that name. */
  get(name: string): Room | undefined {
    return this.#rooms.get(name);
  }

  /** Adds a new room and returns it. */
  add(name: string, nameBytes: Uint8Array, passwordHash: string | null): Room {
    const room = new Room(name, nameBytes, passwordHash);
    this.#rooms.set(name, room);
    this.#listed = null;
    return room;
  }

  /** Adds a room read from the store, unless one of that name exists. */
  load(record: RoomRecord): void {
    if (!this.#rooms.has(record.name)) {
      this.add(record.name, encoder.encode(record.name), record.passwordHash);
    }
  }

  /** Removes the room of that name. */
  remove(name: string): void {
    if (this.#rooms.delete(name)) this.#listed = null;
  }

  /** Empties every room (the server is stopping). */
  clearMembers(): void {
    for (const room of this.#rooms.values()) room.clear();
  }

  /** The `1:` reply: public rooms with their members. */
  list(): Uint8Array {
    // Only public rooms are listed (docs/protocol.md: `1:` lists public rooms; a room with a
    // password is not one).
    this.#listed ??= [...this.#rooms.values()]
      .filter((room) => room.passwordHash === null)
      .sort((a, b) => compareBytes(a.nameBytes, b.nameBytes));
    return encodeRoomList(
      this.#listed.map((room) => ({ nameBytes: room.nameBytes, members: room.sortedMembers() })),
    );
  }
}
