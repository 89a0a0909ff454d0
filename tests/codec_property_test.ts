// Property-based tests of the line splitter and the codec (fast-check): any bytes, in any
// chunking, never throw or hang and yield commands, blank lines or LINE_TOO_LONG; splitting does
// not depend on chunking; valid lines round-trip through the encoders and the parser.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type Command,
  encodeLine,
  encodeMessage,
  encodeRoomList,
  parseCommand,
} from "../lib/protocol/codec.ts";
import { LINE_TOO_LONG, LineSplitter } from "../lib/protocol/line_splitter.ts";

const encoder = new TextEncoder();
const RUNS = { numRuns: 300 };

/** Bytes rich in the ones that matter to framing and parsing: LF, CR, ':', digits, ','. */
const interestingByte = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
  { weight: 2, arbitrary: fc.constantFrom(0x0a, 0x0d, 0x3a, 0x2c, 0x20) },
  { weight: 2, arbitrary: fc.integer({ min: 0x30, max: 0x39 }) },
);
const byteStream = fc.array(interestingByte, { maxLength: 400 }).map((a) => new Uint8Array(a));

/** Cuts `bytes` at the given positions (sorted, deduplicated) into chunks. */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const end of at) {
    out.push(bytes.subarray(start, end));
    start = end;
  }
  out.push(bytes.subarray(start));
  return out;
}

type Split = (number[] | "too-long")[];

/** Runs the splitter over the chunks, copying each line (views die on the next push). */
function split(max: number, chunks: Uint8Array[]): Split {
  const splitter = new LineSplitter(max);
  const out: Split = [];
  let steps = 0;
  for (const c of chunks) {
    splitter.push(c);
    for (;;) {
      assert.ok(++steps <= 2 * (c.length + chunks.length) + 2, "the splitter makes progress");
      const line = splitter.next();
      if (line === null) break;
      if (line === LINE_TOO_LONG) {
        out.push("too-long");
        assert.equal(splitter.next(), LINE_TOO_LONG, "overflow is final");
        return out;
      }
      assert.ok(splitter.bufferedBytes <= max);
      out.push([...line]);
    }
  }
  return out;
}

/** The framing rules of docs/protocol.md, Framing, written out plainly, as the reference. */
function referenceSplit(max: number, bytes: Uint8Array): Split {
  const out: Split = [];
  let line: number[] = [];
  for (const b of bytes) {
    if (b === 0x0a) {
      if (line.length > max) return [...out, "too-long"];
      out.push(line.at(-1) === 0x0d ? line.slice(0, -1) : line);
      line = [];
      continue;
    }
    line.push(b);
    if (line.length > max) return [...out, "too-long"]; // more than max buffered with no LF
  }
  return out;
}

const KINDS = new Set([
  ...["login", "bad-login", "rooms", "join", "say", "tell", "invalid"],
  ...["features", "resume", "bad-resume"], // v1.1
]);

/** What the first field says the command must be. */
function checkCommand(line: Uint8Array, command: Command | null): void {
  if (line.length === 0) {
    assert.equal(command, null);
    return;
  }
  assert.ok(command !== null);
  assert.ok(KINDS.has(command.kind));
  const colon = line.indexOf(0x3a);
  const first = String.fromCharCode(...line.subarray(0, colon === -1 ? line.length : colon));
  const expected: Record<string, string[]> = {
    "0": ["login", "bad-login"],
    "1": ["rooms"],
    "2": ["join", "invalid"],
    "3": ["say", "tell", "invalid"],
    "6": ["resume", "bad-resume"], // v1.1
    "8": ["features", "invalid"],
  };
  if (!(first in expected)) {
    assert.deepEqual(command, { kind: "invalid", code: "?", reason: "malformed" });
    return;
  }
  assert.ok(expected[first].includes(command.kind), `${first} -> ${command.kind}`);
  if (command.kind === "invalid") {
    assert.equal(command.code, first);
    assert.ok(["malformed", "bad-name"].includes(command.reason));
  }
}

/** Checks `check` on byte streams cut at up to `maxCuts` places, with line limits of 1 to 80. */
function forStreams(
  maxCuts: number,
  check: (bytes: Uint8Array, cuts: number[], max: number) => void,
): void {
  const property = fc.property(
    byteStream,
    fc.array(fc.nat(), { maxLength: maxCuts }),
    fc.integer({ min: 1, max: 80 }),
    check,
  );
  fc.assert(property, RUNS);
}

Deno.test("property: any bytes in any chunking never throw and yield commands, blanks or too-long", () => {
  forStreams(20, (bytes, cuts, max) => {
    for (const item of split(max, chunk(bytes, cuts))) {
      if (item === "too-long") continue;
      const line = new Uint8Array(item);
      checkCommand(line, parseCommand(line));
    }
  });
});

Deno.test("property: splitting follows the framing rules whatever the chunking", () => {
  forStreams(30, (bytes, cuts, max) => {
    const want = referenceSplit(max, bytes);
    assert.deepEqual(split(max, [bytes]), want);
    assert.deepEqual(split(max, chunk(bytes, cuts)), want);
    assert.deepEqual(split(max, [...bytes].map((b) => new Uint8Array([b]))), want);
  });
});

Deno.test("property: parseCommand of arbitrary lines never throws and classifies by first field", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.tuple(fc.constantFrom("0:", "1:", "2:", "3:0:", "3:1:", "3:2:", "3:", "4:"), byteStream)
          .map(([p, rest]) => new Uint8Array([...encoder.encode(p), ...rest])),
      ),
      (line) => checkCommand(line, parseCommand(line)),
    ),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------------------------
// Round trips of valid lines.

const username = fc.stringMatching(/^[A-Za-z0-9_.-]{1,32}$/);
/** Bytes with none of ':', LF, CR. */
const fieldBytes = (minLength: number, maxLength: number) =>
  fc.uint8Array({ minLength, maxLength }).map((a) =>
    a.map((b) => (b === 0x3a || b === 0x0a || b === 0x0d) ? 0x5f : b)
  );
const roomName = fc.string({ unit: "binary", minLength: 1, maxLength: 20 })
  .filter((s) => {
    const n = encoder.encode(s).length;
    // docs/protocol.md, Names: NFC, no forbidden categories, at most 4 combining marks in a row.
    return n >= 1 && n <= 64 && s.normalize("NFC") === s &&
      !/[\p{White_Space}\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs},:]|\p{M}{5}/u.test(s);
  });
const raw = (line: Uint8Array) => line.subarray(0, line.length - 1); // drop the LF
const plain = (command: Command | null) =>
  JSON.parse(JSON.stringify(command, (_, v) => v instanceof Uint8Array ? [...v] : v));

Deno.test("property: valid login lines parse back to the same name and password", () => {
  fc.assert(
    fc.property(username, fieldBytes(1, 64), (name, password) => {
      const command = parseCommand(raw(encodeLine("0", name, password)));
      assert.deepEqual(plain(command), { kind: "login", username: name, password: [...password] });
    }),
    RUNS,
  );
});

Deno.test("property: valid join lines parse back to the same room and password", () => {
  fc.assert(
    fc.property(roomName, fc.option(fieldBytes(0, 40)), (room, password) => {
      const line = password === null ? encodeLine("2", room) : encodeLine("2", room, password);
      assert.deepEqual(plain(parseCommand(raw(line))), {
        kind: "join",
        room,
        roomBytes: [...encoder.encode(room)],
        password: [...(password ?? [])],
      });
    }),
    RUNS,
  );
});

Deno.test("property: a room name with a forbidden character is bad-name", () => {
  fc.assert(
    fc.property(
      roomName,
      fc.constantFrom(",", " ", "\t", "\u00a0", "\u3000", "\u2028", "\u0000", "\u007f", "\u0085"),
      fc.nat(),
      (room, bad, at) => {
        const i = at % (room.length + 1);
        const name = room.slice(0, i) + bad + room.slice(i);
        assert.deepEqual(parseCommand(raw(encodeLine("2", name))), {
          kind: "invalid",
          code: "2",
          reason: "bad-name",
        });
      },
    ),
    RUNS,
  );
});

Deno.test("property: say lines keep any body byte for byte, and encodeMessage returns it", () => {
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 200 }), (echo, body) => {
      const line = raw(encodeLine("3", echo ? "0" : "1", body));
      const command = parseCommand(line);
      assert.deepEqual(plain(command), { kind: "say", echo, body: [...body] });
      const out = encodeMessage((command as { body: Uint8Array }).body);
      assert.deepEqual([...out], [0x33, 0x3a, ...body, 0x0a]);
    }),
    RUNS,
  );
});

Deno.test("property: tell lines parse back to the same targets (duplicates kept) and body", () => {
  fc.assert(
    fc.property(
      fc.array(username, { minLength: 1, maxLength: 10 }),
      fieldBytes(0, 60),
      (targets, body) => {
        const line = raw(encodeLine("3", "2", ...targets, body));
        assert.deepEqual(plain(parseCommand(line)), { kind: "tell", targets, body: [...body] });
      },
    ),
    RUNS,
  );
});

Deno.test("property: the room list reads back as the rooms and members it was made from", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(roomName, { maxLength: 8 }),
      fc.array(fc.uniqueArray(username, { maxLength: 5 }), { maxLength: 8 }),
      (rooms, memberLists) => {
        const listing = rooms.map((name, i) => ({
          nameBytes: encoder.encode(name),
          members: [...(memberLists[i] ?? [])].sort(),
        }));
        const text = new TextDecoder().decode(encodeRoomList(listing));
        assert.ok(text.startsWith("1:") && text.endsWith("\n"));
        const body = text.slice(2, -1);
        const fields = body === "" ? [] : body.split(":");
        assert.deepEqual(
          fields.map((f) => f.split(",")),
          listing.map((r, i) => [rooms[i], ...r.members]),
        );
      },
    ),
    RUNS,
  );
});
