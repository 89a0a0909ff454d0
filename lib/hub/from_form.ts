/**
 * The `from` form of `3:` lines (docs/protocol.md, v1.1): `3:<room>:<sender>:<message>`, the
 * room empty for a direct message. A run of room messages is made in the v1 form, and in this
 * form only when a recipient asks for it; between nodes runs travel in this form, which holds
 * everything, and a node makes the v1 form from it for its own members (room names and
 * usernames hold no `:`, so the fields read back unambiguously).
 *
 * Lines are cut from shared slabs (`byte_slabs.ts`): they are made to be sent, not kept.
 *
 * @module
 */

import { lineBytes } from "../protocol/byte_slabs.ts";

const COLON = 0x3a;
const LF = 0x0a;
const THREE = 0x33;

/**
 * The `from` form of a run: `chunk` holds the run's lines in any form, `senders[i]` and
 * `bodies[2i]`..`bodies[2i+1]` are line i's sender and where its message lies in `chunk`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromRun } from "./from_form.ts";
 * const text = new TextEncoder();
 * const chunk = text.encode("3:hi\n3:yo\n");
 * const run = fromRun(text.encode("lobby"), chunk, [text.encode("ann"), text.encode("bo")], [2, 4, 7, 9]);
 * assert.equal(new TextDecoder().decode(run), "3:lobby:ann:hi\n3:lobby:bo:yo\n");
 * ```
 */
export function fromRun(
  room: Uint8Array,
  chunk: Uint8Array,
  senders: readonly Uint8Array[],
  bodies: readonly number[],
): Uint8Array {
  let size = 0;
  for (let i = 0; i < senders.length; i++) {
    size += 5 + room.length + senders[i].length + bodies[2 * i + 1] - bodies[2 * i];
  }
  const out = lineBytes(size);
  let at = 0;
  for (let i = 0; i < senders.length; i++) {
    at = writeFrom(out, at, room, senders[i], chunk.subarray(bodies[2 * i], bodies[2 * i + 1]));
  }
  return out;
}

/**
 * One direct message in the `from` form: `3::<sender>:<message>`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromDirect } from "./from_form.ts";
 * const text = new TextEncoder();
 * const line = fromDirect(text.encode("ann"), text.encode("hi"));
 * assert.equal(new TextDecoder().decode(line), "3::ann:hi\n");
 * ```
 */
export function fromDirect(sender: Uint8Array, body: Uint8Array): Uint8Array {
  const out = lineBytes(5 + sender.length + body.length);
  writeFrom(out, 0, NO_ROOM, sender, body);
  return out;
}

const NO_ROOM = new Uint8Array(0);

function writeFrom(
  out: Uint8Array,
  at: number,
  room: Uint8Array,
  sender: Uint8Array,
  body: Uint8Array,
): number {
  out[at++] = THREE;
  out[at++] = COLON;
  out.set(room, at);
  at += room.length;
  out[at++] = COLON;
  out.set(sender, at);
  at += sender.length;
  out[at++] = COLON;
  out.set(body, at);
  at += body.length;
  out[at++] = LF;
  return at;
}

/**
 * The v1 form of lines in the `from` form: `3:<message>`, or `3:<sender>:<message>` when
 * `stamp` (--stamp-sender).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { plainFromRun } from "./from_form.ts";
 * const run = new TextEncoder().encode("3:lobby:ann:a:b\n3::bo:yo\n");
 * assert.equal(new TextDecoder().decode(plainFromRun(run, false)), "3:a:b\n3:yo\n");
 * assert.equal(new TextDecoder().decode(plainFromRun(run, true)), "3:ann:a:b\n3:bo:yo\n");
 * ```
 */
export function plainFromRun(run: Uint8Array, stamp: boolean): Uint8Array {
  const out = lineBytes(run.length); // at most this long: the plain form drops fields
  let at = 0;
  let line = 0;
  while (line < run.length) {
    const roomEnd = run.indexOf(COLON, line + 2);
    const senderEnd = run.indexOf(COLON, roomEnd + 1);
    let end = run.indexOf(LF, senderEnd + 1);
    if (roomEnd === -1 || senderEnd === -1) break; // not a line of this form: nothing more
    if (end === -1) end = run.length - 1;
    out[at++] = THREE;
    out[at++] = COLON;
    const from = stamp ? roomEnd + 1 : senderEnd + 1;
    out.set(run.subarray(from, end + 1), at);
    at += end + 1 - from;
    line = end + 1;
  }
  return out.subarray(0, at);
}
