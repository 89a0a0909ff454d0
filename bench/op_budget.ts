/**
 * How many socket writes Deno completes at once in one turn of the event loop, with nothing of
 * Parley in it. It holds `--conns` loopback connections, starts one 100-byte write on each in a
 * single turn, and counts the writes whose promise settled before a `setTimeout(0)` set at the
 * start of the turn fired: those Deno made inside the call. The rest were parked and answered in
 * later turns. `--step N --hop immediate|timeout` starts them N at a time instead, with one hop of
 * the event loop between groups, to show what gives the count back.
 *
 * On 2026-11-30 (Deno 2.9.6) the first turn completed 127 writes at once whatever `--conns` was
 * above that: tokio's budget of 128 operations per poll of a task (bench/README.md, "The fairness
 * tail, third session").
 *
 * ```sh
 * deno run -A bench/op_budget.ts --conns 1000
 * deno run -A bench/op_budget.ts --conns 1000 --step 100 --hop immediate
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

const args = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string", default: "1000" },
    step: { type: "string" },
    hop: { type: "string", default: "none" },
  },
}).values;
const conns = Number(args.conns);
const step = Number(args.step ?? conns);
const hop = args.hop;
const hops: Record<string, () => Promise<void>> = {
  none: () => Promise.resolve(),
  immediate: () => new Promise((resolve) => setImmediate(resolve)),
  timeout: () => new Promise((resolve) => setTimeout(resolve, 0)),
};
if (!(hop in hops) || !(conns > 0) || !(step > 0)) {
  console.error("usage: op_budget.ts [--conns N] [--step N] [--hop none|immediate|timeout]");
  Deno.exit(2);
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;
const clients: Deno.Conn[] = [];
const servers: Deno.Conn[] = [];
for (let i = 0; i < conns; i++) {
  clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  servers.push(await listener.accept());
}

const line = new Uint8Array(100);
const readBack = new Uint8Array(4096);
for (let round = 1; round <= 3; round++) {
  let atOnce = 0;
  for (let first = 0; first < conns; first += step) {
    let turnOver = false;
    setTimeout(() => turnOver = true, 0);
    const writes: Promise<void>[] = [];
    for (let i = first; i < Math.min(first + step, conns); i++) {
      writes.push(
        servers[i].write(line).then(() => {
          if (!turnOver) atOnce++;
        }),
      );
    }
    await Promise.all(writes);
    await hops[hop]();
  }
  for (const client of clients) await client.read(readBack);
  console.log(
    `round ${round}: ${atOnce} of ${conns} writes completed at once (step ${step}, hop ${hop})`,
  );
}
for (const conn of [...clients, ...servers]) conn.close();
listener.close();
