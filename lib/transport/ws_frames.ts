/**
 * WebSocket framing (RFC 6455) at the byte level: an incremental parser of client frames and an
 * encoder of server frames.
 *
 * The parser is a state machine over bytes, fed whatever each read returned: a frame may be split
 * anywhere, and several frames may share a read. It never gathers a data frame: payload bytes are
 * unmasked in place in the caller's buffer and handed out as views as soon as they arrive, so what
 * a connection holds does not grow with a frame's or a message's size. Only a control frame split
 * across reads is copied, into at most 125 bytes.
 *
 * @module
 */

import { isUtf8 } from "node:buffer";

/** Opcodes (RFC 6455 §5.2). */
export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** Close codes the server sends. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL_ERROR = 1002;
/** A close frame without a code, as the receiver reports it (never sent). */
export const CLOSE_NO_STATUS = 1005;

/** The most a control frame's payload may hold. */
const MAX_CONTROL_PAYLOAD = 125;

/**
 * What {@linkcode FrameParser.next} found: message bytes (`data`), a message whose announced
 * length passes the bound (`too-big`; its bytes are then skipped), a control frame, a protocol
 * error (after which the parser only ever returns `error`), or `null`: the chunk is used up.
 */
export type FrameEvent = "data" | "too-big" | "ping" | "pong" | "close" | "error" | null;

/**
 * Where the parser's next byte goes: the first byte (FIN, reserved bits, opcode), the second
 * (mask bit, 7-bit length), the 16- or 64-bit length, the mask, a data frame's payload (streamed
 * out), a control frame's payload (gathered, at most 125 bytes); or nowhere, after an error.
 */
enum State {
  Op,
  Len,
  ExtLen,
  MaskKey,
  Payload,
  ControlPayload,
  Failed,
}

const EMPTY = new Uint8Array(0);

/**
 * Parses client frames, pull style: {@linkcode FrameParser.push} a chunk, then call
 * {@linkcode FrameParser.next} until it returns `null`. After `data`, {@linkcode payload} views
 * the next bytes of the current message (unmasked, in the pushed chunk) and {@linkcode final}
 * says whether they end it; every message ends with exactly one `data` whose `final` is true
 * (its payload may be empty). After `ping` and `close`, {@linkcode payload} holds the control
 * frame's payload, and after `close` {@linkcode closeCode} its code. Views stay valid until the
 * caller reuses the chunk's buffer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameParser } from "./ws_frames.ts";
 * // A masked text frame "hi" (mask 1,2,3,4), as a client sends it.
 * const frame = new Uint8Array([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]);
 * const parser = new FrameParser(1024);
 * parser.push(frame.subarray(0, 5)); // split anywhere
 * assert.equal(parser.next(), null);
 * parser.push(frame.subarray(5));
 * assert.equal(parser.next(), "data");
 * assert.equal(new TextDecoder().decode(parser.payload), "hi");
 * assert.equal(parser.final, true);
 * assert.equal(parser.next(), null);
 * ```
 */
export class FrameParser {
  /** The most bytes a message (all its fragments) may announce before it is `too-big`. */
  readonly maxMessageBytes: number;
  /** After `data`: the next message bytes; after `ping`/`pong`/`close`: the control payload. */
  payload: Uint8Array = EMPTY;
  /** After `data`: whether {@linkcode payload} ends the message. */
  final = false;
  /** After `data`: whether the message began as a text frame (else binary). */
  isText = false;
  /** After `close`: the peer's code ({@linkcode CLOSE_NO_STATUS} when it gave none). */
  closeCode = CLOSE_NO_STATUS;
  /** After `error`: what was wrong, for the log. */
  error = "";

  #chunk: Uint8Array = EMPTY;
  #pos = 0;
  #state: State = State.Op;
  // The frame being read.
  #fin = false;
  #opcode = 0;
  #remaining = 0;
  #extLengthBytes = 0;
  #maskKey = new Uint8Array(4);
  #maskKeyBytes = 0;
  #maskOffset = 0;
  // The message being read (across its fragments).
  #inMessage = false;
  #messageBytes = 0;
  #skipping = false;
  // A control frame split across chunks: gathered here.
  #control: Uint8Array | null = null;
  #controlLength = 0;

  /** @param maxMessageBytes the most bytes a message may announce (all its frames together) */
  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Hands the parser the next chunk (it unmasks payloads in place, so it must be writable). */
  push(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#pos = 0;
  }

  /** The next event in the chunk, or `null` once the chunk is used up. */
  next(): FrameEvent {
    const chunk = this.#chunk;
    while (this.#pos < chunk.length) {
      switch (this.#state) {
        case State.Op: {
          const fail = this.#readOpcode(chunk[this.#pos++]);
          if (fail !== null) return this.#fail(fail);
          break;
        }
        case State.Len: {
          const byte = chunk[this.#pos++];
          if ((byte & 0x80) === 0) return this.#fail("unmasked client frame");
          const length = byte & 0x7f;
          if (this.#opcode >= OPCODE_CLOSE && length > MAX_CONTROL_PAYLOAD) {
            return this.#fail("control frame longer than 125 bytes");
          }
          this.#remaining = length < 126 ? length : 0;
          this.#extLengthBytes = length === 126 ? 2 : length === 127 ? 8 : 0;
          this.#maskKeyBytes = 0;
          this.#state = this.#extLengthBytes > 0 ? State.ExtLen : State.MaskKey;
          break;
        }
        case State.ExtLen: {
          const byte = chunk[this.#pos++];
          if (this.#extLengthBytes === 8 && byte & 0x80) return this.#fail("length's top bit set");
          // Past 2^53 a number would lose bytes: no client needs such a frame.
          if (this.#remaining >= 2 ** 45) return this.#fail("frame longer than 2^53 bytes");
          this.#remaining = this.#remaining * 256 + byte;
          if (--this.#extLengthBytes === 0) this.#state = State.MaskKey;
          break;
        }
        case State.MaskKey: {
          this.#maskKey[this.#maskKeyBytes++] = chunk[this.#pos++];
          if (this.#maskKeyBytes < 4) break;
          this.#maskOffset = 0;
          const event = this.#headerDone();
          if (event !== null) return event;
          break;
        }
        case State.Payload: {
          const start = this.#pos;
          const end = Math.min(chunk.length, start + this.#remaining);
          this.#pos = end;
          this.#remaining -= end - start;
          const ends = this.#remaining === 0;
          if (ends) this.#state = State.Op;
          const last = ends && this.#fin;
          if (last) this.#inMessage = false;
          if (this.#skipping) break;
          this.#maskOffset = unmask(chunk, start, end, this.#maskKey, this.#maskOffset);
          this.payload = chunk.subarray(start, end);
          this.final = last;
          return "data";
        }
        case State.ControlPayload: {
          const start = this.#pos;
          const end = Math.min(chunk.length, start + this.#remaining);
          this.#pos = end;
          this.#remaining -= end - start;
          this.#maskOffset = unmask(chunk, start, end, this.#maskKey, this.#maskOffset);
          if (this.#remaining === 0 && this.#controlLength === 0) {
            this.#state = State.Op;
            return this.#controlDone(chunk.subarray(start, end)); // whole in this chunk: a view
          }
          this.#control ??= new Uint8Array(MAX_CONTROL_PAYLOAD);
          this.#control.set(chunk.subarray(start, end), this.#controlLength);
          this.#controlLength += end - start;
          if (this.#remaining > 0) break;
          this.#state = State.Op;
          const payload = this.#control.subarray(0, this.#controlLength);
          this.#controlLength = 0;
          return this.#controlDone(payload);
        }
        default:
          return "error";
      }
    }
    return this.#state === State.Failed ? "error" : null;
  }

  /** The first byte of a frame: FIN, reserved bits, opcode. Returns what is wrong, or null. */
  #readOpcode(byte: number): string | null {
    this.#fin = (byte & 0x80) !== 0;
    if (byte & 0x70) return "reserved bits set"; // no extension is ever agreed
    const opcode = byte & 0x0f;
    this.#opcode = opcode;
    if (opcode >= OPCODE_CLOSE) {
      if (opcode > OPCODE_PONG) return `unknown opcode ${opcode}`;
      if (!this.#fin) return "fragmented control frame";
    } else if (opcode === OPCODE_CONTINUATION) {
      if (!this.#inMessage) return "continuation frame outside a message";
    } else if (opcode === OPCODE_TEXT || opcode === OPCODE_BINARY) {
      if (this.#inMessage) return "new message inside a fragmented one";
    } else {
      return `unknown opcode ${opcode}`;
    }
    this.#state = State.Len;
    return null;
  }

  /** The header is read: start the payload, or report a frame that has none. */
  #headerDone(): FrameEvent {
    const length = this.#remaining;
    if (this.#opcode >= OPCODE_CLOSE) {
      this.#controlLength = 0;
      this.#state = length > 0 ? State.ControlPayload : State.Op;
      return length > 0 ? null : this.#controlDone(EMPTY);
    }
    if (!this.#inMessage) {
      this.#inMessage = true;
      this.#messageBytes = 0;
      this.#skipping = false;
      this.isText = this.#opcode === OPCODE_TEXT;
    }
    this.#messageBytes += length;
    this.#state = length > 0 ? State.Payload : State.Op;
    if (length === 0 && this.#fin) this.#inMessage = false;
    if (!this.#skipping && this.#messageBytes > this.maxMessageBytes) {
      this.#skipping = true; // the rest of this message is read and dropped
      return "too-big";
    }
    if (length > 0 || this.#skipping || !this.#fin) return null;
    this.payload = EMPTY; // an empty last fragment still ends the message
    this.final = true;
    return "data";
  }

  #controlDone(payload: Uint8Array): FrameEvent {
    this.payload = payload;
    if (this.#opcode === OPCODE_PING) return "ping";
    if (this.#opcode === OPCODE_PONG) return "pong";
    if (payload.length === 1) return this.#fail("close frame with a 1-byte payload");
    this.closeCode = payload.length === 0 ? CLOSE_NO_STATUS : (payload[0] << 8) | payload[1];
    if (payload.length > 0 && !validCloseCode(this.closeCode)) {
      return this.#fail(`close code ${this.closeCode}`);
    }
    return "close";
  }

  #fail(why: string): "error" {
    this.#state = State.Failed;
    this.error = why;
    this.payload = EMPTY;
    return "error";
  }
}

/** Whether a peer may send this close code (RFC 6455 §7.4). */
function validCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

/** Unmasks `bytes[start, end)` in place; returns the mask offset for the frame's next bytes. */
function unmask(
  bytes: Uint8Array,
  start: number,
  end: number,
  key: Uint8Array,
  offset: number,
): number {
  for (let i = start; i < end; i++) {
    bytes[i] ^= key[offset];
    offset = (offset + 1) & 3;
  }
  return offset;
}

/** The size of a server frame's header (no mask) for a payload of `length` bytes. */
function headerSize(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes a final, unmasked frame header at `at`; returns where the payload goes. */
function writeHeader(out: Uint8Array, at: number, opcode: number, length: number): number {
  out[at] = 0x80 | opcode;
  if (length < 126) {
    out[at + 1] = length;
    return at + 2;
  }
  if (length < 65536) {
    out[at + 1] = 126;
    out[at + 2] = length >>> 8;
    out[at + 3] = length & 0xff;
    return at + 4;
  }
  out[at + 1] = 127;
  const high = Math.floor(length / 2 ** 32);
  new DataView(out.buffer, out.byteOffset + at + 2, 8).setUint32(0, high);
  new DataView(out.buffer, out.byteOffset + at + 6, 4).setUint32(0, length >>> 0);
  return at + 10;
}

/**
 * One server frame (final, unmasked) holding `payload`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, OPCODE_TEXT } from "./ws_frames.ts";
 * const frame = encodeFrame(OPCODE_TEXT, new TextEncoder().encode("0:1"));
 * assert.deepEqual([...frame], [0x81, 3, 0x30, 0x3a, 0x31]);
 * ```
 */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(headerSize(payload.length) + payload.length);
  out.set(payload, writeHeader(out, 0, opcode, payload.length));
  return out;
}

/**
 * A close frame with `code` (and no reason).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeClose } from "./ws_frames.ts";
 * assert.deepEqual([...encodeClose(1000)], [0x88, 2, 0x03, 0xe8]);
 * ```
 */
export function encodeClose(code: number): Uint8Array {
  return encodeFrame(OPCODE_CLOSE, new Uint8Array([code >>> 8, code & 0xff]));
}

const LF = 0x0a;

/**
 * Server output (one line or several, each ending in LF) as frames, one per line and without
 * its LF: a text frame when the line is valid UTF-8, else a binary frame with its exact bytes
 * (message text is opaque bytes, and a text frame could not carry them). All the frames are
 * written into one buffer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeLines } from "./ws_frames.ts";
 * const framed = encodeLines(new Uint8Array([0x33, 0x3a, 0x68, 0x69, 0x0a, 0x33, 0x3a, 0xff, 0x0a]));
 * assert.deepEqual([...framed], [0x81, 4, 0x33, 0x3a, 0x68, 0x69, 0x82, 3, 0x33, 0x3a, 0xff]);
 * ```
 */
export function encodeLines(output: Uint8Array): Uint8Array {
  let size = 0;
  for (let start = 0; start < output.length;) {
    let end = output.indexOf(LF, start);
    if (end === -1) end = output.length;
    size += headerSize(end - start) + (end - start);
    start = end + 1;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (let start = 0; start < output.length;) {
    let end = output.indexOf(LF, start);
    if (end === -1) end = output.length;
    const line = output.subarray(start, end);
    at = writeHeader(
      out,
      at,
      isAscii(line) || isUtf8(line) ? OPCODE_TEXT : OPCODE_BINARY,
      end - start,
    );
    out.set(line, at);
    at += line.length;
    start = end + 1;
  }
  return out;
}

/** Most lines are ASCII: checked here without a call into the runtime. */
function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return false;
  return true;
}
