/**
 * The lines a client sends, as bytes ready to write (LF included), checked before they go: a line
 * feed would split a message into two commands, and a `:` would end a direct message early.
 *
 * @module
 */

const encoder = new TextEncoder();
const LF = 0x0a;
const COLON = 0x3a;

function bytesOf(text: string | Uint8Array): Uint8Array {
  return typeof text === "string" ? encoder.encode(text) : text;
}

function checkBody(text: string | Uint8Array, allowColon: boolean): Uint8Array {
  const bytes = bytesOf(text);
  if (bytes.includes(LF)) throw new TypeError("a message cannot contain a line feed");
  if (!allowColon && bytes.includes(COLON)) {
    throw new TypeError("a direct message cannot contain ':' (encode it, e.g. as base64)");
  }
  return bytes;
}

/** `head`, then `body` (bytes as given), then LF. */
function line(head: string, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const start = encoder.encode(head);
  const out = new Uint8Array(start.length + body.length + 1);
  out.set(start);
  out.set(body, start.length);
  out[out.length - 1] = LF;
  return out;
}

/**
 * `0:<user>:<password>`: log in.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { loginLine } from "./commands.ts";
 * assert.equal(new TextDecoder().decode(loginLine("alice", "pw")), "0:alice:pw\n");
 * ```
 */
export function loginLine(username: string, password: string | Uint8Array): Uint8Array {
  return line(`0:${username}:`, bytesOf(password));
}

/** `1`: list the rooms. */
export const ROOMS_LINE: Uint8Array = line("1");

/**
 * `2:<room>[:<password>]`: join or create a room.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinLine } from "./commands.ts";
 * const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
 * assert.equal(text(joinLine("lobby", "")), "2:lobby\n");
 * assert.equal(text(joinLine("poker", "s3cret")), "2:poker:s3cret\n");
 * ```
 */
export function joinLine(room: string, password: string | Uint8Array): Uint8Array {
  const pw = bytesOf(password);
  return pw.length === 0 ? line(`2:${room}`) : line(`2:${room}:`, pw);
}

/**
 * `3:1:<text>` to the others in the room, or `3:0:<text>` (echo) to everyone, the sender too.
 * Throws a TypeError if the text holds a line feed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sayLine } from "./commands.ts";
 * assert.equal(new TextDecoder().decode(sayLine("a:b", true)), "3:0:a:b\n");
 * assert.throws(() => sayLine("two\nlines", false), TypeError);
 * ```
 */
export function sayLine(text: string | Uint8Array, echo: boolean): Uint8Array {
  return line(echo ? "3:0:" : "3:1:", checkBody(text, true));
}

/**
 * `3:2:<user>:<user>…:<text>` to users wherever they are. Throws a TypeError with no users, a
 * user name that is empty or holds `:` or a line feed, or text that holds `:` or a line feed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { tellLine } from "./commands.ts";
 * assert.equal(new TextDecoder().decode(tellLine(["bob", "carol"], "hi")), "3:2:bob:carol:hi\n");
 * assert.throws(() => tellLine(["bob"], "psst: later"), TypeError);
 * assert.throws(() => tellLine([], "hi"), TypeError);
 * ```
 */
export function tellLine(users: string[], text: string | Uint8Array): Uint8Array {
  if (users.length === 0) throw new TypeError("tell needs at least one user");
  for (const user of users) {
    if (user === "" || /[:\n]/.test(user)) throw new TypeError(`not a username: "${user}"`);
  }
  return line(`3:2:${users.join(":")}:`, checkBody(text, false));
}

/**
 * `6:<user>:<token>`: log in with a resume token instead of the password.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { resumeLine } from "./commands.ts";
 * assert.equal(new TextDecoder().decode(resumeLine("alice", "abcdefgh12345678")), "6:alice:abcdefgh12345678\n");
 * ```
 */
export function resumeLine(username: string, token: string): Uint8Array {
  return line(`6:${username}:${token}`);
}

/** `8:from,why,resume`: the v1.1 features the client reads (docs/protocol.md). */
export const FEATURES_LINE: Uint8Array = line("8:from,why,resume");
