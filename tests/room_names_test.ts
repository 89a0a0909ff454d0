// Room names that pass for others (issue "Hostile internet, round two", finding 9): every name
// below was accepted as a room distinct from the one it imitates. docs/protocol.md (Names) now
// refuses them with 9:2:bad-name; rooms stored before keep their names.

import assert from "node:assert/strict";
import { parseCommand } from "../lib/protocol/codec.ts";
import { decodeRoomName, isValidRoomName } from "../lib/protocol/names.ts";
import { Rooms } from "../lib/hub/rooms.ts";

const encoder = new TextEncoder();

/** [what, name, valid]: each name as a `2:` line would carry it. */
const TABLE: readonly [string, string, boolean][] = [
  // Valid names.
  ["plain ASCII", "lobby", true],
  ["CJK", "日本", true],
  ["composed café (U+00E9)", "caf\u00e9", true],
  ["an emoji", "\u{1F3B2}dice", true],
  ["an emoji ZWJ-free flag", "\u{1F1EF}\u{1F1F5}", true],
  ["4 combining marks in a row", "x\u0301\u0302\u0303\u0304", true],
  [
    "4 marks, then a letter, then 4 more",
    "x\u0301\u0302\u0303\u0304q\u0301\u0302\u0303\u0304",
    true,
  ],
  ["Devanagari with a vowel sign", "\u0928\u093f", true],
  ["64 bytes", "r".repeat(64), true],
  // Invisible: format characters (Cf).
  ["zero-width space U+200B", "lob\u200Bby", false],
  ["zero-width joiner U+200D", "lobby\u200D", false],
  ["word joiner U+2060", "\u2060lobby", false],
  ["soft hyphen U+00AD", "lob\u00ADby", false],
  ["byte-order mark U+FEFF first", "\uFEFFlobby", false],
  ["byte-order mark U+FEFF inside", "lob\uFEFFby", false],
  ["tag characters (U+E006C U+E006F)", "lobby\u{E006C}\u{E006F}", false],
  ["right-to-left override U+202E", "\u202Eybbol", false],
  ["left-to-right mark U+200E", "lobby\u200E", false],
  ["zero-width non-joiner U+200C", "lo\u200Cbby", false],
  // No agreed look: private use, noncharacters, unassigned.
  ["private use U+E000", "lobby\uE000", false],
  ["private use plane 15 U+F0000", "\u{F0000}", false],
  ["noncharacter U+FDD0", "lobby\uFDD0", false],
  ["noncharacter U+FFFE", "\uFFFElobby", false],
  ["noncharacter U+FFFF", "lobby\uFFFF", false],
  ["noncharacter U+1FFFF", "\u{1FFFF}", false],
  ["unassigned U+0378", "lobby\u0378", false],
  // One look, two spellings: only NFC.
  ["decomposed café (e + U+0301)", "cafe\u0301", false],
  ["Angstrom sign U+212B (NFC: U+00C5)", "\u212B", false],
  // Towers of marks.
  ["5 combining marks in a row", "a\u0301\u0302\u0303\u0304\u0305", false],
  ["31 stacked combining marks", "a" + "\u0301\u0300".repeat(15) + "\u0301", false],
  // The rules that were there before.
  ["empty", "", false],
  ["a comma", "a,b", false],
  ["a space", "a b", false],
  ["no-break space U+00A0", "a\u00a0b", false],
  ["ideographic space U+3000", "a\u3000b", false],
  ["a control character", "a\u0001", false],
  ["65 bytes", "r".repeat(65), false],
];

for (const [what, name, valid] of TABLE) {
  Deno.test(`room names: ${what} is ${valid ? "valid" : "bad-name"}`, () => {
    const command = parseCommand(encoder.encode(`2:${name}`));
    if (valid) {
      assert.equal(command?.kind, "join", JSON.stringify(command));
      assert.equal(command?.kind === "join" ? command.room : undefined, name);
      assert.equal(decodeRoomName(encoder.encode(name)), name);
    } else {
      assert.deepEqual(command, { kind: "invalid", code: "2", reason: "bad-name" });
      assert.equal(decodeRoomName(encoder.encode(name)), null);
    }
  });
}

Deno.test("room names: a password does not change the verdict on the name", () => {
  assert.equal(parseCommand(encoder.encode("2:caf\u00e9:pw"))?.kind, "join");
  assert.deepEqual(parseCommand(encoder.encode("2:lob\u200Bby:pw")), {
    kind: "invalid",
    code: "2",
    reason: "bad-name",
  });
});

Deno.test("room names: invalid UTF-8 is bad-name, and so is a lone surrogate's encoding", () => {
  for (const raw of [[0x61, 0x80], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
    assert.equal(decodeRoomName(new Uint8Array(raw)), null, JSON.stringify(raw));
  }
  assert.equal(isValidRoomName("a\uD800"), false);
  assert.equal(decodeRoomName(encoder.encode("a:b")), null, "a ':' ends the name on the wire");
});

Deno.test("room names: rooms stored before the rule keep their names", () => {
  // The store's rooms are loaded as they are: no re-validation on the way in.
  const rooms = new Rooms();
  rooms.load({ name: "cafe\u0301", passwordHash: null });
  rooms.load({ name: "lob\u200Bby", passwordHash: null });
  assert.equal(rooms.size, 2);
  assert.ok(rooms.get("lob\u200Bby") !== undefined);
  assert.equal(new TextDecoder().decode(rooms.list()), "1:cafe\u0301:lob\u200Bby\n");
});
