// Table-driven unit tests of lib/protocol/codec.ts: one case or more per rule of docs/protocol.md
// (sections Framing, Names, Client lines, Server lines, Errors).
import assert from "node:assert/strict";
import {
  compareBytes,
  decodeRoomName,
  encodeError,
  encodeLine,
  encodeMessage,
  encodeRoomList,
  isValidUsername,
  isValidUserPassword,
  LOGGED_OUT,
  parseCommand,
} from "../lib/protocol/codec.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A line as bytes: strings are UTF-8, number arrays are raw bytes, arrays of both are joined. */
type Bytes = string | number[] | (string | number[])[];
function bytes(value: Bytes): Uint8Array {
  if (typeof value === "string") return encoder.encode(value);
  if (value.every((v) => typeof v === "number")) return new Uint8Array(value as number[]);
  const parts = (value as (string | number[])[]).map((v) =>
    typeof v === "string" ? [...encoder.encode(v)] : v
  );
  return new Uint8Array(parts.flat());
}

/** A parsed command with every byte field turned into a plain array, for deepEqual. */
function plain(command: unknown): unknown {
  if (command === null || typeof command !== "object") return command;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(command)) {
    out[key] = value instanceof Uint8Array ? [...value] : value;
  }
  return out;
}

const b = (value: Bytes) => [...bytes(value)];

interface Case {
  rule: string;
  line: Bytes;
  want: unknown;
}

const malformed = (code: string) => ({ kind: "invalid", code, reason: "malformed" });
const badName = { kind: "invalid", code: "2", reason: "bad-name" };
const badLogin = { kind: "bad-login" };
const login = (username: string, password: Bytes) => ({
  kind: "login",
  username,
  password: b(password),
});
const join = (room: string, password: Bytes = "") => ({
  kind: "join",
  room,
  roomBytes: b(room),
  password: b(password),
});
const say = (echo: boolean, body: Bytes) => ({ kind: "say", echo, body: b(body) });
const tell = (targets: string[], body: Bytes) => ({ kind: "tell", targets, body: b(body) });

const CASES: Case[] = [
  // Framing
  { rule: "a blank line is ignored (null)", line: "", want: null },

  // 0: log in
  {
    rule: "0:<username>:<password> logs in",
    line: "0:alice:wonderland",
    want: login("alice", "wonderland"),
  },
  {
    rule: "username may use A-Z a-z 0-9 _ . -",
    line: "0:A-z_0.9:pw",
    want: login("A-z_0.9", "pw"),
  },
  {
    rule: "username of 32 characters",
    line: `0:${"u".repeat(32)}:pw`,
    want: login("u".repeat(32), "pw"),
  },
  {
    rule: "username of 33 characters is a bad login",
    line: `0:${"u".repeat(33)}:pw`,
    want: badLogin,
  },
  { rule: "empty username is a bad login", line: "0::pw", want: badLogin },
  { rule: "username with a space", line: "0:al ice:pw", want: badLogin },
  { rule: "username with a comma", line: "0:al,ice:pw", want: badLogin },
  { rule: "username with a slash", line: "0:al/ice:pw", want: badLogin },
  { rule: "username with a non-ASCII letter", line: "0:alicé:pw", want: badLogin },
  { rule: "username with a leading BOM is not the user", line: "0:\uFEFFalice:pw", want: badLogin },
  { rule: "username with invalid UTF-8", line: ["0:al", [0xff], "ice:pw"], want: badLogin },
  { rule: "password with ':' is a bad login", line: "0:alice:pw:x", want: badLogin },
  { rule: "empty password is a bad login", line: "0:alice:", want: badLogin },
  { rule: "no password field is a bad login", line: "0:alice", want: badLogin },
  { rule: "bare 0 is a bad login", line: "0", want: badLogin },
  { rule: "0: alone is a bad login", line: "0:", want: badLogin },
  {
    rule: "password of 1,024 bytes",
    line: `0:alice:${"p".repeat(1024)}`,
    want: login("alice", "p".repeat(1024)),
  },
  {
    rule: "password of 1,025 bytes is a bad login",
    line: `0:alice:${"p".repeat(1025)}`,
    want: badLogin,
  },
  {
    rule: "password with a CR (a line break) is a bad login",
    line: "0:alice:p\rw",
    want: badLogin,
  },
  {
    rule: "password bytes are kept as sent (non-UTF-8)",
    line: ["0:alice:", [0xff, 0x00, 0x80]],
    want: login("alice", [0xff, 0x00, 0x80]),
  },
  {
    rule: "password may hold spaces and Unicode",
    line: "0:alice:a b ü",
    want: login("alice", "a b ü"),
  },

  // 1: list rooms
  { rule: "1 lists rooms", line: "1", want: { kind: "rooms" } },
  { rule: "1: lists rooms", line: "1:", want: { kind: "rooms" } },
  {
    rule: "1:<anything> lists rooms (field ignored)",
    line: "1:password:x,y",
    want: { kind: "rooms" },
  },

  // 2: join
  { rule: "2:<room> joins a public room", line: "2:lobby", want: join("lobby") },
  {
    rule: "2:<room>:<password> joins with a password",
    line: "2:lobby:s3cret",
    want: join("lobby", "s3cret"),
  },
  { rule: "2:<room>: is a public join", line: "2:lobby:", want: join("lobby") },
  {
    rule: "room password of 1,024 bytes",
    line: `2:r:${"p".repeat(1024)}`,
    want: join("r", "p".repeat(1024)),
  },
  {
    rule: "room password of 1,025 bytes is malformed",
    line: `2:r:${"p".repeat(1025)}`,
    want: malformed("2"),
  },
  { rule: "room password with ':' is malformed", line: "2:r:a:b", want: malformed("2") },
  {
    rule: "room password bytes kept (non-UTF-8)",
    line: ["2:r:", [0xfe, 0x20]],
    want: join("r", [0xfe, 0x20]),
  },
  { rule: "bare 2 is malformed", line: "2", want: malformed("2") },
  { rule: "empty room name (2:) is bad-name", line: "2:", want: badName },
  { rule: "empty room name with a password is bad-name", line: "2::pw", want: badName },
  { rule: "room name with a comma is bad-name", line: "2:a,b", want: badName },
  { rule: "room name with a space is bad-name", line: "2:a b", want: badName },
  { rule: "room name with a tab is bad-name", line: "2:a\tb", want: badName },
  { rule: "room name with U+00A0 (no-break space) is bad-name", line: "2:a\u00a0b", want: badName },
  {
    rule: "room name with U+3000 (ideographic space) is bad-name",
    line: "2:a\u3000b",
    want: badName,
  },
  { rule: "room name with U+2028 (line separator) is bad-name", line: "2:a\u2028b", want: badName },
  { rule: "room name with U+0085 (NEL) is bad-name", line: "2:a\u0085b", want: badName },
  { rule: "room name with NUL is bad-name", line: "2:a\u0000b", want: badName },
  { rule: "room name with DEL is bad-name", line: "2:a\u007fb", want: badName },
  { rule: "room name with ESC is bad-name", line: "2:a\u001bb", want: badName },
  { rule: "room name with a CR is bad-name", line: "2:a\rb", want: badName },
  { rule: "room name with invalid UTF-8 is bad-name", line: ["2:a", [0xff], "b"], want: badName },
  {
    rule: "room name with a truncated UTF-8 sequence is bad-name",
    line: ["2:a", [0xc3]],
    want: badName,
  },
  {
    rule: "room name with an overlong encoding is bad-name",
    line: ["2:", [0xc0, 0xaf]],
    want: badName,
  },
  {
    rule: "room name with an encoded surrogate is bad-name",
    line: ["2:", [0xed, 0xa0, 0x80]],
    want: badName,
  },
  { rule: "room name of 65 bytes is bad-name", line: `2:${"r".repeat(65)}`, want: badName },
  {
    rule: "room name of 64 bytes is fine",
    line: `2:${"r".repeat(64)}`,
    want: join("r".repeat(64)),
  },
  {
    rule: "room name of 64 bytes, multibyte, is fine",
    line: `2:${"é".repeat(32)}`,
    want: join("é".repeat(32)),
  },
  {
    rule: "room name of 65 bytes, multibyte, is bad-name",
    line: `2:x${"é".repeat(32)}`,
    want: badName,
  },
  { rule: "multibyte room name is fine", line: "2:café☕日本", want: join("café☕日本") },
  { rule: "room name with punctuation is fine", line: "2:#r.oo-m_!", want: join("#r.oo-m_!") },
  {
    rule: "room name starting with a BOM is bad-name (a format character)",
    line: "2:\uFEFFlobby",
    want: badName,
  },

  // 3: send
  {
    rule: "3:0:<message> says to the room, me included",
    line: "3:0:hello",
    want: say(true, "hello"),
  },
  { rule: "3:1:<message> says to the room, not me", line: "3:1:hello", want: say(false, "hello") },
  { rule: "3:0: empty body allowed", line: "3:0:", want: say(true, "") },
  { rule: "3:1: empty body allowed", line: "3:1:", want: say(false, "") },
  { rule: "body keeps ':' byte for byte", line: "3:0:a:b::c:", want: say(true, "a:b::c:") },
  {
    rule: "body keeps spaces and trailing white space",
    line: "3:1:  hi  ",
    want: say(false, "  hi  "),
  },
  {
    rule: "body keeps non-UTF-8 bytes",
    line: ["3:0:", [0xff, 0x00, 0xc3, 0x28, 0x0d]],
    want: say(true, [0xff, 0x00, 0xc3, 0x28, 0x0d]),
  },
  { rule: "3:2 to one user", line: "3:2:bob:aGk=", want: tell(["bob"], "aGk=") },
  {
    rule: "3:2 to several users, as listed, duplicates kept",
    line: "3:2:bob:carol:bob:hi",
    want: tell(["bob", "carol", "bob"], "hi"),
  },
  {
    rule: "3:2 body is the text after the LAST ':'",
    line: "3:2:bob:carol:x",
    want: tell(["bob", "carol"], "x"),
  },
  { rule: "3:2 empty body allowed", line: "3:2:bob:", want: tell(["bob"], "") },
  {
    rule: "3:2 body keeps non-UTF-8 bytes",
    line: ["3:2:bob:", [0xfe, 0xff]],
    want: tell(["bob"], [0xfe, 0xff]),
  },
  {
    rule: "3:2 target that is not a valid name is still a target",
    line: "3:2:no body:hi",
    want: tell(["no body"], "hi"),
  },
  {
    rule: "3:2 target with a BOM is not the user",
    line: "3:2:\uFEFFbob:hi",
    want: tell(["\uFEFFbob"], "hi"),
  },
  { rule: "3:2:hi has no targets: malformed", line: "3:2:hi", want: malformed("3") },
  { rule: "3:2::hi has an empty target: malformed", line: "3:2::hi", want: malformed("3") },
  {
    rule: "3:2 with an empty target in the middle: malformed",
    line: "3:2:bob::hi",
    want: malformed("3"),
  },
  { rule: "3:2: (no targets, empty body): malformed", line: "3:2:", want: malformed("3") },
  { rule: "3:2 with no ':' after the mode: malformed", line: "3:2", want: malformed("3") },
  { rule: "bare 3 is malformed", line: "3", want: malformed("3") },
  { rule: "3: is malformed", line: "3:", want: malformed("3") },
  { rule: "3:0 without ':' is malformed", line: "3:0", want: malformed("3") },
  { rule: "unknown mode 3:3 is malformed", line: "3:3:hi", want: malformed("3") },
  { rule: "two-digit mode 3:00 is malformed", line: "3:00:hi", want: malformed("3") },
  { rule: "empty mode 3:: is malformed", line: "3::hi", want: malformed("3") },

  // Unknown first field: 9:?:malformed
  { rule: "code 4 is unknown", line: "4", want: malformed("?") },
  { rule: "code 4 with fields is unknown", line: "4:x", want: malformed("?") },
  { rule: "code 9 is unknown", line: "9:?:malformed", want: malformed("?") },
  { rule: "code 10 is unknown", line: "10:x", want: malformed("?") },
  { rule: "a word is unknown", line: "hello", want: malformed("?") },
  { rule: "an empty first field is unknown", line: ":x", want: malformed("?") },
  { rule: "a known digit followed by more is unknown (1x)", line: "1x", want: malformed("?") },
  { rule: "00 is unknown", line: "00:alice:pw", want: malformed("?") },
  { rule: "a space before the code is unknown", line: " 1", want: malformed("?") },
  { rule: "a lone CR is unknown", line: "\r", want: malformed("?") },
  { rule: "a non-UTF-8 first byte is unknown", line: [0xff, 0x3a], want: malformed("?") },
  { rule: "a NUL is unknown", line: [0x00], want: malformed("?") },
];

for (const c of CASES) {
  Deno.test(`codec parse: ${c.rule}`, () => {
    assert.deepEqual(plain(parseCommand(bytes(c.line))), c.want);
  });
}

Deno.test("codec parse: message bodies are views of the line, not copies", () => {
  const line = encoder.encode("3:0:hello");
  const command = parseCommand(line);
  assert.ok(command !== null && command.kind === "say");
  assert.equal(command.body.buffer, line.buffer);
  assert.equal(command.body.byteOffset, 4);
});

// ---------------------------------------------------------------------------------------------
// Name validators

Deno.test("codec names: isValidUsername per the username rule", () => {
  const table: [string, boolean][] = [
    ["a", true],
    ["Z9_.-", true],
    ["x".repeat(32), true],
    ["", false],
    ["x".repeat(33), false],
    ["a b", false],
    ["a:b", false],
    ["a,b", false],
    ["é", false],
    ["\uFEFFa", false],
  ];
  for (const [name, ok] of table) assert.equal(isValidUsername(name), ok, JSON.stringify(name));
});

Deno.test("codec names: isValidUserPassword per the password rule", () => {
  const table: [Uint8Array, boolean][] = [
    [bytes("p"), true],
    [bytes("p".repeat(1024)), true],
    [bytes([0xff, 0x00]), true],
    [new Uint8Array(0), false],
    [bytes("p".repeat(1025)), false],
    [bytes("a:b"), false],
    [bytes("a\nb"), false],
    [bytes("a\rb"), false],
  ];
  for (const [pw, ok] of table) assert.equal(isValidUserPassword(pw), ok, decoder.decode(pw));
});

Deno.test("codec names: decodeRoomName accepts valid names and rejects the rest", () => {
  assert.equal(decodeRoomName(bytes("lobby")), "lobby");
  assert.equal(decodeRoomName(bytes("日本")), "日本");
  assert.equal(decodeRoomName(bytes("\uFEFFx")), null, "a byte-order mark is a format character");
  for (const bad of ["", "a:b", "a,b", "a b", "a\u3000b", "a\u00a0b", "a\u0001", "r".repeat(65)]) {
    assert.equal(decodeRoomName(bytes(bad)), null, JSON.stringify(bad));
  }
  assert.equal(decodeRoomName(bytes([0x61, 0x80])), null);
});

// ---------------------------------------------------------------------------------------------
// Encoders

const text = (line: Uint8Array) => decoder.decode(line);

Deno.test("codec encode: encodeLine joins fields with ':' and ends with LF", () => {
  const table: [(string | Uint8Array)[], number[]][] = [
    [["4", "lobby", "bob"], b("4:lobby:bob\n")],
    [["0", "17"], b("0:17\n")],
    [["1", ""], b("1:\n")],
    [["x"], b("x\n")],
    [["5", bytes([0xff, 0x3a]), "u"], b(["5:", [0xff, 0x3a], ":u\n"])],
    [["2", "日本", "a,b"], b("2:日本:a,b\n")],
  ];
  for (const [fields, want] of table) assert.deepEqual([...encodeLine(...fields)], want);
});

Deno.test("codec encode: LOGGED_OUT is 0:-1", () => {
  assert.equal(text(LOGGED_OUT), "0:-1\n");
});

Deno.test("codec encode: encodeMessage without a sender is 3:<body>, bytes unchanged", () => {
  assert.equal(text(encodeMessage(bytes("hi"))), "3:hi\n");
  assert.equal(text(encodeMessage(new Uint8Array(0))), "3:\n");
  assert.equal(text(encodeMessage(bytes("a:b:"))), "3:a:b:\n");
  const raw = [0xff, 0x00, 0x0d, 0xc3];
  assert.deepEqual([...encodeMessage(bytes(raw))], [0x33, 0x3a, ...raw, 0x0a]);
});

Deno.test("codec encode: encodeMessage with a sender is 3:<sender>:<body>", () => {
  assert.equal(text(encodeMessage(bytes("hi"), bytes("alice"))), "3:alice:hi\n");
  assert.equal(text(encodeMessage(new Uint8Array(0), bytes("alice"))), "3:alice:\n");
  const raw = [0xfe, 0x3a];
  assert.deepEqual([...encodeMessage(bytes(raw), bytes("bob"))], [...b("3:bob:"), ...raw, 0x0a]);
});

Deno.test("codec encode: encodeMessage copies the body (the sender's buffer may be reused)", () => {
  const body = bytes("hi");
  const line = encodeMessage(body);
  body[0] = 0x78;
  assert.equal(text(line), "3:hi\n");
});

Deno.test("codec encode: encodeError is 9:<code>:<reason>[:<detail>]", () => {
  assert.equal(text(encodeError("?", "malformed")), "9:?:malformed\n");
  assert.equal(text(encodeError("?", "too-long")), "9:?:too-long\n");
  assert.equal(text(encodeError("2", "bad-name")), "9:2:bad-name\n");
  assert.equal(text(encodeError("2", "room-password")), "9:2:room-password\n");
  assert.equal(text(encodeError("3", "not-online", "carol,dave")), "9:3:not-online:carol,dave\n");
  assert.equal(text(encodeError("3", "too-many-targets")), "9:3:too-many-targets\n");
  assert.equal(text(encodeError("1", "rate-limited")), "9:1:rate-limited\n");
});

Deno.test("codec encode: encodeRoomList, with members, empty rooms, and no rooms", () => {
  const table: [{ name: string; members: string[] }[], string][] = [
    [[], "1:\n"],
    [[{ name: "r4", members: [] }], "1:r4\n"],
    [[{ name: "lobby", members: ["alice", "bob"] }], "1:lobby,alice,bob\n"],
    [
      [{ name: "a", members: ["x"] }, { name: "b", members: [] }, {
        name: "c",
        members: ["y", "z"],
      }],
      "1:a,x:b:c,y,z\n",
    ],
    [[{ name: "日本", members: ["u"] }], "1:日本,u\n"],
  ];
  for (const [rooms, want] of table) {
    const listing = rooms.map((r) => ({ nameBytes: bytes(r.name), members: r.members }));
    assert.equal(text(encodeRoomList(listing)), want);
  }
});

Deno.test("codec encode: compareBytes orders by bytes, not by UTF-16 code units", () => {
  // U+FF61 is EF BD A1 in UTF-8; U+1F600 is F0 9F 98 80 but D83D DE00 in UTF-16. In UTF-16 the
  // emoji sorts first (D83D < FF61); in byte order it sorts last (F0 > EF).
  const emoji = "\u{1F600}";
  const halfwidth = "\uFF61";
  assert.ok(emoji < halfwidth); // JavaScript's own (UTF-16) order
  assert.equal(compareBytes(bytes(emoji), bytes(halfwidth)), 1);
  assert.equal(compareBytes(bytes(halfwidth), bytes(emoji)), -1);
  const table: [Bytes, Bytes, number][] = [
    ["a", "a", 0],
    ["a", "b", -1],
    ["b", "a", 1],
    ["a", "ab", -1],
    ["ab", "a", 1],
    ["", "", 0],
    ["", "a", -1],
    ["B", "a", -1],
    [[0x7f], [0x80], -1],
    [[0xff], [0x00, 0x00], 1],
  ];
  for (const [x, y, want] of table) {
    assert.equal(
      compareBytes(bytes(x), bytes(y)),
      want,
      `${JSON.stringify(x)} ${JSON.stringify(y)}`,
    );
  }
  const names = ["b", emoji, "a", halfwidth, "B", "é"];
  const sorted = names.map(bytes).sort(compareBytes).map((n) => decoder.decode(n));
  assert.deepEqual(sorted, ["B", "a", "b", "é", halfwidth, emoji]);
});
