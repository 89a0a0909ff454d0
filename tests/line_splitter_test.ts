// Unit tests of lib/protocol/line_splitter.ts: framing as docs/protocol.md, Framing, describes it.
import assert from "node:assert/strict";
import { LINE_TOO_LONG, LineSplitter, type SplitResult } from "../lib/protocol/line_splitter.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A result as text, for readable assertions: lines as strings, the overflow as "<too-long>". */
function show(result: SplitResult): string | null {
  if (result === null) return null;
  if (result === LINE_TOO_LONG) return "<too-long>";
  return decoder.decode(result);
}

/** Pushes each chunk, collecting every result until `next` returns null (or overflows). */
function feed(splitter: LineSplitter, chunks: (string | Uint8Array)[]): string[] {
  const out: string[] = [];
  for (const chunk of chunks) {
    splitter.push(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
    for (;;) {
      const result = splitter.next();
      if (result === null) break;
      out.push(show(result)!);
      if (result === LINE_TOO_LONG) return out;
    }
  }
  return out;
}

Deno.test("line splitter: several lines inside one chunk", () => {
  assert.deepEqual(feed(new LineSplitter(100), ["0:alice:pw\n2:lobby\n3:0:hi\n"]), [
    "0:alice:pw",
    "2:lobby",
    "3:0:hi",
  ]);
});

Deno.test("line splitter: a line spanning chunks is joined, and an unfinished tail waits", () => {
  const splitter = new LineSplitter(100);
  assert.deepEqual(feed(splitter, ["2:lo", "bb", "y\n3:0:", "hi"]), ["2:lobby"]);
  assert.equal(splitter.bufferedBytes, "3:0:hi".length);
  assert.deepEqual(feed(splitter, ["\n"]), ["3:0:hi"]);
  assert.equal(splitter.bufferedBytes, 0);
});

Deno.test("line splitter: byte-at-a-time feeding gives the same lines", () => {
  const text = "0:alice:pw\r\n\n2:lobby\n3:1:a\rb\r\n";
  const bytes = encoder.encode(text);
  const chunks = [...bytes].map((b) => new Uint8Array([b]));
  const splitter = new LineSplitter(100);
  assert.deepEqual(feed(splitter, chunks), ["0:alice:pw", "", "2:lobby", "3:1:a\rb"]);
  assert.deepEqual(feed(new LineSplitter(100), [text]), ["0:alice:pw", "", "2:lobby", "3:1:a\rb"]);
});

Deno.test("line splitter: a CR just before the LF is dropped, in one chunk and across chunks", () => {
  assert.deepEqual(feed(new LineSplitter(100), ["3:0:hi\r\n"]), ["3:0:hi"]);
  assert.deepEqual(feed(new LineSplitter(100), ["3:0:hi\r", "\n"]), ["3:0:hi"]);
  assert.deepEqual(feed(new LineSplitter(100), ["3:0:h", "i\r\n"]), ["3:0:hi"]);
  // Only one CR is dropped: "\r\r\n" leaves one CR in the line.
  assert.deepEqual(feed(new LineSplitter(100), ["a\r\r\n"]), ["a\r"]);
  assert.deepEqual(feed(new LineSplitter(100), ["\r\n"]), [""]);
});

Deno.test("line splitter: a lone CR anywhere else is kept", () => {
  assert.deepEqual(feed(new LineSplitter(100), ["\ra\rb\r\n"]), ["\ra\rb"]);
  assert.deepEqual(feed(new LineSplitter(100), ["a\r", "b\n"]), ["a\rb"]);
  // A CR at the end of a chunk whose line never ends is held, not dropped.
  const splitter = new LineSplitter(100);
  assert.deepEqual(feed(splitter, ["x\r"]), []);
  assert.equal(splitter.bufferedBytes, 2);
});

Deno.test("line splitter: blank lines come back as empty lines", () => {
  const lines = feed(new LineSplitter(100), ["\n\n1\n", "\n"]);
  assert.deepEqual(lines, ["", "", "1", ""]);
});

Deno.test("line splitter: bytes are returned unchanged (no decoding)", () => {
  const line = new Uint8Array([0x33, 0x3a, 0x30, 0x3a, 0xff, 0x00, 0xc3, 0x28, 0x0a]);
  const splitter = new LineSplitter(100);
  splitter.push(line);
  assert.deepEqual(splitter.next(), line.subarray(0, 8));
  assert.equal(splitter.next(), null);
});

Deno.test("line splitter: a line of exactly the limit passes, in one chunk and spanning chunks", () => {
  const max = 8;
  const exact = "x".repeat(max);
  assert.deepEqual(feed(new LineSplitter(max), [exact + "\n"]), [exact]);
  assert.deepEqual(feed(new LineSplitter(max), [exact.slice(0, 3), exact.slice(3), "\n"]), [exact]);
  // Exactly the limit with the CR counted: 7 bytes and a CR.
  assert.deepEqual(feed(new LineSplitter(max), ["x".repeat(max - 1) + "\r\n"]), [
    "x".repeat(max - 1),
  ]);
  // A full buffer of exactly the limit, with no LF yet, is not an overflow.
  const splitter = new LineSplitter(max);
  assert.deepEqual(feed(splitter, [exact]), []);
  assert.equal(splitter.bufferedBytes, max);
  assert.deepEqual(feed(splitter, ["\n"]), [exact]);
});

Deno.test("line splitter: one byte over the limit is too long, in one chunk and across chunks", () => {
  const max = 8;
  const over = "x".repeat(max + 1);
  assert.deepEqual(feed(new LineSplitter(max), [over + "\n"]), ["<too-long>"]);
  assert.deepEqual(feed(new LineSplitter(max), [over.slice(0, 4), over.slice(4) + "\n"]), [
    "<too-long>",
  ]);
});

Deno.test("line splitter: the limit counts the CR before the LF", () => {
  const max = 8;
  // 8 bytes and a CR: 9 bytes before the LF.
  assert.deepEqual(feed(new LineSplitter(max), ["x".repeat(max) + "\r\n"]), ["<too-long>"]);
  assert.deepEqual(feed(new LineSplitter(max), ["x".repeat(max), "\r\n"]), ["<too-long>"]);
});

Deno.test("line splitter: fires as soon as more than the limit is buffered without an LF", () => {
  const max = 8;
  const splitter = new LineSplitter(max);
  splitter.push(encoder.encode("x".repeat(max)));
  assert.equal(splitter.next(), null); // exactly the limit: still waiting
  splitter.push(encoder.encode("x")); // one more byte, no LF anywhere
  assert.equal(splitter.next(), LINE_TOO_LONG);
  assert.equal(splitter.bufferedBytes, 0); // nothing is held after the overflow

  // In a single chunk with no LF at all.
  const single = new LineSplitter(max);
  single.push(encoder.encode("x".repeat(max + 1)));
  assert.equal(single.next(), LINE_TOO_LONG);

  // Byte at a time: the overflow comes on byte max + 1, not later.
  const slow = new LineSplitter(max);
  for (let i = 1; i <= max; i++) {
    slow.push(new Uint8Array([0x78]));
    assert.equal(slow.next(), null, `byte ${i}`);
  }
  slow.push(new Uint8Array([0x78]));
  assert.equal(slow.next(), LINE_TOO_LONG);
});

Deno.test("line splitter: complete lines before an overlong one are still returned", () => {
  assert.deepEqual(feed(new LineSplitter(4), ["ab\ncd\n" + "x".repeat(5)]), [
    "ab",
    "cd",
    "<too-long>",
  ]);
});

Deno.test("line splitter: after an overflow it only ever returns LINE_TOO_LONG", () => {
  const splitter = new LineSplitter(4);
  splitter.push(encoder.encode("xxxxx\n1\n"));
  assert.equal(splitter.next(), LINE_TOO_LONG);
  assert.equal(splitter.next(), LINE_TOO_LONG);
  splitter.push(encoder.encode("1\n"));
  assert.equal(splitter.next(), LINE_TOO_LONG);
  splitter.push(new Uint8Array(0));
  assert.equal(splitter.next(), LINE_TOO_LONG);
});

Deno.test("line splitter: an empty chunk yields nothing and keeps the carry", () => {
  const splitter = new LineSplitter(100);
  assert.deepEqual(feed(splitter, ["ab", new Uint8Array(0), "c\n"]), ["abc"]);
});

Deno.test("line splitter: the carry never grows past the limit however it is fed", () => {
  const max = 1000;
  const splitter = new LineSplitter(max);
  for (let i = 0; i < max; i++) {
    splitter.push(new Uint8Array([0x61]));
    assert.equal(splitter.next(), null);
    assert.ok(splitter.bufferedBytes <= max);
  }
  splitter.push(new Uint8Array([0x0a]));
  const line = splitter.next();
  assert.ok(line instanceof Uint8Array);
  assert.equal(line.length, max);
});
