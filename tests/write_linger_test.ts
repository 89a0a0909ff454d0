// Unit tests of lib/transport/write_linger.ts, and of an OutboundQueue (lib/transport/outbound.ts)
// that lingers: under load, a queue written moments ago waits for the linger's tick, so that the
// lines queued meanwhile share one write; with time to spare, nothing waits.
import assert from "node:assert/strict";
import { OutboundQueue } from "../lib/transport/outbound.ts";
import {
  LINGER_FROM_SHARE,
  LINGER_FULL_SHARE,
  LINGER_MAX_BYTES,
  LoadMeter,
  WriteLinger,
} from "../lib/transport/write_linger.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const line = (s: string) => encoder.encode(s + "\n");
const noError = (e: unknown) => {
  throw new Error(`unexpected write error: ${e}`);
};
/** Lets queued writes start and settle (they go through io_turns.ts's turns). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/** A writer that records what each write call carried. */
class RecordingWriter {
  calls: string[] = [];
  write(bytes: Uint8Array): Promise<number> {
    this.calls.push(decoder.decode(bytes));
    return Promise.resolve(bytes.length);
  }
}

/** A queue whose linger is long (nothing in a test outlasts it) and whose ticks the test runs. */
function lingeringQueue(share: number) {
  const ticks: (() => void)[] = [];
  const linger = new WriteLinger(60_000, { share: () => share }, (run) => ticks.push(run));
  const writer = new RecordingWriter();
  const queue = new OutboundQueue(writer, 1 << 20, noError, linger);
  return { ticks, writer, queue };
}

Deno.test("write linger: only a busy server's recent, small writes wait", () => {
  const busy = new WriteLinger(40, { share: () => LINGER_FULL_SHARE });
  const idle = new WriteLinger(40, { share: () => LINGER_FROM_SHARE });
  const off = new WriteLinger(0, { share: () => 1 });
  assert.equal(busy.holds(1_000, 100, 1_010), true, "busy, wrote 10 ms ago");
  assert.equal(busy.holds(1_000, 100, 1_040), false, "quiet for the whole linger");
  assert.equal(busy.holds(1_000, LINGER_MAX_BYTES, 1_010), false, "a full TLS record waits");
  assert.equal(idle.holds(1_000, 100, 1_001), false, "at the share where lingering starts");
  assert.equal(off.holds(1_000, 100, 1_001), false, "--write-linger-ms 0");
});

Deno.test("write linger: between the two shares, the linger is in proportion", () => {
  const halfway = (LINGER_FROM_SHARE + LINGER_FULL_SHARE) / 2;
  const ticks: number[] = [];
  const linger = new WriteLinger(40, { share: () => halfway }, (_run, ms) => ticks.push(ms));
  assert.equal(linger.holds(1_000, 100, 1_019), true, "19 ms of a 20 ms linger");
  assert.equal(linger.holds(1_000, 100, 1_021), false, "past the 20 ms linger");
  linger.wait(() => {});
  assert.equal(Math.round(ticks[0]), 20, "the tick comes after the current linger");
});

Deno.test("write linger: the load meter reads the CPU's share over windows of 100 ms", () => {
  let cpu = 0;
  const meter = new LoadMeter(() => cpu, 1_000);
  assert.equal(meter.share(1_000), 0, "nothing measured yet");
  cpu = 50;
  assert.equal(meter.share(1_099), 0, "not a whole window yet");
  assert.equal(meter.share(1_100), 0.5);
  cpu = 250; // 200 ms of CPU in 100 ms: two threads busy
  assert.equal(meter.share(1_200), 2);
});

// The real clock: the event loop's thread, spinning, uses a good part of a core, and asleep next
// to none. The bounds are loose: other processes may share the core.
Deno.test("write linger: the default meter sees this thread busy, then idle", async () => {
  const meter = new LoadMeter();
  const start = performance.now();
  while (performance.now() - start < 150) { /* spin */ }
  const busy = meter.share(performance.now());
  await new Promise((resolve) => setTimeout(resolve, 150));
  const idle = meter.share(performance.now());
  assert.ok(busy > 0.2, `spinning: ${busy}`);
  assert.ok(idle < busy && idle < 0.5, `asleep: ${idle}`);
});

Deno.test("write linger: one timer serves every waiting queue", () => {
  const timers: (() => void)[] = [];
  const linger = new WriteLinger(40, { share: () => 1 }, (run) => timers.push(run));
  const ran: string[] = [];
  linger.wait(() => ran.push("a"));
  linger.wait(() => ran.push("b"));
  assert.equal(timers.length, 1, "one timer for both");
  timers.shift()!();
  assert.deepEqual(ran, ["a", "b"]);
  linger.wait(() => ran.push("c"));
  assert.equal(timers.length, 1, "a new timer once the last one ended");
});

// The test's sanitizer fails it if flush leaves the minute-long timer running.
Deno.test("write linger: flush runs what waits now and stops the timer", () => {
  const linger = new WriteLinger(60_000, { share: () => 1 });
  const ran: string[] = [];
  linger.wait(() => ran.push("a"));
  linger.flush();
  assert.deepEqual(ran, ["a"]);
});

Deno.test("outbound linger: under load, lines sent after a write share the next one", async () => {
  const { ticks, writer, queue } = lingeringQueue(1);
  queue.push(line("3:first"));
  await settle();
  assert.deepEqual(writer.calls, ["3:first\n"], "a quiet queue writes at once");
  queue.push(line("3:b"));
  await settle();
  queue.push(line("3:c"));
  await settle();
  assert.deepEqual(writer.calls, ["3:first\n"], "written moments ago: these wait");
  assert.equal(ticks.length, 1);
  assert.equal(queue.pendingBytes, 8);
  ticks.shift()!();
  await queue.drained();
  assert.deepEqual(writer.calls, ["3:first\n", "3:b\n3:c\n"]);
  assert.equal(queue.pendingBytes, 0);
});

Deno.test("outbound linger: with time to spare, every write goes at once", async () => {
  const { ticks, writer, queue } = lingeringQueue(LINGER_FROM_SHARE / 2);
  for (const text of ["3:a", "3:b", "3:c"]) {
    queue.push(line(text));
    await queue.drained();
  }
  assert.deepEqual(writer.calls, ["3:a\n", "3:b\n", "3:c\n"]);
  assert.equal(ticks.length, 0);
});

Deno.test("outbound linger: a full TLS record's worth is written without waiting", async () => {
  const { ticks, writer, queue } = lingeringQueue(1);
  queue.push(line("3:first"));
  await settle();
  const big = "3:" + "x".repeat(LINGER_MAX_BYTES);
  queue.push(line(big));
  await queue.drained();
  assert.deepEqual(writer.calls, ["3:first\n", big + "\n"]);
  assert.equal(ticks.length, 0);
});

Deno.test("outbound linger: a queue closed while it waits writes nothing more", async () => {
  const { ticks, writer, queue } = lingeringQueue(1);
  queue.push(line("3:first"));
  await settle();
  queue.push(line("3:never"));
  await settle();
  const drained = queue.drained();
  queue.close();
  await drained;
  ticks.shift()!(); // the tick still comes, and finds the queue closed
  await settle();
  assert.deepEqual(writer.calls, ["3:first\n"]);
  assert.equal(queue.push(line("3:after")), false);
});
