/**
 * The TCP (and TLS) transport: socket bytes → bounded line splitter → {@linkcode Connection},
 * and the connection's output → {@linkcode OutboundQueue} → socket.
 *
 * Memory: most connections are idle most of the time, and an idle connection's cost is mostly
 * what its pending read holds. So each connection reads into a small buffer
 * ({@linkcode SMALL_READ_BYTES}) and moves to larger ones only while reads fill them
 * ({@linkcode AdaptiveReadBuffer}); large buffers go back to a small shared pool when the
 * connection quiets down. The transport is one class instance (no closures, no getters on an
 * object literal), and the line splitter exists only while a connection is busy or holds part
 * of a line.
 *
 * @module
 */

import { Connection } from "./connection.ts";
import type { ConnectionContext, Transport } from "./connection_context.ts";
import { LINE_TOO_LONG, LineSplitter } from "../protocol/line_splitter.ts";
import { OutboundQueue } from "./outbound.ts";
import { socketTurns } from "./io_turns.ts";
import { type ByteSocket, isSecure } from "./proxied_socket.ts";

/**
 * The read buffer of a connection that is not busy. It only waits for the next bytes: a line
 * longer than this takes a second read, from a buffer of {@linkcode FIRST_GROWN_BYTES}. Held by
 * every idle connection, so it is tiny: 512 B cost 0.8 KiB more per connection (bench/README.md).
 */
export const SMALL_READ_BYTES = 16;
/** The buffer after the small one fills: a few lines' worth, from the pool. */
export const FIRST_GROWN_BYTES = 2048;
/** A read that fills its buffer moves the next read to a buffer this many times larger. */
const GROWTH = 4;
/** A read that uses at most 1/this of a large buffer counts as quiet. */
const QUIET_FRACTION = 8;
/** After this many quiet reads in a row the connection goes back to the small buffer. */
export const QUIET_READS_TO_SHRINK = 4;
/** Free large buffers kept for reuse, per size. */
const POOL_PER_SIZE = 32;

const pools = new Map<number, Uint8Array[]>();

function takeBuffer(size: number): Uint8Array {
  return pools.get(size)?.pop() ?? new Uint8Array(size);
}

function returnBuffer(buffer: Uint8Array): void {
  if (buffer.length <= SMALL_READ_BYTES) return; // small ones are per connection: let them go
  let pool = pools.get(buffer.length);
  if (pool === undefined) pools.set(buffer.length, pool = []);
  if (pool.length < POOL_PER_SIZE) pool.push(buffer);
}

/**
 * A connection's read buffer, sized by how the connection reads: it starts at `minBytes`; a read
 * that fills the buffer means more is waiting, so the next read gets a buffer `GROWTH` times
 * larger, and at least {@linkcode FIRST_GROWN_BYTES} (up to `maxBytes`); after {@linkcode QUIET_READS_TO_SHRINK} reads in a row that each
 * used at most an eighth of a large buffer, it goes back to `minBytes` and the large buffer
 * returns to a shared pool. Lines are views into the buffer, so the caller must be done with
 * every line of a read before calling {@linkcode AdaptiveReadBuffer.afterRead}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdaptiveReadBuffer, SMALL_READ_BYTES } from "./tcp.ts";
 * const reads = new AdaptiveReadBuffer(SMALL_READ_BYTES, 16384);
 * assert.equal(reads.buffer.length, 16);
 * reads.afterRead(16); // the read filled it: more is waiting
 * assert.equal(reads.buffer.length, 2048);
 * reads.afterRead(2048);
 * assert.equal(reads.buffer.length, 8192);
 * ```
 */
export class AdaptiveReadBuffer {
  /** Where the next read goes. */
  buffer: Uint8Array;
  #quiet = 0;
  readonly #min: number;
  readonly #max: number;

  constructor(minBytes: number, maxBytes: number) {
    this.#min = minBytes;
    this.#max = Math.max(minBytes, maxBytes);
    this.buffer = new Uint8Array(minBytes);
  }

  /** Whether the buffer is the small one. */
  get isSmall(): boolean {
    return this.buffer.length <= this.#min;
  }

  /** A read put `n` bytes in {@linkcode buffer}, and all of them have been handled. */
  afterRead(n: number): void {
    const size = this.buffer.length;
    if (n === size) {
      this.#quiet = 0;
      if (size < this.#max) {
        const next = Math.max(FIRST_GROWN_BYTES, size * GROWTH);
        this.#replace(takeBuffer(Math.min(this.#max, next)));
      }
    } else if (size > this.#min && n * QUIET_FRACTION <= size) {
      if (++this.#quiet >= QUIET_READS_TO_SHRINK) {
        this.#quiet = 0;
        this.#replace(new Uint8Array(this.#min));
      }
    } else {
      this.#quiet = 0;
    }
  }

  /** Gives a large buffer back to the pool (the connection is gone). */
  release(): void {
    returnBuffer(this.buffer);
    this.buffer = EMPTY;
  }

  #replace(next: Uint8Array): void {
    returnBuffer(this.buffer);
    this.buffer = next;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Serves a client over an accepted socket and returns its {@linkcode Connection}; the read loop
 * runs in the background until the peer goes away or the connection is closed.
 *
 * @example Usage
 * ```ts ignore
 * const connection = serveTcp(await listener.accept(), context);
 * ```
 */
export function serveTcp(conn: ByteSocket, context: ConnectionContext): Connection {
  return new TcpTransport(conn, context).connection;
}

/** One socket: the {@linkcode Transport} its {@linkcode Connection} talks to, and its read loop. */
class TcpTransport implements Transport {
  readonly remoteAddress: string;
  readonly kind: "tcp" | "tls";
  readonly connection: Connection;
  #conn: ByteSocket;
  #queue: OutboundQueue;
  #limits: ConnectionContext["limits"];

  constructor(conn: ByteSocket, context: ConnectionContext) {
    this.#conn = conn;
    this.#limits = context.limits;
    this.remoteAddress = (conn.remoteAddr as Deno.NetAddr).hostname;
    this.kind = isSecure(conn) ? "tls" : "tcp";
    this.#queue = new OutboundQueue(
      conn,
      context.limits.maxPendingBytes,
      () => this.#failed(),
      context.linger,
    );
    this.connection = new Connection(this, context);
    this.connection.start();
    void this.#readLoop();
  }

  get pendingBytes(): number {
    return this.#queue.pendingBytes;
  }

  send(line: Uint8Array, force?: boolean): boolean {
    return this.#queue.push(line, force);
  }

  drained(): Promise<void> {
    return this.#queue.drained();
  }

  close(): void {
    this.#queue.close();
    try {
      this.#conn.close();
    } catch { /* already closed by the peer */ }
  }

  /** A write failed: the peer is gone. */
  #failed(): void {
    this.connection.close();
  }

  async #readLoop(): Promise<void> {
    const connection = this.connection;
    const limits = this.#limits;
    const reads = new AdaptiveReadBuffer(SMALL_READ_BYTES, limits.readBufferBytes);
    // Made on the first read, and dropped again while the connection is quiet and holds no part
    // of a line: an idle connection keeps only its small read buffer.
    let splitter: LineSplitter | null = null;
    try {
      while (!connection.isClosed) {
        const slot = socketTurns.readSlot(); // see io_turns.ts: past 96 a turn, Deno parks reads
        if (slot !== undefined) await slot;
        const buffer = reads.buffer;
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        connection.metrics.bytesIn += n;
        splitter ??= new LineSplitter(limits.maxLineBytes);
        splitter.push(buffer.subarray(0, n));
        // Lines are views into `buffer`: all of them are handled before the next read reuses or
        // replaces it.
        for (let line = splitter.next(); line !== null; line = splitter.next()) {
          if (line === LINE_TOO_LONG) return await connection.lineTooLong();
          const pending = connection.handleLine(line);
          if (pending !== undefined) await pending;
          if (connection.isClosed) return;
        }
        reads.afterRead(n);
        if (reads.isSmall && splitter.bufferedBytes === 0) splitter = null;
        else splitter.push(EMPTY); // hold no view of a buffer that may go back to the pool
      }
    } catch {
      // A reset, or a read on a socket we closed: either way the peer is gone.
    } finally {
      reads.release();
      connection.close();
    }
  }
}
