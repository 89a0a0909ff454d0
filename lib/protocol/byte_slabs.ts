/**
 * Byte arrays for lines on their way out, cut from shared slabs instead of allocated one by one.
 *
 * In Deno every `new Uint8Array(n)` gets a backing store of its own from the allocator, which
 * costs far more than the bytes of a short line: about 1.3 µs for a 67-byte line, against
 * 0.05 µs for a view cut from a slab (`bench/alloc_cost.ts`). A direct message made one such
 * array per message.
 *
 * Nothing is handed out twice: a slab that is full is left to the garbage collector (the views
 * still in use keep it alive) for a new one, so no view ever changes under its holder. The price
 * is that one live view keeps its whole slab alive, so this is for bytes that live briefly: a
 * line until the sockets take it, a batch until its write is done.
 *
 * @module
 */

/** The size of one slab. */
export const SLAB_BYTES = 64 * 1024;

/** Larger requests get an array of their own: they would leave too much of a slab unused. */
const LARGEST_FROM_SLAB = SLAB_BYTES / 4;

let slab: Uint8Array | null = null;
let used = 0;

/**
 * `size` fresh bytes (zeroed or not: the caller writes all of them), from the current slab when
 * they fit.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { slabBytes } from "./byte_slabs.ts";
 * const a = slabBytes(5);
 * const b = slabBytes(5);
 * a.set([1, 2, 3, 4, 5]);
 * b.set([6, 7, 8, 9, 10]);
 * assert.deepEqual([...a], [1, 2, 3, 4, 5]); // views never overlap
 * assert.equal(a.buffer, b.buffer); // one backing store for both
 * ```
 */
export function slabBytes(size: number): Uint8Array {
  if (size > LARGEST_FROM_SLAB) return new Uint8Array(size);
  if (slab === null || used + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const bytes = slab.subarray(used, used + size);
  used += size;
  return bytes;
}
