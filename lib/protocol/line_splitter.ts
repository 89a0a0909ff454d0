/**
 * A bounded splitter that turns a stream of byte chunks into protocol lines.
 *
 * Lines that lie wholly inside one chunk are returned as views into that chunk (no copy); only a
 * line that spans chunks is assembled in a carry buffer, and that buffer never grows past the
 * line limit. A CR just before the LF is dropped. The limit counts every byte before the LF, a CR
 * included.
 *
 * @module
 */

const LF = 0x0a;
const CR = 0x0d;

/** Returned by {@linkcode LineSplitter.next} when a line passes the limit. */
export const LINE_TOO_LONG: unique symbol = Symbol("line too long");

/** What {@linkcode LineSplitter.next} returns: a line, the end of the chunk, or an overflow. */
export type SplitResult = Uint8Array | null | typeof LINE_TOO_LONG;

/**
 * Splits byte chunks into lines, pull style, so the caller can pause between lines (for example
 * while a login is being checked) without the splitter buffering ahead.
 *
 * The returned line views the chunk given to {@linkcode LineSplitter.push}; it stays valid until
 * the next `push`, so the caller must be done with it before reusing its read buffer.
 *
 * @example Usage
 * ```ts
 * import { LineSplitter } from "./line_splitter.ts";
 * const splitter = new LineSplitter(1024);
 * splitter.push(new TextEncoder().encode("0:alice:pw\r\n2:lo"));
 * splitter.next(); // bytes of "0:alice:pw"
 * splitter.next(); // null: "2:lo" waits for the rest
 * splitter.push(new TextEncoder().encode("bby\n"));
 * splitter.next(); // bytes of "2:lobby"
 * ```
 */
export class LineSplitter {
  readonly maxLineBytes: number;
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #carry: Uint8Array | null = null;
  #carryLength = 0;
  #overflowed = false;

  /** @param maxLineBytes the most bytes a line may hold before its LF. */
  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Bytes held from an unfinished line (what a peer that never sends LF costs). */
  get bufferedBytes(): number {
    return this.#carryLength;
  }

  /** Hands the splitter the next chunk; call {@linkcode next} until it returns `null`. */
  push(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#pos = 0;
  }

  /**
   * The next complete line without its LF (and without a CR just before it), `null` when the
   * chunk holds no further complete line, or {@linkcode LINE_TOO_LONG} once the limit is passed
   * (after which the splitter only ever returns `LINE_TOO_LONG`).
   */
  next(): SplitResult {
    if (this.#overflowed) return LINE_TOO_LONG;
    const chunk = this.#chunk;
    const start = this.#pos;
    if (start >= chunk.length) return null;
    const lf = chunk.indexOf(LF, start);
    if (lf === -1) {
      this.#pos = chunk.length;
      return this.#hold(chunk.subarray(start));
    }
    this.#pos = lf + 1;
    let line: Uint8Array;
    if (this.#carryLength === 0) {
      if (lf - start > this.maxLineBytes) return this.#overflow();
      line = chunk.subarray(start, lf);
    } else {
      const total = this.#carryLength + (lf - start);
      if (total > this.maxLineBytes) return this.#overflow();
      line = new Uint8Array(total);
      line.set(this.#carry!.subarray(0, this.#carryLength));
      line.set(chunk.subarray(start, lf), this.#carryLength);
      this.#carry = null;
      this.#carryLength = 0;
    }
    const end = line.length;
    return end > 0 && line[end - 1] === CR ? line.subarray(0, end - 1) : line;
  }

  #hold(tail: Uint8Array): SplitResult {
    const total = this.#carryLength + tail.length;
    if (total > this.maxLineBytes) return this.#overflow();
    if (this.#carry === null || this.#carry.length < total) {
      // Grow geometrically, but never past the limit: the limit bounds what a peer can make us hold.
      const size = Math.min(this.maxLineBytes, Math.max(total, 2 * (this.#carry?.length ?? 64)));
      const grown = new Uint8Array(size);
      if (this.#carry) grown.set(this.#carry.subarray(0, this.#carryLength));
      this.#carry = grown;
    }
    this.#carry.set(tail, this.#carryLength);
    this.#carryLength = total;
    return null;
  }

  #overflow(): typeof LINE_TOO_LONG {
    this.#overflowed = true;
    this.#carry = null;
    this.#carryLength = 0;
    return LINE_TOO_LONG;
  }
}
