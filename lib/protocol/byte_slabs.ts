/**
 * Byte arrays for lines on their way out, cut from shared slabs instead of allocated one by one.
 *
 * In Deno every `new Uint8Array(n)` gets a backing store of its own from the allocator, which
 * costs far more than the bytes of a short line: about 1 µs for a 67-byte line, against 0.2 µs
 * for a view cut from a slab (`bench/alloc_cost.ts`). A direct message made one such array per
 * message.
 *
 * Nothing is handed out twice: a slab that is full is left to the garbage collector (the views
 * still in use keep it alive) for a new one, so no view ever changes under its holder. The price
 * is that one live view keeps its whole slab alive, so this is for bytes that live briefly: a
 * line until the sockets take it, a batch until its write is done.
 *
 * @module
 */

/**
 * Fresh byte arrays cut from slabs of one size; a request larger than `largestBytes` gets an
 * array of its own.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteSlabs } from "./byte_slabs.ts";
 * const slabs = new ByteSlabs(1024, 256);
 * const a = slabs.take(5);
 * const b = slabs.take(5);
 * a.set([1, 2, 3, 4, 5]);
 * b.set([6, 7, 8, 9, 10]);
 * assert.deepEqual([...a], [1, 2, 3, 4, 5]); // views never overlap
 * assert.equal(a.buffer, b.buffer); // one backing store for both
 * assert.notEqual(slabs.take(300).buffer, a.buffer); // over 256 bytes: an array of its own
 * ```
 */
export class ByteSlabs {
  readonly #slabBytes: number;
  readonly #largestBytes: number;
  #slab: Uint8Array | null = null;
  #used = 0;

  /**
   * @param slabBytes the size of each slab
   * @param largestBytes the largest request cut from a slab (default: a quarter of one)
   */
  constructor(slabBytes: number, largestBytes = slabBytes / 4) {
    this.#slabBytes = slabBytes;
    this.#largestBytes = Math.min(largestBytes, slabBytes);
  }

  /** `size` bytes not handed out before (zeroed or not: the caller writes all of them). */
  take(size: number): Uint8Array {
    if (size > this.#largestBytes) return new Uint8Array(size);
    if (this.#slab === null || this.#used + size > this.#slabBytes) {
      this.#slab = new Uint8Array(this.#slabBytes);
      this.#used = 0;
    }
    const bytes = this.#slab.subarray(this.#used, this.#used + size);
    this.#used += size;
    return bytes;
  }
}

/** Where encoded lines come from: a few lines' worth of slab is what a queue holds on to. */
const lineSlabs = new ByteSlabs(64 * 1024);

/**
 * `size` fresh bytes for an encoded line, from the shared line slabs.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { lineBytes } from "./byte_slabs.ts";
 * assert.equal(lineBytes(5).length, 5);
 * ```
 */
export function lineBytes(size: number): Uint8Array {
  return lineSlabs.take(size);
}
