// The adaptive read buffer of lib/transport/tcp.ts: small while idle, larger while reads fill it, small
// again after a run of quiet reads.
import assert from "node:assert/strict";
import {
  AdaptiveReadBuffer,
  FIRST_GROWN_BYTES,
  QUIET_READS_TO_SHRINK,
  SMALL_READ_BYTES,
} from "../lib/transport/tcp.ts";

Deno.test("adaptive read buffer: starts small and stays small while reads fit", () => {
  const reads = new AdaptiveReadBuffer(SMALL_READ_BYTES, 16 * 1024);
  assert.equal(reads.buffer.length, SMALL_READ_BYTES);
  assert.ok(reads.isSmall);
  for (let i = 0; i < 10; i++) reads.afterRead(SMALL_READ_BYTES - 1);
  assert.equal(reads.buffer.length, SMALL_READ_BYTES);
});

Deno.test("adaptive read buffer: a read that fills the buffer grows it 4× up to the limit", () => {
  const reads = new AdaptiveReadBuffer(512, 16 * 1024);
  const sizes: number[] = [];
  for (let i = 0; i < 5; i++) {
    reads.afterRead(reads.buffer.length);
    sizes.push(reads.buffer.length);
  }
  assert.deepEqual(sizes, [2048, 8192, 16384, 16384, 16384]);
  assert.ok(!reads.isSmall);
});

Deno.test("adaptive read buffer: the tiny idle buffer, once full, jumps to a few lines' worth", () => {
  const reads = new AdaptiveReadBuffer(SMALL_READ_BYTES, 16 * 1024);
  assert.ok(SMALL_READ_BYTES <= 64, "an idle connection's buffer is tiny");
  reads.afterRead(SMALL_READ_BYTES);
  assert.equal(reads.buffer.length, FIRST_GROWN_BYTES);
  reads.afterRead(FIRST_GROWN_BYTES);
  assert.equal(reads.buffer.length, 4 * FIRST_GROWN_BYTES);
});

Deno.test("adaptive read buffer: shrinks after a run of quiet reads, not after one", () => {
  const reads = new AdaptiveReadBuffer(512, 16 * 1024);
  reads.afterRead(512);
  reads.afterRead(2048);
  reads.afterRead(8192);
  assert.equal(reads.buffer.length, 16384);
  // Quiet reads (at most an eighth of the buffer) interrupted by a busier one start over.
  for (let i = 0; i < QUIET_READS_TO_SHRINK - 1; i++) reads.afterRead(100);
  reads.afterRead(8000);
  for (let i = 0; i < QUIET_READS_TO_SHRINK - 1; i++) reads.afterRead(2048);
  assert.equal(reads.buffer.length, 16384);
  reads.afterRead(0);
  assert.equal(reads.buffer.length, 512);
  assert.ok(reads.isSmall);
});

Deno.test("adaptive read buffer: large buffers are reused from the pool, never while in use", () => {
  const a = new AdaptiveReadBuffer(512, 4096);
  a.afterRead(512);
  a.afterRead(2048);
  const large = a.buffer;
  assert.equal(large.length, 4096);
  const b = new AdaptiveReadBuffer(512, 4096);
  b.afterRead(512);
  b.afterRead(2048);
  assert.notEqual(b.buffer, large, "a buffer still in use was handed out again");
  a.release();
  const c = new AdaptiveReadBuffer(512, 4096);
  c.afterRead(512);
  c.afterRead(2048);
  assert.equal(c.buffer, large, "a released buffer was not reused");
});
