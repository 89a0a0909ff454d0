/**
 * What a short line costs to make: `new Uint8Array(n)` (a backing store of its own from Deno's
 * allocator) against a view cut from a shared slab (`lineBytes`, lib/protocol/byte_slabs.ts).
 * Each round encodes `--lines` lines of `--bytes` bytes the way the codec does (`3:`, the body,
 * LF), and keeps the last 4,096 alive, as outbound queues would, so the garbage collector sees
 * what a server's does. The two ways take turns; the report gives each one's median over
 * `--rounds`.
 *
 * On 2026-11-30 (Deno 2.9.6, the 2-core VM) a 67-byte line cost about 1 µs made on its own and
 * 0.2 µs from a slab (bench/README.md, "Direct messages: an allocation per message").
 *
 * ```sh
 * deno run bench/alloc_cost.ts
 * deno run bench/alloc_cost.ts --bytes 1000 --lines 200000
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { lineBytes as fromSlab } from "../lib/protocol/byte_slabs.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    bytes: { type: "string", default: "67" },
    lines: { type: "string", default: "1000000" },
    rounds: { type: "string", default: "5" },
  },
}).values;
const lineBytes = Number(args.bytes);
const lines = Number(args.lines);
const rounds = Number(args.rounds);
if (!(lineBytes >= 3) || !(lines > 0) || !(rounds > 0)) {
  console.error("usage: alloc_cost.ts [--bytes N ≥ 3] [--lines N] [--rounds N]");
  Deno.exit(2);
}

const body = new Uint8Array(lineBytes - 3).fill(0x61);
const held: Uint8Array[] = new Array(4096);

/** Encodes `lines` lines with `make`; returns nanoseconds per line. */
function encodeAll(make: (size: number) => Uint8Array): number {
  const start = performance.now();
  for (let i = 0; i < lines; i++) {
    const out = make(lineBytes);
    out[0] = 0x33;
    out[1] = 0x3a;
    out.set(body, 2);
    out[lineBytes - 1] = 0x0a;
    held[i & 4095] = out;
  }
  return (performance.now() - start) / lines * 1e6;
}

const ways: [string, (size: number) => Uint8Array][] = [
  ["new Uint8Array", (size) => new Uint8Array(size)],
  ["from a slab", fromSlab],
];
const results = new Map<string, number[]>(ways.map(([name]) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, make] of ways) results.get(name)!.push(encodeAll(make));
}

const median = (values: number[]) => values.toSorted((a, b) => a - b)[values.length >> 1];
console.log(`${lines.toLocaleString("en")} lines of ${lineBytes} B, median of ${rounds} rounds`);
for (const [name, values] of results) {
  const runs = values.map((v) => v.toFixed(0)).join(", ");
  console.log(`${name.padEnd(16)} ${median(values).toFixed(0).padStart(6)} ns a line  (${runs})`);
}
