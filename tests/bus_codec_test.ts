import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BusFrameError,
  decodeDeliveries,
  encodeDirect,
  encodeRoomRun,
  formatPresence,
  parsePresence,
  type PresenceEvent,
} from "../lib/cluster/bus_codec.ts";
import { bytes as concat } from "./helpers.ts";

const encoder = new TextEncoder();

type Record =
  | { kind: "room"; room: string; chunk: Uint8Array; lines: number }
  | { kind: "direct"; users: string[]; line: Uint8Array };

function decodeAll(payload: Uint8Array): Record[] {
  const out: Record[] = [];
  decodeDeliveries(payload, {
    room: (room, chunk, lines) => out.push({ kind: "room", room, chunk: chunk.slice(), lines }),
    direct: (users, line) => out.push({ kind: "direct", users, line: line.slice() }),
  });
  return out;
}

const username = fc.stringMatching(/^[A-Za-z0-9_.-]{1,32}$/);
const roomName = fc.string({ minLength: 1, maxLength: 20, unit: "grapheme" })
  .filter((s) => !/[\s\p{Cc},:]/u.test(s) && encoder.encode(s).length <= 64);
const bytes = fc.uint8Array({ maxLength: 300 });
const record: fc.Arbitrary<Record> = fc.oneof(
  fc.record({
    kind: fc.constant("room" as const),
    room: roomName,
    chunk: bytes,
    lines: fc.nat({ max: 0xffff_ffff }),
  }),
  fc.record({
    kind: fc.constant("direct" as const),
    users: fc.array(username, { minLength: 1, maxLength: 5 }),
    line: bytes,
  }),
);

function encodeRecord(r: Record): Uint8Array {
  return r.kind === "room"
    ? encodeRoomRun(encoder.encode(r.room), r.chunk, r.lines)
    : encodeDirect(r.users, r.line);
}

Deno.test("bus codec: any sequence of delivery records comes back as it went, bytes untouched", () => {
  fc.assert(
    fc.property(fc.array(record, { maxLength: 8 }), (records) => {
      assert.deepEqual(
        decodeAll(concat(...records.map(encodeRecord))),
        records.map((r) => ({ ...r })),
      );
    }),
    { numRuns: 300 },
  );
});

Deno.test("bus codec: every cut-short payload throws BusFrameError, never reads past its end", () => {
  fc.assert(
    fc.property(fc.array(record, { minLength: 1, maxLength: 4 }), fc.nat(), (records, cut) => {
      const payload = concat(...records.map(encodeRecord));
      const at = cut % payload.length; // strictly shorter
      const shortened = payload.slice(0, at);
      const whole = new Set<number>();
      let end = 0;
      for (const r of records) whole.add(end += encodeRecord(r).length);
      if (at === 0 || whole.has(at)) {
        // A cut at a record boundary is a shorter, valid payload.
        assert.doesNotThrow(() => decodeAll(shortened));
      } else {
        assert.throws(() => decodeAll(shortened), BusFrameError);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("bus codec: an unknown record kind throws, after handing on the records before it", () => {
  const seen: string[] = [];
  const payload = concat(encodeDirect(["bob"], encoder.encode("3:x\n")), [9]);
  assert.throws(
    () =>
      decodeDeliveries(payload, {
        room: () => seen.push("room"),
        direct: (users) => seen.push(users.join()),
      }),
    /unknown delivery record kind 9/,
  );
  assert.deepEqual(seen, ["bob"]);
});

Deno.test("bus codec: presence events round-trip through text", () => {
  const events: PresenceEvent[] = [
    {
      kind: "claim",
      user: "alice",
      fence: 1795543175272838,
      node: "n-1",
      request: 7,
      prevNode: "",
      prevFence: 0,
      prevAlive: false,
    },
    {
      kind: "claim",
      user: "a.b",
      fence: 2,
      node: "n2",
      request: 1,
      prevNode: "n-1",
      prevFence: 1,
      prevAlive: true,
    },
    { kind: "end", user: "alice", fence: 17, node: "n1" },
    { kind: "down", node: "host-123" },
    { kind: "hello", node: "n1", incarnation: "00ff" },
    {
      kind: "join",
      user: "bob",
      fence: 3,
      node: "n1",
      room: "caf\u00e9-\u{1f600}",
      roomPasswordHash: "scrypt$15$8$1$c2FsdA$aGFzaA",
    },
    { kind: "join", user: "bob", fence: 3, node: "n1", room: "-", roomPasswordHash: null },
    { kind: "snapshot", node: "n1", incarnation: "ab", watermark: 0, sessions: [] },
    {
      kind: "snapshot",
      node: "n1",
      incarnation: "ab",
      watermark: 1795543175272838,
      sessions: [
        { user: "bob", fence: 3, room: null, roomPasswordHash: null },
        { user: "carol", fence: 4, room: "lobby", roomPasswordHash: null },
        { user: "dave", fence: 5, room: "vip", roomPasswordHash: "scrypt$x" },
      ],
    },
  ];
  for (const event of events) assert.deepEqual(parsePresence(formatPresence(event)), event);
});

Deno.test("bus codec: presence text a node did not write is refused", () => {
  for (
    const text of [
      "",
      "nonsense",
      "end\talice\t17",
      "end\talice\tseventeen\tn1",
      "end\talice\t-1\tn1",
      "claim\ta\t1\tn\t1\t\t0",
      "snap\tn1\tab\nbob\t3",
      "down",
    ]
  ) {
    assert.throws(() => parsePresence(text), BusFrameError, JSON.stringify(text));
  }
});
