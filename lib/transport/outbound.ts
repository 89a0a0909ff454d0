/**
 * A connection's outbound queue: lines wait here until the socket takes them.
 *
 * Lines queued in one turn of the event loop go out in one write (copied into one buffer when
 * there are several), which is what makes fan-out cheap; while the server is busy, lines queued
 * within a linger go out together too (write_linger.ts). The queue is bounded in bytes: a
 * recipient that stops reading passes the bound and is dropped, instead of holding memory and
 * slowing everyone else.
 *
 * @module
 */

import { ByteSlabs } from "../protocol/byte_slabs.ts";
import { socketTurns } from "./io_turns.ts";
import { NO_LINGER, type WriteLinger } from "./write_linger.ts";

/** The most bytes gathered into one write. */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * Where batches of several chunks are gathered, shared by every queue: no write in flight sees its
 * batch change, and no idle queue holds a buffer. A fan-out batch is often tens of KiB, so the
 * slabs are as large as a batch may be.
 */
const batchSlabs = new ByteSlabs(MAX_BATCH_BYTES, MAX_BATCH_BYTES);

/** Where the queue writes: a `Deno.Conn` fits. */
export interface Writer {
  /** Writes some or all of `bytes`, resolving to how many were written. */
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * A bounded FIFO of encoded lines with a single writer loop.
 *
 * @example Usage
 * ```ts
 * import { OutboundQueue } from "./outbound.ts";
 * const sink = { write: (b: Uint8Array) => Promise.resolve(b.length) };
 * const queue = new OutboundQueue(sink, 4 << 20, (e) => console.error(e));
 * queue.push(new TextEncoder().encode("3:hi\n")); // true: queued
 * await queue.drained();
 * ```
 */
export class OutboundQueue {
  /** The byte bound; {@linkcode push} refuses a line that would pass it. */
  readonly limitBytes: number;
  #writer: Writer;
  #onError: (error: unknown) => void;
  #chunks: Uint8Array[] = [];
  #head = 0;
  #pendingBytes = 0;
  #writing = false;
  #closed = false;
  #linger: WriteLinger;
  /** When the last write started (only kept when the queue may linger). */
  #lastWriteAt = -Infinity;
  /** Who waits in {@linkcode drained} (made only when someone does: most queues never need it). */
  #idle: (() => void)[] | null = null;

  /**
   * @param writer the socket
   * @param limitBytes how many bytes may wait before {@linkcode push} refuses
   * @param onError called once if a write fails (the peer went away); the queue then stops
   * @param linger when writes wait to gather more lines (default: never)
   */
  constructor(
    writer: Writer,
    limitBytes: number,
    onError: (error: unknown) => void,
    linger: WriteLinger = NO_LINGER,
  ) {
    this.#writer = writer;
    this.limitBytes = limitBytes;
    this.#onError = onError;
    this.#linger = linger;
  }

  /** Bytes queued and not yet written. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Queues `line`. Returns false, queuing nothing, if that would pass the byte bound (the
   * caller drops the connection) or the queue is closed. With `force` the bound is passed:
   * for the one short line that tells a dropped client why.
   */
  push(line: Uint8Array, force = false): boolean {
    if (this.#closed) return false;
    if (!force && this.#pendingBytes + line.length > this.limitBytes) return false;
    this.#chunks.push(line);
    this.#pendingBytes += line.length;
    if (!this.#writing) {
      this.#writing = true;
      // Start on the next microtask, so every line queued in this turn shares the first write.
      // One microtask serves every queue that became busy meanwhile.
      OutboundQueue.#due.push(this);
      if (OutboundQueue.#due.length === 1) queueMicrotask(OutboundQueue.#startDue);
    }
    return true;
  }

  /** Queues that were pushed to while idle, waiting for the microtask that starts their writes. */
  static #due: OutboundQueue[] = [];

  static #startDue = (): void => {
    const due = OutboundQueue.#due;
    OutboundQueue.#due = [];
    for (let i = 0; i < due.length; i++) due[i].#writeNext();
  };

  /** Resolves when everything queued so far is written (or the queue closed). */
  drained(): Promise<void> {
    if (!this.#writing || this.#closed) return Promise.resolve();
    return new Promise((resolve) => (this.#idle ??= []).push(resolve));
  }

  /** Drops what is queued and refuses further lines. */
  close(): void {
    this.#closed = true;
    this.#chunks = [];
    this.#head = 0;
    this.#pendingBytes = 0;
    this.#settle();
  }

  #settle(): void {
    const idle = this.#idle;
    if (idle === null) return;
    this.#idle = null;
    for (const resolve of idle) resolve();
  }

  #takeBatch(): Uint8Array {
    const chunks = this.#chunks;
    const first = chunks[this.#head];
    if (this.#head + 1 === chunks.length || first.length >= MAX_BATCH_BYTES) {
      this.#head++;
      return first;
    }
    let size = 0;
    let end = this.#head;
    while (end < chunks.length && size + chunks[end].length <= MAX_BATCH_BYTES) {
      size += chunks[end].length;
      end++;
    }
    const batch = batchSlabs.take(size);
    let at = 0;
    for (let i = this.#head; i < end; i++) {
      batch.set(chunks[i], at);
      at += chunks[i].length;
    }
    this.#head = end;
    return batch;
  }

  /**
   * The write loop, without an async function: takes the next batch and writes it; each write's
   * settlement continues the loop, until the queue is empty or closed. A busy server's queue that
   * wrote moments ago waits for the linger's tick first.
   */
  #writeNext(): void {
    if (this.#stoppedIdle()) return;
    // `lingerMs > 0` first: a queue that never lingers reads no clock.
    const linger = this.#linger;
    if (linger.lingerMs > 0 && linger.holds(this.#lastWriteAt, this.#pendingBytes)) {
      return linger.wait(() => this.#writeBatch());
    }
    this.#writeBatch();
  }

  /** Ends the write loop if the queue is closed or empty (it may have become so in a linger). */
  #stoppedIdle(): boolean {
    if (!this.#closed && this.#head < this.#chunks.length) return false;
    this.#writing = false;
    this.#settle();
    return true;
  }

  #writeBatch(): void {
    if (this.#stoppedIdle()) return;
    if (this.#linger.lingerMs > 0) this.#lastWriteAt = performance.now();
    const batch = this.#takeBatch();
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024) {
      // Under steady traffic the array may never empty: drop the written slots.
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    this.#write(batch, 0);
  }

  /**
   * Writes `batch` from `offset` on, then goes on with the next batch. The write waits for a turn
   * with a free slot (`io_turns.ts`) unless `slotTaken`.
   */
  #write(batch: Uint8Array, offset: number, slotTaken = false): void {
    if (!slotTaken && !socketTurns.take()) {
      return socketTurns.later(() => this.#write(batch, offset, true), "write");
    }
    let writing: Promise<number>;
    try {
      writing = this.#writer.write(offset === 0 ? batch : batch.subarray(offset));
    } catch (error) {
      this.#failed(error);
      return;
    }
    writing.then((n) => {
      offset += n;
      if (offset < batch.length) return this.#write(batch, offset);
      if (!this.#closed) this.#pendingBytes -= batch.length;
      this.#writeNext();
    }, (error) => this.#failed(error));
  }

  #failed(error: unknown): void {
    if (!this.#closed) {
      this.close();
      this.#onError(error);
    }
    this.#writing = false;
    this.#settle();
  }
}
