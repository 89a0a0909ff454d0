/**
 * Batching of room messages: a run of `3:` lines to one room (with one sender left out, or
 * none), encoded back to back into one buffer and sent as one chunk to each recipient when the
 * current task ends. A client that writes many messages at once then costs one send per
 * recipient, not one per message, and one allocation per run, not one per message. The v1.1
 * `from` form of a run is made from the same buffer, once, and only when a recipient wants it.
 *
 * @module
 */

import { lineBytes } from "../protocol/byte_slabs.ts";
import { messageSize, writeMessage } from "../protocol/codec.ts";
import { fromRun } from "./from_form.ts";
import type { Room, RunForms, Session } from "./room.ts";

/** A run is sent once it holds this many bytes (and a new one starts). */
export const MAX_RUN_BYTES = 64 * 1024;

/** Where a finished run goes: the room, its forms, how many lines, who is left out. */
export type RunSink = (
  room: Room,
  forms: RunForms,
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
 * const runs = new RoomRuns(() => {}, (_room, forms, lines) => {
 *   sent.push(`${lines}:${new TextDecoder().decode(forms.plain())}`);
 *   sent.push(new TextDecoder().decode(forms.from()));
 * });
 * const room = new Room("lobby", new TextEncoder().encode("lobby"), null);
 * const ann = new TextEncoder().encode("ann");
 * runs.add(room, null, new TextEncoder().encode("hi"), ann, false);
 * runs.add(room, null, new TextEncoder().encode("there"), ann, false);
 * runs.flush();
 * assert.deepEqual(sent, ["2:3:hi\n3:there\n", "3:lobby:ann:hi\n3:lobby:ann:there\n"]);
 * ```
 */
export class RoomRuns {
  #room: Room | null = null;
  #except: Session | null = null;
  #lines = 0;
  #bytes = 0;
  /** Scratch space of the pending run; copied out (exactly sized, to a slab) when it is sent. */
  #buffer = new Uint8Array(4096);
  /** Each line's sender, and where its message lies in the buffer: for the `from` form. */
  #senders: Uint8Array[] = [];
  #bodies: number[] = [];
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

  /** Adds one message of `sender` (stamped with it when `stamp`) to the run for `room`. */
  add(
    room: Room,
    except: Session | null,
    body: Uint8Array,
    sender: Uint8Array,
    stamp: boolean,
  ): void {
    const stamped = stamp ? sender : null;
    const size = messageSize(body, stamped);
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
    this.#bytes = writeMessage(buffer, at, body, stamped);
    this.#lines++;
    this.#senders.push(sender);
    this.#bodies.push(this.#bytes - 1 - body.length, this.#bytes - 1);
  }

  /** Sends the pending run now, if there is one. */
  flush = (): void => {
    const room = this.#room;
    if (room === null) return;
    const chunk = lineBytes(this.#bytes);
    chunk.set(this.#buffer.subarray(0, this.#bytes));
    const lines = this.#lines;
    const except = this.#except;
    const senders = this.#senders;
    const bodies = this.#bodies;
    this.#senders = [];
    this.#bodies = [];
    let from: Uint8Array | null = null;
    const forms: RunForms = {
      plain: () => chunk,
      from: () => from ??= fromRun(room.nameBytes, chunk, senders, bodies),
    };
    this.#room = null;
    this.#except = null;
    this.#lines = 0;
    this.#bytes = 0;
    if (this.#buffer.length > MAX_RUN_BYTES) this.#buffer = new Uint8Array(4096);
    this.#sink(room, forms, lines, except);
  };
}
