/**
 * How late Deno answers a read that had to wait for its bytes, while the event loop is busy, with
 * nothing of Parley in it.
 *
 * This process holds `--conns` loopback connections, each with one read waiting (its socket is
 * empty until the writer sends). A writer process sends a line stamped with its send time to each
 * connection in turn, `--rate` lines a second in all. Meanwhile this process runs back-to-back
 * turns of the event loop (`setImmediate`), each starting `--ops` writes to `--sinks` other
 * connections (drained by the writer process) and spinning `--busy-us` of CPU. With `--yield-ms
 * N`, a turn that comes N ms or more after the run of turns began waits for `setTimeout(0)`
 * instead, as `lib/transport/io_turns.ts` does. It prints the time from each line's send to the
 * answer of the read that got it.
 *
 * On 2026-11-30 (Deno 2.9.6, this process on core 0, the writer on core 1, 1,000 connections,
 * 20,000 lines a second, 96 writes a turn on 200 sinks), three runs each: never yielding, 28,351
 * to 49,467 of the 60,000 lines were read within the run, p99 2,367–2,895 ms; yielding every 2 ms,
 * 55,487–59,975, p99 38–67 ms; every 5 ms, p99 251–1,359 ms; every 10 ms, 1,367–1,860 ms;
 * every 20 ms (one run), 2,873 ms. With no writes in the turns (`--ops 0`), 59,997 read, p99 7.1
 * ms, without yielding (bench/README.md, "The fairness tail, fourth session").
 *
 * ```sh
 * taskset -c 0 deno run -A bench/pending_reads.ts --ops 96 --writer-cpu 1
 * taskset -c 0 deno run -A bench/pending_reads.ts --ops 96 --writer-cpu 1 --yield-ms 2
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { nowUs } from "./gen_support.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string", default: "1000" },
    rate: { type: "string", default: "20000" },
    seconds: { type: "string", default: "3" },
    ops: { type: "string", default: "96" },
    sinks: { type: "string", default: "200" },
    "busy-us": { type: "string", default: "0" },
    "yield-ms": { type: "string", default: "0" },
    "writer-cpu": { type: "string" },
    writer: { type: "string" }, // internal: the writer process's port and counts
  },
}).values;
const conns = Number(args.conns);
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const opsPerTurn = Number(args.ops);
const sinkCount = Number(args.sinks);
const busyMs = Number(args["busy-us"]) / 1000;
const yieldMs = Number(args["yield-ms"]);
const counts = [conns, rate, seconds, opsPerTurn, sinkCount, busyMs, yieldMs];
if (counts.some((n) => !(n >= 0)) || !(conns > 0) || !(sinkCount > 0)) {
  console.error(
    "usage: pending_reads.ts [--conns N] [--rate N] [--seconds N] [--ops N] [--sinks N] " +
      "[--busy-us N] [--yield-ms N] [--writer-cpu N]",
  );
  Deno.exit(2);
}

const LINE_BYTES = 32; // 16 digits of send time (µs since the epoch), padding, a newline

if (args.writer !== undefined) await runWriter(Number(args.writer));
else await runReader();

/** The writer process: connects the sinks (and drains them), then the stamped connections. */
async function runWriter(port: number): Promise<never> {
  for (let i = 0; i < sinkCount; i++) {
    const sink = await Deno.connect({ hostname: "127.0.0.1", port });
    void drain(sink);
  }
  const sockets: Deno.Conn[] = [];
  for (let i = 0; i < conns; i++) sockets.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    for (; sent < due; sent++) {
      const line = new Uint8Array(LINE_BYTES).fill(0x20);
      line[LINE_BYTES - 1] = 0x0a;
      let stamp = nowUs();
      for (let k = 15; k >= 0; k--, stamp = Math.floor(stamp / 10)) line[k] = 0x30 + stamp % 10;
      sockets[sent % conns].write(line).catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  Deno.exit(0);
}

async function drain(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  try {
    while ((await conn.read(buffer)) !== null) { /* discard */ }
  } catch { /* closed */ }
}

/** This process: the sinks, the waiting reads, and the busy turns. */
async function runReader(): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const command = [Deno.execPath(), "run", "-A", import.meta.filename!, "--writer", `${port}`];
  for (const [flag, value] of Object.entries(args)) {
    if (flag !== "writer" && value !== undefined) command.push(`--${flag}`, String(value));
  }
  const cpu = args["writer-cpu"];
  const [program, ...rest] = cpu === undefined ? command : ["taskset", "-c", cpu, ...command];
  const writer = new Deno.Command(program, { args: rest }).spawn();

  const sinks: Deno.Conn[] = [];
  for (let i = 0; i < sinkCount; i++) sinks.push(await listener.accept());
  const latenciesMs: number[] = [];
  for (let i = 0; i < conns; i++) void readStamps(await listener.accept(), latenciesMs);

  let turns = 0;
  let running = true;
  let runSince = -1;
  let next = 0;
  const payload = new Uint8Array(64);
  const turn = () => {
    if (!running) return;
    turns++;
    for (let k = 0; k < opsPerTurn; k++, next = (next + 1) % sinks.length) {
      sinks[next].write(payload).catch(() => {});
    }
    const until = performance.now() + busyMs;
    while (performance.now() < until) { /* the work of a busy turn */ }
    const now = performance.now();
    if (runSince < 0) runSince = now;
    if (yieldMs > 0 && now - runSince >= yieldMs) {
      runSince = -1;
      setTimeout(turn, 0);
    } else {
      setImmediate(turn);
    }
  };
  setImmediate(turn);
  await writer.status;
  running = false;

  latenciesMs.sort((a, b) => a - b);
  const at = (q: number) =>
    latenciesMs.length === 0
      ? "–"
      : latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))]
        .toFixed(1);
  const sent = Math.floor(rate * seconds);
  console.log(
    `${conns} reads waiting, ${opsPerTurn} writes and ${busyMs * 1000} µs a turn, ` +
      `yield ${yieldMs > 0 ? `every ${yieldMs} ms` : "never"}: ` +
      `${latenciesMs.length} of ${sent} lines read, ${Math.round(turns / seconds)} turns/s; ` +
      `send → read ms p50 ${at(0.5)}, p90 ${at(0.9)}, p99 ${at(0.99)}, max ${at(1)}`,
  );
  Deno.exit(0);
}

async function readStamps(conn: Deno.Conn, latenciesMs: number[]): Promise<void> {
  const buffer = new Uint8Array(4096);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return;
      const now = nowUs();
      for (let at = 0; at + LINE_BYTES <= n; at += LINE_BYTES) {
        let stamp = 0;
        for (let k = at; k < at + 16; k++) stamp = stamp * 10 + buffer[k] - 0x30;
        latenciesMs.push((now - stamp) / 1000);
      }
    }
  } catch { /* closed */ }
}
