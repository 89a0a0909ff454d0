/**
 * The room-name rule of docs/protocol.md (Names): which names a `2:` line may create or join.
 * A name must not pass for another one: no invisible characters (format characters such as
 * zero-width joiners, the soft hyphen, bidirectional overrides, the byte-order mark, tag
 * characters), no code points without an agreed look (private use, unassigned, noncharacters,
 * surrogates), one spelling per look (NFC), and no towers of combining marks. Pure and fast: an
 * ASCII name is checked byte by byte, anything else by one normalization and one regular
 * expression. Only `2:` lines are checked; rooms read from the store keep the names they have.
 *
 * @module
 */

/** The most bytes a room name may have. */
export const MAX_ROOM_NAME_BYTES = 64;
/** The longest run of combining marks (Unicode category M) a room name may hold. */
export const MAX_COMBINING_MARKS = 4;

const COLON = 0x3a;
const COMMA = 0x2c;

// Cc control, Cf format, Co private use, Cn unassigned (noncharacters are Cn too, and named
// again for clarity), Cs surrogates; then a run of more combining marks than allowed.
const FORBIDDEN = new RegExp(
  "[:,\\p{White_Space}\\p{Cc}\\p{Cf}\\p{Co}\\p{Cn}\\p{Cs}\\p{Noncharacter_Code_Point}]" +
    `|\\p{M}{${MAX_COMBINING_MARKS + 1}}`,
  "u",
);

// ignoreBOM: keep a leading U+FEFF, so that it is seen (and refused) rather than stripped.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Whether `name` (already decoded) follows the room-name rule, apart from its byte length.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidRoomName } from "./names.ts";
 * assert.equal(isValidRoomName("café"), true); // U+00E9, composed
 * assert.equal(isValidRoomName("cafe\u0301"), false); // decomposed: not NFC
 * assert.equal(isValidRoomName("lob\u200Bby"), false); // a zero-width space
 * ```
 */
export function isValidRoomName(name: string): boolean {
  return name.length > 0 && !FORBIDDEN.test(name) && name.normalize("NFC") === name;
}

/** Whether every byte is printable ASCII other than `:` and `,` (the common, fast case). */
function isPlainAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b <= 0x20 || b >= 0x7f || b === COLON || b === COMMA) return false;
  }
  return true;
}

/**
 * The room name in `bytes`, or `null` when it is not a valid room name: 1 to 64 bytes of
 * valid UTF-8 that {@linkcode isValidRoomName} accepts.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRoomName } from "./names.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * assert.equal(decodeRoomName(bytes("lobby")), "lobby");
 * assert.equal(decodeRoomName(bytes("日本")), "日本");
 * assert.equal(decodeRoomName(bytes("a b")), null);
 * assert.equal(decodeRoomName(bytes("\uFEFFlobby")), null); // a byte-order mark
 * assert.equal(decodeRoomName(new Uint8Array([0x61, 0x80])), null); // not UTF-8
 * ```
 */
export function decodeRoomName(bytes: Uint8Array): string | null {
  if (bytes.length < 1 || bytes.length > MAX_ROOM_NAME_BYTES) return null;
  if (isPlainAscii(bytes)) return String.fromCharCode(...bytes);
  let name: string;
  try {
    name = utf8.decode(bytes);
  } catch {
    return null;
  }
  return isValidRoomName(name) ? name : null;
}
