/**
 * The wire format of docs/protocol.md, both ways: a client line (bytes, without its LF) becomes
 * a {@linkcode Command}, and server replies become encoded lines ready to write.
 *
 * Pure functions with no state and no I/O. Message bodies are never decoded: a `3:` command holds
 * a view of the sender's bytes, and {@linkcode encodeMessage} copies them once into the line that
 * every recipient shares.
 *
 * @module
 */

import { lineBytes } from "./byte_slabs.ts";
import { decodeRoomName } from "./names.ts";
import { parseFeatures, parseResume, type V11Command } from "./v11.ts";

// The room-name rule lives in names.ts; callers that ask the codec keep working.
export { decodeRoomName, isValidRoomName, MAX_ROOM_NAME_BYTES } from "./names.ts";

const COLON = 0x3a;

/** The most bytes a user or room password may have. */
export const MAX_PASSWORD_BYTES = 1024;
/** The most characters a username may have. */
export const MAX_USERNAME_LENGTH = 32;

/** Why a command failed: the `<reason>` of a `9:` line. */
export type ErrorReason =
  | "malformed"
  | "too-long"
  | "bad-name"
  | "room-password"
  | "room-limit"
  | "not-in-room"
  | "not-online"
  | "too-many-targets"
  | "rate-limited"
  | "server-full"
  | "server-error";

/** The `<code>` of a `9:` line: the failed command's code, or `?` when it could not be read. */
export type ErrorCode = "0" | "1" | "2" | "3" | "6" | "8" | "?";

/** A client line, read. */
export type Command =
  /** `0:<username>:<password>` with a well-formed name and password. */
  | { kind: "login"; username: string; password: Uint8Array }
  /** A `0:` line that cannot be a valid login (it fails like a wrong password, as `0:-1`). */
  | { kind: "bad-login" }
  /** `1` or `1:<anything>`. */
  | { kind: "rooms" }
  /** `2:<room>` or `2:<room>:<password>`; `room` is valid, `roomBytes` its UTF-8. */
  | { kind: "join"; room: string; roomBytes: Uint8Array; password: Uint8Array }
  /** `3:0:<body>` (`echo`: the sender gets it too) or `3:1:<body>`. */
  | { kind: "say"; echo: boolean; body: Uint8Array }
  /** `3:2:<u1>:...:<uN>:<body>`; targets as listed, duplicates included. */
  | { kind: "tell"; targets: string[]; body: Uint8Array }
  /** A line that is not a valid command. */
  | { kind: "invalid"; code: ErrorCode; reason: ErrorReason }
  /** The v1.1 lines `8:` and `6:` (v11.ts). */
  | V11Command;

// ignoreBOM: keep a leading U+FEFF in the text. By default a TextDecoder strips it, which would
// make a username "\uFEFFalice" read as "alice".
const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Whether `name` is a valid username: 1 to 32 of `A-Z a-z 0-9 _ . -`.
 *
 * @example Usage
 * ```ts
 * import { isValidUsername } from "./codec.ts";
 * isValidUsername("alice_1"); // true
 * isValidUsername("al ice"); // false
 * ```
 */
export function isValidUsername(name: string): boolean {
  return name.length >= 1 && name.length <= MAX_USERNAME_LENGTH && /^[A-Za-z0-9_.-]+$/.test(name);
}

/**
 * Whether `password` (bytes) is a valid user password: 1 to 1,024 bytes, no `:`, CR or LF.
 *
 * @example Usage
 * ```ts
 * import { isValidUserPassword } from "./codec.ts";
 * isValidUserPassword(new TextEncoder().encode("secret")); // true
 * ```
 */
export function isValidUserPassword(password: Uint8Array): boolean {
  return password.length >= 1 && password.length <= MAX_PASSWORD_BYTES &&
    password.indexOf(COLON) === -1 && password.indexOf(0x0a) === -1 &&
    password.indexOf(0x0d) === -1;
}

/** Decodes a short field that is almost always ASCII (usernames) without a TextDecoder call. */
function decodeName(bytes: Uint8Array): string {
  let name = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b >= 0x80) return lenient.decode(bytes);
    name += String.fromCharCode(b);
  }
  return name;
}

function invalid(code: ErrorCode, reason: ErrorReason): Command {
  return { kind: "invalid", code, reason };
}

/**
 * Reads one client line (without its LF or CR) as a command, or `null` for a blank line.
 *
 * @example Usage
 * ```ts
 * import { parseCommand } from "./codec.ts";
 * parseCommand(new TextEncoder().encode("3:1:hello")); // { kind: "say", echo: false, body }
 * parseCommand(new TextEncoder().encode("7")); // { kind: "invalid", code: "?", reason: "malformed" }
 * ```
 */
export function parseCommand(line: Uint8Array): Command | null {
  const length = line.length;
  if (length === 0) return null;
  // The code is a single digit followed by end of line or ':'.
  const code = line[0] - 0x30;
  if (length > 1 && line[1] !== COLON) return invalid("?", "malformed");
  switch (code) {
    case 0:
      return parseLogin(line);
    case 1:
      return { kind: "rooms" };
    case 2:
      return parseJoin(line);
    case 3:
      return parseSend(line);
    case 6:
      return parseResume(line);
    case 8:
      return parseFeatures(line);
    default:
      return invalid("?", "malformed");
  }
}

function parseLogin(line: Uint8Array): Command {
  const nameEnd = line.indexOf(COLON, 2);
  if (line.length < 2 || nameEnd === -1) return { kind: "bad-login" };
  const username = decodeName(line.subarray(2, nameEnd));
  const password = line.subarray(nameEnd + 1);
  if (!isValidUsername(username) || !isValidUserPassword(password)) return { kind: "bad-login" };
  return { kind: "login", username, password };
}

function parseJoin(line: Uint8Array): Command {
  if (line.length < 2) return invalid("2", "malformed");
  let nameEnd = line.indexOf(COLON, 2);
  let password = line.subarray(line.length);
  if (nameEnd === -1) {
    nameEnd = line.length;
  } else {
    password = line.subarray(nameEnd + 1);
    if (password.indexOf(COLON) !== -1 || password.length > MAX_PASSWORD_BYTES) {
      return invalid("2", "malformed");
    }
  }
  const roomBytes = line.subarray(2, nameEnd);
  const room = decodeRoomName(roomBytes);
  if (room === null) return invalid("2", "bad-name");
  return { kind: "join", room, roomBytes, password };
}

function parseSend(line: Uint8Array): Command {
  // "3:m:" at least, where m is the one-digit mode; the body may be empty.
  if (line.length < 4 || line[3] !== COLON) return invalid("3", "malformed");
  const mode = line[2];
  if (mode === 0x30 || mode === 0x31) {
    return { kind: "say", echo: mode === 0x30, body: line.subarray(4) };
  }
  if (mode !== 0x32) return invalid("3", "malformed");
  const bodyStart = line.lastIndexOf(COLON) + 1;
  // bodyStart - 1 is the colon ending the last target; 3 is the colon after the mode.
  if (bodyStart - 1 === 3) return invalid("3", "malformed");
  const targets: string[] = [];
  let start = 4;
  while (start < bodyStart) {
    // Read the name in place (no view per target); line[bodyStart - 1] is a colon, so this ends.
    let name = "";
    let ascii = true;
    let end = start;
    for (let b = line[end]; b !== COLON; b = line[++end]) {
      if (b < 0x80) name += String.fromCharCode(b);
      else ascii = false;
    }
    if (end === start) return invalid("3", "malformed");
    if (!ascii) name = lenient.decode(line.subarray(start, end));
    targets.push(name);
    start = end + 1;
  }
  return { kind: "tell", targets, body: line.subarray(bodyStart) };
}

// ---------------------------------------------------------------------------------------------
// Server lines. Each is encoded once; the same bytes go to every recipient.

/** `0:-1\n`: not logged in (failed login, kick, or a command before a login). */
export const LOGGED_OUT: Uint8Array = encoder.encode("0:-1\n");

/**
 * Encodes a line from fields joined by `:` and ended by LF. Strings are UTF-8 encoded; byte
 * fields are copied as they are.
 *
 * @example Usage
 * ```ts
 * import { encodeLine } from "./codec.ts";
 * encodeLine("4", "lobby", "bob"); // bytes of "4:lobby:bob\n"
 * ```
 */
export function encodeLine(...fields: (string | Uint8Array)[]): Uint8Array {
  const parts = fields.map((f) => typeof f === "string" ? encoder.encode(f) : f);
  let size = parts.length; // one ':' between fields, and the LF
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[at++] = COLON;
    out.set(parts[i], at);
    at += parts[i].length;
  }
  out[at] = 0x0a;
  return out;
}

/**
 * The size of `3:<body>\n`, or of `3:<sender>:<body>\n` with a sender (as UTF-8 bytes).
 *
 * @example Usage
 * ```ts
 * import { messageSize } from "./codec.ts";
 * messageSize(new TextEncoder().encode("hi"), null); // 5
 * ```
 */
export function messageSize(body: Uint8Array, sender: Uint8Array | null): number {
  return body.length + 3 + (sender === null ? 0 : sender.length + 1);
}

/**
 * Writes `3:<body>\n` (or `3:<sender>:<body>\n`) into `out` at `at`, which must have
 * {@linkcode messageSize} bytes free, and returns the offset after it. The body's bytes are
 * copied unchanged.
 *
 * @example Usage
 * ```ts
 * import { writeMessage } from "./codec.ts";
 * const out = new Uint8Array(16);
 * writeMessage(out, 0, new TextEncoder().encode("hi"), null); // 5: out begins "3:hi\n"
 * ```
 */
export function writeMessage(
  out: Uint8Array,
  at: number,
  body: Uint8Array,
  sender: Uint8Array | null,
): number {
  out[at++] = 0x33;
  out[at++] = COLON;
  if (sender !== null) {
    out.set(sender, at);
    at += sender.length;
    out[at++] = COLON;
  }
  out.set(body, at);
  at += body.length;
  out[at++] = 0x0a;
  return at;
}

/**
 * Encodes `3:<body>` or, with a sender (its name as UTF-8 bytes), `3:<sender>:<body>`; the body's
 * bytes are copied unchanged. The line is cut from a shared slab (`byte_slabs.ts`): it is meant to
 * be sent, not kept.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeMessage } from "./codec.ts";
 * const text = new TextEncoder();
 * const read = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
 * assert.equal(read(encodeMessage(text.encode("hi"))), "3:hi\n");
 * assert.equal(read(encodeMessage(text.encode("hi"), text.encode("alice"))), "3:alice:hi\n");
 * ```
 */
export function encodeMessage(body: Uint8Array, sender: Uint8Array | null = null): Uint8Array {
  const out = lineBytes(messageSize(body, sender));
  writeMessage(out, 0, body, sender);
  return out;
}

/**
 * Encodes a `9:<code>:<reason>[:<detail>]` line.
 *
 * @example Usage
 * ```ts
 * import { encodeError } from "./codec.ts";
 * encodeError("3", "not-online", "carol"); // bytes of "9:3:not-online:carol\n"
 * ```
 */
export function encodeError(code: ErrorCode, reason: ErrorReason, detail?: string): Uint8Array {
  return detail === undefined
    ? encodeLine("9", code, reason)
    : encodeLine("9", code, reason, detail);
}

/** A room as the room list shows it: its name and its members, both already sorted. */
export interface RoomListing {
  /** The room's name as UTF-8 bytes. */
  nameBytes: Uint8Array;
  /** The members' names, sorted. */
  members: readonly string[];
}

/**
 * Encodes the room list `1:<room>[,<user>...]:...` (`1:` when there are no rooms).
 *
 * @example Usage
 * ```ts
 * import { encodeRoomList } from "./codec.ts";
 * const lobby = new TextEncoder().encode("lobby");
 * encodeRoomList([{ nameBytes: lobby, members: ["alice", "bob"] }]); // "1:lobby,alice,bob\n"
 * ```
 */
export function encodeRoomList(rooms: readonly RoomListing[]): Uint8Array {
  const fields: (string | Uint8Array)[] = ["1"];
  for (const room of rooms) {
    const members = room.members.length > 0 ? encoder.encode("," + room.members.join(",")) : null;
    if (members === null) {
      fields.push(room.nameBytes);
      continue;
    }
    const field = new Uint8Array(room.nameBytes.length + members.length);
    field.set(room.nameBytes);
    field.set(members, room.nameBytes.length);
    fields.push(field);
  }
  if (rooms.length === 0) fields.push("");
  return encodeLine(...fields);
}

/**
 * Compares two byte strings in byte order (how room names are sorted on the wire).
 *
 * @example Usage
 * ```ts
 * import { compareBytes } from "./codec.ts";
 * compareBytes(new Uint8Array([1]), new Uint8Array([1, 0])); // -1
 * ```
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
