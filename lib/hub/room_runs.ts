/**
 * Batching of room messages: a run of `3:` lines to one room (with one sender left out, or
 * none), encoded back to back into one buffer and sent as one chunk to each recipient when the
 * current task ends. A client that writes many messages at once then costs one send per
 * recipient, not one per message, and one allocation per run, not one per message.
 *
 * @module
 */

import { messageSize, writeMessage } from "../protocol/codec.ts";
import type { Room, Session } from "./room.ts";

/** A run is sent once it holds this many bytes (and a new one starts). */
export const MAX_RUN_BYTES = 64 * 1024;

/** Where a finished run goes: the room, the bytes, how many lines, who is left out. */
export type RunSink = (
  room: Room,
  chunk: Uint8Array,
  lines: number,
  except: Session | null,
) => void;

/**
 * The pending run of room messages. Whoever sends anything else must call
 * {@linkcode RoomRuns.flush} first, which keeps every recipient's lines in the order made.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RoomRuns } from "./room_runs.ts";
 * import { Room } from "./room.ts";
 * const sent: string[] = [];
 * const runs = new RoomRuns(() => {}, (_room, chunk, lines) => {
 *   sent.push(`${lines}:${new TextDecoder().decode(chunk)}`);
 * });
 * const room = new Room("lobby", new TextEncoder().encode("lobby"), null);
 * runs.add(room, null, new TextEncoder().encode("hi"), null);
 * runs.add(room, null, new TextEncoder().encode("there"), null);
 * runs.flush();
 * assert.deepEqual(sent, ["2:3:hi\n3:there\n"]);
 * ```
 */
export class RoomRuns {
  #room: Room | null = null;
  #except: Session | null = null;
  #lines = 0;
  #bytes = 0;
  /** Scratch space of the pending run; copied out (exactly sized) when the run is sent. */
  #buffer = new Uint8Array(4096);
  #schedule: (task: () => void) => void;
  #sink: RunSink;

  /**
   * @param schedule runs a task once the current one ends (queueMicrotask in a server)
   * @param sink sends a finished run
   */
  constructor(schedule: (task: () => void) => void, sink: RunSink) {
    this.#schedule = schedule;
    this.#sink = sink;
  }

  /** Adds one message (stamped with `sender` when given) to the run for `room`. */
  add(room: Room, except: Session | null, body: Uint8Array, sender: Uint8Array | null): void {
    const size = messageSize(body, sender);
    if (this.#room !== room || this.#except !== except || this.#bytes + size > MAX_RUN_BYTES) {
      this.flush();
      this.#room = room;
      this.#except = except;
      this.#schedule(this.flush);
    }
    let buffer = this.#buffer;
    const at = this.#bytes;
    if (at + size > buffer.length) {
      const grown = new Uint8Array(Math.max(at + size, buffer.length * 2));
      grown.set(buffer.subarray(0, at));
      this.#buffer = buffer = grown;
    }
    this.#bytes = writeMessage(buffer, at, body, sender);
    this.#lines++;
  }

  /** Sends the pending run now, if there is one. */
  flush = (): void => {
    const room = this.#room;
    if (room === null) return;
    const chunk = this.#buffer.slice(0, this.#bytes);
    const lines = this.#lines;
    const except = this.#except;
    this.#room = null;
    this.#except = null;
    this.#lines = 0;
    this.#bytes = 0;
    if (this.#buffer.length > MAX_RUN_BYTES) this.#buffer = new Uint8Array(4096);
    this.#sink(room, chunk, lines, except);
  };
}
