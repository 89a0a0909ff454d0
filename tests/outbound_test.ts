// Unit tests of lib/transport/outbound.ts: a bounded per-connection FIFO with one writer loop, against
// fake writers that write partially, slowly, or fail.
import assert from "node:assert/strict";
import { OutboundQueue, type Writer } from "../lib/transport/outbound.ts";
import { bytes } from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A writer that takes at most `maxPerWrite` bytes a call, after `delayMs`, recording each call. */
class FakeWriter implements Writer {
  calls: Uint8Array[] = [];
  chunks: Uint8Array[] = [];
  constructor(readonly maxPerWrite = Infinity, readonly delayMs = 0) {}
  async write(bytes: Uint8Array): Promise<number> {
    this.calls.push(bytes.slice());
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const n = Math.min(bytes.length, this.maxPerWrite);
    this.chunks.push(bytes.slice(0, n));
    return n;
  }
  /** Every byte written so far, in order. */
  get written(): Uint8Array {
    return bytes(...this.chunks);
  }
  get text(): string {
    return decoder.decode(this.written);
  }
}

const line = (s: string) => encoder.encode(s + "\n");
const noError = (e: unknown) => {
  throw new Error(`unexpected write error: ${e}`);
};

Deno.test("outbound: lines are written in order, however partially the writer takes them", async () => {
  for (const maxPerWrite of [1, 3, 7, Infinity]) {
    const writer = new FakeWriter(maxPerWrite);
    const queue = new OutboundQueue(writer, 1 << 20, noError);
    const want: string[] = [];
    for (let i = 0; i < 200; i++) {
      assert.equal(queue.push(line(`3:${i}`)), true);
      want.push(`3:${i}\n`);
      if (i % 17 === 0) await Promise.resolve(); // some in later turns
    }
    await queue.drained();
    assert.equal(writer.text, want.join(""), `maxPerWrite ${maxPerWrite}`);
    assert.equal(queue.pendingBytes, 0);
  }
});

Deno.test("outbound: lines queued in one turn go out in one write", async () => {
  const writer = new FakeWriter();
  const queue = new OutboundQueue(writer, 1 << 20, noError);
  queue.push(line("2:lobby:alice"));
  queue.push(line("4:lobby:bob"));
  queue.push(line("3:hi"));
  assert.equal(writer.calls.length, 0, "nothing is written before the turn ends");
  await queue.drained();
  assert.equal(writer.calls.length, 1);
  assert.equal(decoder.decode(writer.calls[0]), "2:lobby:alice\n4:lobby:bob\n3:hi\n");
});

Deno.test("outbound: lines queued during a slow write are batched into the next write", async () => {
  const writer = new FakeWriter(Infinity, 20);
  const queue = new OutboundQueue(writer, 1 << 20, noError);
  queue.push(line("a"));
  await new Promise((r) => setTimeout(r, 5)); // the first write is under way
  queue.push(line("b"));
  queue.push(line("c"));
  await queue.drained();
  assert.deepEqual(writer.calls.map((c) => decoder.decode(c)), ["a\n", "b\nc\n"]);
});

Deno.test("outbound: a slow writer holds bytes as pending until they are written", async () => {
  const writer = new FakeWriter(2, 2);
  const queue = new OutboundQueue(writer, 1 << 20, noError);
  queue.push(line("hello"));
  queue.push(line("world"));
  assert.equal(queue.pendingBytes, 12);
  const drained = queue.drained();
  let done = false;
  drained.then(() => done = true);
  await new Promise((r) => setTimeout(r, 3));
  assert.equal(done, false, "drained waits for the slow writer");
  await drained;
  assert.equal(writer.text, "hello\nworld\n");
  assert.equal(queue.pendingBytes, 0);
});

Deno.test("outbound: the byte limit refuses a line that would pass it, queuing nothing", async () => {
  const writer = new FakeWriter(Infinity, 5);
  const queue = new OutboundQueue(writer, 10, noError);
  assert.equal(queue.push(line("12345")), true); // 6 bytes
  assert.equal(queue.pendingBytes, 6);
  assert.equal(queue.push(line("1234")), false); // 6 + 5 > 10
  assert.equal(queue.pendingBytes, 6);
  assert.equal(queue.push(line("123")), true); // 6 + 4 = 10: exactly the limit is fine
  assert.equal(queue.pendingBytes, 10);
  assert.equal(queue.push(line("")), false); // even one byte more is refused
  await queue.drained();
  assert.equal(writer.text, "12345\n123\n");
  assert.equal(queue.pendingBytes, 0);
  assert.equal(queue.push(line("1234")), true); // room again once written
  await queue.drained();
  assert.equal(writer.text, "12345\n123\n1234\n");
});

Deno.test("outbound: a line bigger than the limit is refused outright", () => {
  const queue = new OutboundQueue(new FakeWriter(), 4, noError);
  assert.equal(queue.push(line("12345")), false);
  assert.equal(queue.pendingBytes, 0);
});

Deno.test("outbound: close drops what is queued, refuses more, and settles drained", async () => {
  const writer = new FakeWriter(Infinity, 10);
  const queue = new OutboundQueue(writer, 1 << 20, noError);
  queue.push(line("first"));
  await new Promise((r) => setTimeout(r, 2)); // "first" is being written
  queue.push(line("second"));
  const drained = queue.drained();
  queue.close();
  await drained; // settles at once, not after the slow write
  assert.equal(queue.pendingBytes, 0);
  assert.equal(queue.push(line("third")), false);
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(!writer.text.includes("second"), writer.text);
  assert.ok(!writer.text.includes("third"), writer.text);
  assert.equal(queue.pendingBytes, 0);
  await queue.drained(); // a closed queue is always drained
});

Deno.test("outbound: drained resolves at once when nothing is queued", async () => {
  const queue = new OutboundQueue(new FakeWriter(), 100, noError);
  await queue.drained();
  queue.push(line("x"));
  await queue.drained();
  await queue.drained();
});

Deno.test("outbound: a failing write calls onError once and the queue stops", async () => {
  const errors: unknown[] = [];
  let calls = 0;
  const writer: Writer = {
    write() {
      calls++;
      return Promise.reject(new Error("connection reset"));
    },
  };
  const queue = new OutboundQueue(writer, 1 << 20, (e) => errors.push(e));
  queue.push(line("a"));
  queue.push(line("b"));
  await queue.drained();
  await new Promise((r) => setTimeout(r, 5));
  queue.push(line("c"));
  await queue.drained();
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /connection reset/);
  assert.equal(calls, 1);
  assert.equal(queue.push(line("d")), false);
  assert.equal(queue.pendingBytes, 0);
});

Deno.test("outbound: an error after close is not reported", async () => {
  const errors: unknown[] = [];
  const writer: Writer = {
    write: () => new Promise((_, reject) => setTimeout(() => reject(new Error("late")), 5)),
  };
  const queue = new OutboundQueue(writer, 1 << 20, (e) => errors.push(e));
  queue.push(line("a"));
  await Promise.resolve();
  queue.close();
  await new Promise((r) => setTimeout(r, 15));
  assert.deepEqual(errors, []);
});

Deno.test("outbound: the same shared line can be queued on many queues", async () => {
  const shared = line("3:hello");
  const writers = [new FakeWriter(), new FakeWriter(3), new FakeWriter(1, 1)];
  const queues = writers.map((w) => new OutboundQueue(w, 1 << 20, noError));
  for (const q of queues) q.push(shared);
  await Promise.all(queues.map((q) => q.drained()));
  for (const w of writers) assert.equal(w.text, "3:hello\n");
  assert.equal(decoder.decode(shared), "3:hello\n", "the shared line is not modified");
});

Deno.test("outbound: big backlogs are written in bounded batches, in order", async () => {
  const writer = new FakeWriter();
  const queue = new OutboundQueue(writer, 4 << 20, noError);
  const big = new Uint8Array(200 * 1024).fill(0x61);
  big[big.length - 1] = 0x0a;
  queue.push(big);
  queue.push(big);
  queue.push(line("tail"));
  await queue.drained();
  assert.ok(writer.calls.length >= 2, "no single write of the whole backlog");
  assert.ok(writer.calls.every((c) => c.length <= 256 * 1024));
  assert.equal(writer.written.length, 2 * big.length + 5);
  assert.equal(writer.text.slice(-5), "tail\n");
});
