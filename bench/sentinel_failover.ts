/**
 * The Sentinel failover timeline (issue 16): two nodes on `--cluster redis-sentinel://…` (a
 * master, its replica, three sentinels with 500 ms down-after, all on loopback), two users in one
 * room across the nodes; the master is killed with `kill -9`, and from that moment: when every
 * sentinel names the replica as master (promotion), when a room message crosses the nodes again
 * (delivery; probes every 50 ms), and when a login succeeds on each node again (logins; tried
 * every 50 ms). A fresh set and cluster each run; medians printed.
 *
 * ```sh
 * deno run -A bench/sentinel_failover.ts            # 3 runs
 * deno run -A bench/sentinel_failover.ts --runs 5
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fillRoom, withCluster } from "../tests/cluster_support.ts";
import { USERS } from "../tests/e2e_support.ts";
import { type FailoverTimeline, killMaster, startSentinels } from "../tests/sentinel_support.ts";
import { median } from "./stats.ts";

const { runs } = parseArgs({ args: Deno.args, options: { runs: { type: "string", default: "3" } } })
  .values;
const users = { ...USERS, f1: "pw-f1", f2: "pw-f2", g1: "pw-g1", g2: "pw-g2" };
const results: FailoverTimeline[] = [];

for (let run = 1; run <= Number(runs); run++) {
  const starting = startSentinels();
  try {
    const bus = starting.then((set) => set.url);
    await withCluster({ nodes: 2, users, bus }, async (c) => {
      const [from, to] = await fillRoom(c, "fo", [[0, "f1"], [1, "f2"]]);
      const { timeline } = await killMaster(c, await starting, {
        from,
        to,
        logins: [[0, "g1"], [1, "g2"]],
      });
      results.push(timeline);
      console.log(`run ${run}: ${show(timeline)}`);
    });
  } finally {
    await (await starting.catch(() => null))?.stop();
  }
}

const medians = {
  promoted: median(results.map((r) => r.promoted)) ?? NaN,
  delivery: median(results.map((r) => r.delivery)) ?? NaN,
  logins: median(results.map((r) => r.logins)) ?? NaN,
};
console.log(`median of ${results.length}: ${show(medians)}`);

function show(t: FailoverTimeline): string {
  const ms = (n: number) => `${Math.round(n)} ms`;
  return `master killed → promoted ${ms(t.promoted)} → delivery back ${ms(t.delivery)} → ` +
    `logins back ${ms(t.logins)}`;
}
