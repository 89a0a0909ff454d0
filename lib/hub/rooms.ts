/**
 * The room registry: every room by name, how many rooms each user made, which rooms were used
 * lately, and the `1:` room list, cached until a room comes or goes.
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
 * rooms.load({ name: "lobby", passwordHash: null, maker: "alice" });
 * assert.equal(new TextDecoder().decode(rooms.list()), "1:lobby:zoo\n");
 * assert.equal(rooms.madeBy("alice"), 1);
 * ```
 */
export class Rooms {
  #rooms = new Map<string, Room>();
  /** The public rooms in byte order of their names; null until the list is asked for. */
  #listed: Room[] | null = null;
  /** How many rooms each user made (rooms without a maker are not counted). */
  #made = new Map<string, number>();

  /** How many rooms exist. */
  get size(): number {
    return this.#rooms.size;
  }

  /** The room of that name. */
  get(name: string): Room | undefined {
    return this.#rooms.get(name);
  }

  /** Adds a new room, made by `maker` (null: by no user), and returns it. */
  add(
    name: string,
    nameBytes: Uint8Array,
    passwordHash: string | null,
    maker: string | null = null,
  ): Room {
    const room = new Room(name, nameBytes, passwordHash, maker);
    this.#rooms.set(name, room);
    if (maker !== null) this.#made.set(maker, this.madeBy(maker) + 1);
    this.#listed = null;
    return room;
  }

  /** Adds a room read from the store, unless one of that name exists. Its name is not checked. */
  load(record: RoomRecord): void {
    if (!this.#rooms.has(record.name)) {
      this.add(record.name, encoder.encode(record.name), record.passwordHash, record.maker ?? null);
    }
  }

  /** Removes the room of that name. */
  remove(name: string): void {
    const room = this.#rooms.get(name);
    if (room === undefined) return;
    this.#rooms.delete(name);
    this.#listed = null;
    if (room.maker === null) return;
    const left = this.madeBy(room.maker) - 1;
    if (left > 0) this.#made.set(room.maker, left);
    else this.#made.delete(room.maker);
  }

  /** How many of the rooms `user` made. */
  madeBy(user: string): number {
    return this.#made.get(user) ?? 0;
  }

  /**
   * The rooms used since the last call: joined meanwhile, or with members on this node now.
   * The server records their use in the store now and then (--remove-idle-rooms reads it).
   */
  takeUsed(): string[] {
    const used: string[] = [];
    for (const room of this.#rooms.values()) {
      if (room.used || room.members.size > 0) used.push(room.name);
      room.used = false;
    }
    return used;
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
