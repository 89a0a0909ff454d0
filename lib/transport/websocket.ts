/**
 * The WebSocket transport: the same protocol for browsers and game engines on `--ws-port`, and
 * (with `--web`) the web page at `/`. It runs on a socket the server accepted, like tcp.ts: the
 * request head is read within a byte bound and a deadline, then frames are parsed byte by byte
 * (ws_frames.ts) into the same bounded {@linkcode LineSplitter}, {@linkcode Connection} and
 * {@linkcode OutboundQueue} as TCP.
 *
 * Framing: each text message is one line, with no LF needed; a message may also hold several
 * LF-separated lines (a CR just before an LF, or at the end of the message, is dropped). Binary
 * messages are read the same way, as the bytes of lines. Each server line goes out as one text
 * frame without its LF; the rare line that is not valid UTF-8 (message text is opaque bytes) goes
 * out as a binary frame holding those exact bytes, since a text frame could not carry it.
 *
 * Limits: a message longer than `--max-line-bytes` (one trailing LF not counted) gets
 * `9:?:too-long` and the connection is closed, as soon as its frames announce that much (its bytes
 * are never gathered); output past `--max-pending-bytes` drops the client as a slow consumer; the
 * read loop waits for each line to be handled, so nothing queues while a login is checked. The
 * server's close sends a close frame and ends the socket within {@linkcode CLOSE_TIMEOUT_MS}.
 *
 * @module
 */

import { LINE_TOO_LONG, LineSplitter } from "../protocol/line_splitter.ts";
import type { Logger } from "../observe/log.ts";
import { Connection } from "./connection.ts";
import type { ConnectionContext, Transport } from "./connection_context.ts";
import { OutboundQueue } from "./outbound.ts";
import { socketTurns } from "./io_turns.ts";
import { type ByteSocket, isSecure } from "./proxied_socket.ts";
import { AdaptiveReadBuffer, SMALL_READ_BYTES } from "./tcp.ts";
import {
  acceptUpgrade,
  type ClientOf,
  closeQuietly,
  type WebSocketOptions,
  writeAll,
} from "./ws_handshake.ts";
import {
  CLOSE_NO_STATUS,
  CLOSE_NORMAL,
  CLOSE_PROTOCOL_ERROR,
  encodeClose,
  encodeFrame,
  encodeLines,
  FrameParser,
  OPCODE_PONG,
} from "./ws_frames.ts";

export {
  type ClientOf,
  closeQuietly,
  refuseWebSocket,
  type WebSocketOptions,
} from "./ws_handshake.ts";

/** How long a closing connection waits for the peer's close frame before it ends the socket. */
export const CLOSE_TIMEOUT_MS = 5000;

const LF = 0x0a;
const CR = 0x0d;
const LF_ONLY = new Uint8Array([LF]);
const EMPTY = new Uint8Array(0);

/**
 * Serves one accepted socket on the WebSocket port: reads its request head, answers a page or an
 * error and closes, or upgrades it and resolves to its {@linkcode Connection} (whose read loop
 * then runs in the background). Resolves to `null` when there is no connection; never rejects.
 * `socketClosed` is called once, when the socket is closed: after an answer (the result is then
 * `null`), or once the connection's close frame went out and the peer answered or the close timed
 * out, so whoever counts sockets counts a closing one too. `clientOf` names the client from the
 * request head (behind an HTTP proxy).
 *
 * @example Usage
 * ```ts ignore
 * const connection = await serveWebSocket(await listener.accept(), context, options);
 * ```
 */
export async function serveWebSocket(
  conn: ByteSocket,
  context: ConnectionContext,
  options: WebSocketOptions,
  socketClosed: () => void = () => {},
  clientOf?: ClientOf,
): Promise<Connection | null> {
  try {
    const upgraded = await acceptUpgrade(conn, options, context.log, clientOf);
    if (upgraded !== null) {
      const { rest, address } = upgraded;
      return new WebSocketTransport(conn, address, context, rest, socketClosed).connection;
    }
    socketClosed(); // answered, and closed
    return null;
  } catch (error) {
    if (
      !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.ConnectionReset)
    ) {
      context.log.error("server-error", { transport: "ws", error: String(error) });
    }
    closeQuietly(conn);
    socketClosed();
    return null;
  }
}

/**
 * The last output framed: a broadcast hands every recipient the same buffer, and server frames
 * are not masked, so all of them get the same frames, encoded once.
 */
let lastOutput: Uint8Array | null = null;
let lastFramed: Uint8Array = EMPTY;

/** One upgraded socket: the {@linkcode Transport} its {@linkcode Connection} talks to. */
class WebSocketTransport implements Transport {
  readonly remoteAddress: string;
  readonly kind: "ws" | "wss";
  readonly connection: Connection;
  #conn: ByteSocket;
  #queue: OutboundQueue;
  #limits: ConnectionContext["limits"];
  #log: Logger;
  /** The latest write the queue started, so the close frame can wait for a frame in flight. */
  #lastWrite: Promise<number> | null = null;
  #closing = false;
  #closeCode = CLOSE_NORMAL;
  #closeSent = false;
  /** The peer sent its close, ended its stream or broke the protocol: nothing more to wait for. */
  #peerDone = false;
  #hungUp = false;
  #hangUpTimer: ReturnType<typeof setTimeout> | undefined;
  #socketClosed: () => void;
  // The message being read: its size so far, its last byte, and its unfinished line.
  #messageBytes = 0;
  #lastByte = -1;
  #splitter: LineSplitter | null = null;

  constructor(
    conn: ByteSocket,
    remoteAddress: string,
    context: ConnectionContext,
    rest: Uint8Array,
    socketClosed: () => void,
  ) {
    this.#conn = conn;
    this.#socketClosed = socketClosed;
    this.#limits = context.limits;
    this.#log = context.log;
    this.remoteAddress = remoteAddress;
    this.kind = isSecure(conn) ? "wss" : "ws";
    this.#queue = new OutboundQueue(
      this,
      context.limits.maxPendingBytes,
      () => this.#failed(),
      context.linger,
    );
    this.connection = new Connection(this, context);
    this.connection.start();
    void this.#readLoop(rest);
  }

  get pendingBytes(): number {
    return this.#queue.pendingBytes;
  }

  send(output: Uint8Array, force?: boolean): boolean {
    if (output !== lastOutput) {
      lastFramed = encodeLines(output);
      lastOutput = output;
    }
    return this.#queue.push(lastFramed, force);
  }

  drained(): Promise<void> {
    return this.#queue.drained();
  }

  /** The queue's writer: the socket, with the latest write remembered. */
  write(bytes: Uint8Array): Promise<number> {
    return this.#lastWrite = this.#conn.write(bytes);
  }

  /** Drops unsent output, sends a close frame, and ends the socket within the close timeout. */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#queue.close();
    this.#hangUpTimer = setTimeout(() => this.#hangUp(), CLOSE_TIMEOUT_MS);
    void this.#sendClose();
  }

  async #sendClose(): Promise<void> {
    // A batch being written is finished first (the queue goes on with it after close()), so the
    // close frame starts on a frame boundary.
    for (let write = this.#lastWrite; write !== null; write = this.#lastWrite) {
      await write.catch(() => {});
      if (this.#lastWrite === write) break;
    }
    if (this.#hungUp) return;
    try {
      await writeAll(this.#conn, encodeClose(this.#closeCode));
    } catch {
      return this.#hangUp();
    }
    this.#closeSent = true;
    if (this.#peerDone) this.#hangUp();
  }

  #hangUp(): void {
    if (this.#hungUp) return;
    this.#hungUp = true;
    clearTimeout(this.#hangUpTimer);
    closeQuietly(this.#conn);
    this.#socketClosed();
  }

  /** The peer is done: end the socket once our close frame is out. */
  #peerFinished(): void {
    this.#peerDone = true;
    this.connection.close();
    if (this.#closeSent) this.#hangUp();
  }

  /** Pongs the peer does not read passed the pending bound: dropped as any slow consumer is. */
  #slowConsumer(): void {
    const connection = this.connection;
    connection.metrics.slowConsumerDisconnects++;
    this.#log.warn("slow-consumer", { address: this.remoteAddress, pending: this.pendingBytes });
    connection.close();
  }

  /** A write failed: the peer is gone. */
  #failed(): void {
    this.#peerDone = true;
    this.connection.close();
  }

  async #readLoop(rest: Uint8Array): Promise<void> {
    const reads = new AdaptiveReadBuffer(SMALL_READ_BYTES, this.#limits.readBufferBytes);
    const parser = new FrameParser(this.#limits.maxLineBytes + 1);
    try {
      // The bytes that came with the request head are the first frames.
      if (rest.length > 0 && !await this.#handleChunk(parser, rest, true)) return;
      while (!this.#hungUp) {
        const slot = socketTurns.readSlot(); // see io_turns.ts: past 96 a turn, Deno parks reads
        if (slot !== undefined) await slot;
        const buffer = reads.buffer;
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.connection.metrics.bytesIn += n;
        // Views into `buffer` (payloads, lines) are all handled before the next read reuses it.
        if (!await this.#handleChunk(parser, buffer.subarray(0, n), reads.isSmall)) return;
        reads.afterRead(n);
      }
    } catch {
      // A reset, or a read on a socket we closed: either way the peer is gone.
    } finally {
      reads.release();
      this.#peerFinished();
    }
  }

  /** Handles one read's frames; false once nothing more is to be read. */
  async #handleChunk(parser: FrameParser, chunk: Uint8Array, quiet: boolean): Promise<boolean> {
    const connection = this.connection;
    parser.push(chunk);
    for (let event = parser.next(); event !== null; event = parser.next()) {
      if (event === "close") {
        if (!this.#closing) this.#closeCode = echoCode(parser.closeCode);
        return false;
      }
      if (event === "error") {
        this.#log.info("closing", { address: this.remoteAddress, why: parser.error });
        if (!this.#closing) this.#closeCode = CLOSE_PROTOCOL_ERROR;
        return false;
      }
      // Once closing, frames are read only to find the peer's close.
      if (connection.isClosed) continue;
      if (event === "data") {
        await this.#messageBytesIn(parser.payload, parser.final);
      } else if (event === "too-big") {
        await connection.lineTooLong();
      } else if (event === "ping") {
        if (!this.#queue.push(encodeFrame(OPCODE_PONG, parser.payload))) this.#slowConsumer();
      }
    }
    const splitter = this.#splitter;
    if (splitter !== null) {
      // An idle connection keeps no splitter; a busy one keeps no view of a reused buffer.
      if (quiet && splitter.bufferedBytes === 0) this.#splitter = null;
      else splitter.push(EMPTY);
    }
    return true;
  }

  /** The next bytes of a message (`final`: the last ones): its lines go to the connection. */
  async #messageBytesIn(piece: Uint8Array, final: boolean): Promise<void> {
    const connection = this.connection;
    const maxLineBytes = this.#limits.maxLineBytes;
    this.#messageBytes += piece.length;
    if (piece.length > 0) this.#lastByte = piece[piece.length - 1];
    if (final) {
      // The parser let in one byte more than the limit: a trailing LF, which does not count.
      const tooLong = this.#messageBytes > maxLineBytes && this.#lastByte !== LF;
      this.#messageBytes = 0;
      this.#lastByte = -1;
      if (tooLong) return await connection.lineTooLong();
    }
    const splitter = this.#splitter ??= new LineSplitter(maxLineBytes);
    // The last line of a message needs no LF. When the splitter holds nothing, it is a view of
    // this piece; else the splitter finishes it, given the LF the message left out.
    let tail: Uint8Array | null = null;
    let body = piece;
    if (final && splitter.bufferedBytes === 0) {
      const lastLf = piece.lastIndexOf(LF);
      tail = piece.subarray(lastLf + 1);
      body = piece.subarray(0, lastLf + 1);
    }
    splitter.push(body);
    for (let line = splitter.next(); line !== null; line = splitter.next()) {
      if (!await this.#lineIn(line)) return;
    }
    if (!final) return;
    if (tail === null) {
      splitter.push(LF_ONLY);
      const line = splitter.next();
      if (line !== null) await this.#lineIn(line);
    } else {
      const end = tail.length > 0 && tail[tail.length - 1] === CR ? tail.length - 1 : tail.length;
      await this.#lineIn(tail.subarray(0, end));
    }
  }

  /** Hands a line to the connection and waits for it; false once the connection is closed. */
  async #lineIn(line: Uint8Array | typeof LINE_TOO_LONG): Promise<boolean> {
    const connection = this.connection;
    if (line === LINE_TOO_LONG) {
      await connection.lineTooLong(); // not reached: messages are bounded first
      return false;
    }
    const pending = connection.handleLine(line);
    if (pending !== undefined) await pending;
    return !connection.isClosed;
  }
}

/** The code to answer a peer's close with: its own (RFC 6455 §5.5.1), or 1000 when it gave none. */
function echoCode(code: number): number {
  return code === CLOSE_NO_STATUS ? CLOSE_NORMAL : code;
}
