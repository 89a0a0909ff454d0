/**
 * Text from the network made safe to print on a terminal. Anything a terminal would act on rather
 * than show is written as a visible `\uXXXX` escape (four lower-case hex digits, as in JSON), so a
 * message cannot clear the screen, set the window title, move the cursor, hide what follows, forge
 * a line, or reorder the line it is printed in.
 *
 * Escaped: every C0 control (U+0000–U+001F: ESC, CR, LF, BS, BEL, TAB…) and DEL (U+007F), so no
 * escape sequence can start; the C1 controls (U+0080–U+009F, e.g. U+009B, a one-character CSI);
 * the bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which could
 * reorder the time and sender before a message; the line and paragraph separators (U+2028,
 * U+2029); and lone surrogates. Invalid UTF-8 never gets this far: the client decodes bytes with
 * U+FFFD for each bad sequence. A backslash is left as it is, so `\u001b` typed by a sender looks
 * the same as an escaped ESC: it is shown, never acted on, either way.
 *
 * @module
 */

/** Whether the code point `code` is shown escaped (see the module doc for the list). */
function escaped(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x061c ||
    code === 0x200e || code === 0x200f || (code >= 0x2028 && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069) || (code >= 0xd800 && code <= 0xdfff);
}

/**
 * `text` with every character a terminal would act on written as `\uXXXX`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { terminalSafe } from "./terminal_text.ts";
 * assert.equal(terminalSafe("\x1b[2Jhi\r"), "\\u001b[2Jhi\\u000d");
 * assert.equal(terminalSafe("\u202eevil"), "\\u202eevil");
 * assert.equal(terminalSafe("héllo 👋"), "héllo 👋");
 * ```
 */
export function terminalSafe(text: string): string {
  let out = "";
  let plainFrom = 0;
  // A for-of over a string walks code points: a surrogate pair is one (and not escaped), a lone
  // surrogate is one too (and is).
  let at = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (escaped(code)) {
      out += text.slice(plainFrom, at) + "\\u" + code.toString(16).padStart(4, "0");
      plainFrom = at + char.length;
    }
    at += char.length;
  }
  return plainFrom === 0 ? text : out + text.slice(plainFrom);
}
