/**
 * `deno task bench --cluster`: the same clients on one Parley node and split over a cluster of
 * nodes sharing one Redis (and one PostgreSQL), repetitions interleaved, medians. For each it
 * reports delivered messages a second, the ratio of the cluster to the single node, the CPU of
 * every process, and what the bus costs: Redis commands per message sent and per message
 * delivered (`total_commands_processed` of `INFO stats` over the window), bytes into Redis per
 * message sent, and Redis memory per online user.
 *
 * Setups (`--setups`, default all three):
 *
 * - `single`: one node without `--cluster` (SQLite), as `deno task bench` runs Parley;
 * - `cluster1`: one node with `--cluster` (PostgreSQL, Redis): what cluster mode itself costs
 *   when every recipient is local;
 * - `cluster2`: two nodes, half the clients on each (client i on node i < N/2 ? 1 : 2, so every
 *   room and about half of every direct message's targets span both nodes).
 *
 * Every setup is driven by the same two generator processes (bench/gen.ts), one per half of the
 * clients; in `cluster2` each half connects to its own node.
 *
 * ```sh
 * deno task bench --cluster                    # fanout, rooms, direct, paced × 3 setups × 3
 * deno task bench --cluster --only rooms,direct --reps 5
 * deno task bench --cluster --setups single,cluster2 --quick
 * ```
 *
 * @module
 */

import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openStore } from "../lib/store/open_store.ts";
import { startPostgres, type TestPostgres } from "../tests/pg_support.ts";
import { infoField, startRedis, type TestRedis } from "../tests/redis_support.ts";
import type { GenConfig, GenResult, GenScenario } from "./gen.ts";
import { PASSWORD, userName } from "./protocols.ts";
import { GenProcess, workloadPart } from "./gen_process.ts";
import {
  cpuSeconds,
  machineBusySeconds,
  type RunningServer,
  seededDatabase,
  startServer,
} from "./servers.ts";
import {
  cpuModel,
  flagReader,
  listOption,
  runInterleaved,
  summarizeTrials,
  worstMs,
} from "./stats.ts";

/** How the clients are served. */
export type Setup = "single" | "cluster1" | "cluster2";

const SETUPS: Setup[] = ["single", "cluster1", "cluster2"];
const SETUP_TITLES: Record<Setup, string> = {
  single: "1 node",
  cluster1: "1 node + bus",
  cluster2: "2 nodes + bus",
};

/** A scenario of this benchmark (the throughput scenarios of bench/run.ts). */
interface Scenario {
  name: GenScenario;
  title: string;
  clients: number;
  rooms: number;
}

const SCENARIOS: Scenario[] = [
  { name: "fanout", title: "fan-out: 1 room × 100 clients", clients: 100, rooms: 1 },
  { name: "rooms", title: "many rooms: 1,000 clients in 100 rooms", clients: 1000, rooms: 100 },
  { name: "direct", title: "direct: 1,000 clients, 5 targets each", clients: 1000, rooms: 0 },
  // Light load: about one message per event-loop turn, so no batching of bus records; the p99
  // shows what the Redis hop adds to latency.
  { name: "paced", title: "paced: 100 clients × 20 msg/s, 1 room", clients: 100, rooms: 1 },
];

/** The two halves of the clients, each driven by its own generator process. */
const PARTS = 2;

/** The cluster benchmark's options. */
export interface ClusterBenchOptions {
  only: GenScenario[];
  setups: Setup[];
  reps: number;
  warmupMs: number;
  measureMs: number;
  window: number;
  batch: number;
  nodeTtlMs: number;
  out: string;
}

/** One trial's figures (or medians, in a summary). */
export interface ClusterTrial {
  scenario: GenScenario;
  setup: Setup;
  rep: number;
  deliveredPerSec: number | null;
  sentPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  /** CPU % of one core, per node. */
  nodeCpuPct: (number | null)[];
  redisCpuPct: number | null;
  /** The busier generator's CPU %. */
  genCpuPct: number | null;
  /** Machine CPU % used by anything not measured here. */
  otherCpuPct: number | null;
  redisCommandsPerSent: number | null;
  redisCommandsPerDelivered: number | null;
  /** Bytes Redis read from its clients (the nodes), per message sent. */
  busBytesInPerSent: number | null;
  /** Bytes Redis wrote to its clients, per message sent. */
  busBytesOutPerSent: number | null;
  /** `used_memory` after every client logged in, less before, per client. */
  redisBytesPerUser: number | null;
  failed: number;
  closed: number;
  error: string | null;
}

function parseOptions(args: string[]): ClusterBenchOptions {
  const value = flagReader(args);
  const quick = args.includes("--quick");
  const only = listOption(value("--only"), SCENARIOS.map((s) => s.name), "cluster scenario");
  const setups = listOption(value("--setups"), SETUPS, "setup");
  const date = new Date().toISOString().slice(0, 10);
  return {
    only,
    setups,
    reps: Number(value("--reps") ?? (quick ? 1 : 3)),
    warmupMs: Number(value("--warmup-ms") ?? (quick ? 500 : 1000)),
    measureMs: Number(value("--measure-ms") ?? (quick ? 1500 : 3000)),
    window: Number(value("--window") ?? 524_288),
    batch: Number(value("--batch") ?? 16),
    nodeTtlMs: Number(value("--node-ttl-ms") ?? 10_000),
    out: value("--out") ??
      new URL(
        `./results/${date}-${Deno.hostname()}-cluster${quick ? "-quick" : ""}`,
        import.meta.url,
      ).pathname,
  };
}

/** Users u0…u(count-1) with the benchmark password in a fresh PostgreSQL database. */
async function seedPostgres(pg: TestPostgres, count: number): Promise<string> {
  const url = await pg.createDatabase();
  const store = await openStore(url);
  const hasher = new PasswordHasher({ params: scryptParams(10), maxWaiting: 1 << 20 });
  const password = new TextEncoder().encode(PASSWORD);
  try {
    for (let i = 0; i < count; i += 64) {
      const names = Array.from({ length: Math.min(64, count - i) }, (_, k) => userName(i + k));
      const hashes = await Promise.all(names.map(() => hasher.hash(password)));
      for (let k = 0; k < names.length; k++) await store.addUser(names[k], hashes[k]);
    }
  } finally {
    await store.close();
  }
  return url;
}

/** What every trial shares: the seeded SQLite file, the PostgreSQL database, the Redis. */
interface Stage {
  seededDb: string;
  pgUrl: string;
  redis: TestRedis | null;
}

/** Redis's counters that a window is measured with. */
interface RedisReading {
  commands: number;
  bytesIn: number;
  bytesOut: number;
}

async function readRedis(redis: TestRedis): Promise<RedisReading> {
  const stats = await redis.info("stats");
  return {
    commands: infoField(stats, "total_commands_processed"),
    bytesIn: infoField(stats, "total_net_input_bytes"),
    bytesOut: infoField(stats, "total_net_output_bytes"),
  };
}

async function usedMemory(redis: TestRedis): Promise<number> {
  return infoField(await redis.info("memory"), "used_memory");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One scenario on one setup: start the nodes, drive them, measure, stop them. */
async function runTrial(
  options: ClusterBenchOptions,
  scenario: Scenario,
  setup: Setup,
  rep: number,
  stage: Stage,
): Promise<ClusterTrial> {
  const record: ClusterTrial = {
    scenario: scenario.name,
    setup,
    rep,
    deliveredPerSec: null,
    sentPerSec: null,
    p50Ms: null,
    p99Ms: null,
    p999Ms: null,
    maxMs: null,
    nodeCpuPct: [],
    redisCpuPct: null,
    genCpuPct: null,
    otherCpuPct: null,
    redisCommandsPerSent: null,
    redisCommandsPerDelivered: null,
    busBytesInPerSent: null,
    busBytesOutPerSent: null,
    redisBytesPerUser: null,
    failed: 0,
    closed: 0,
    error: null,
  };
  const dir = await Deno.makeTempDir({ prefix: `parley-bench-${setup}-` });
  const nodes: RunningServer[] = [];
  const gens: GenProcess[] = [];
  const redis = setup === "single" ? null : stage.redis;
  try {
    // A fresh, empty bus for every trial: no owners or nodes left from the one before.
    if (redis !== null) await redis.restart();
    const count = setup === "cluster2" ? 2 : 1;
    for (let i = 0; i < count; i++) {
      const clusterArgs = redis === null ? [] : [
        "--cluster",
        redis.url,
        "--node-id",
        `n${i + 1}`,
        "--node-ttl-ms",
        String(options.nodeTtlMs),
      ];
      nodes.push(
        await startServer("parley", {
          dir: `${dir}/n${i + 1}`,
          seededDb: stage.seededDb,
          db: redis === null ? undefined : stage.pgUrl,
          parleyArgs: clusterArgs,
        }),
      );
    }
    await sleep(200);
    const memory0 = redis === null ? 0 : await usedMemory(redis);
    for (let part = 0; part < PARTS; part++) {
      const node = nodes[part % nodes.length];
      const config: GenConfig = {
        ...workloadPart(scenario, part, PARTS, options),
        protocol: "parley",
        port: node.port,
        connectConcurrency: 64,
        readBufferBytes: 64 * 1024,
      };
      gens.push(new GenProcess(config));
    }
    for (const g of gens) {
      const ready = JSON.parse(await g.expect("READY", 180_000));
      record.failed += ready.failed;
    }
    if (redis !== null) {
      record.redisBytesPerUser = (await usedMemory(redis) - memory0) / scenario.clients;
    }
    for (const g of gens) await g.send(`GO ${options.warmupMs} ${options.measureMs}`);
    await sleep(options.warmupMs);
    const cpu0 = nodes.map((n) => cpuSeconds(n.pid));
    const redisCpu0 = redis === null ? 0 : cpuSeconds(redis.pid);
    const redis0 = redis === null ? null : await readRedis(redis);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    await sleep(options.measureMs);
    const cpu1 = nodes.map((n) => cpuSeconds(n.pid));
    const redisCpu1 = redis === null ? 0 : cpuSeconds(redis.pid);
    const redis1 = redis === null ? null : await readRedis(redis);
    const busy1 = machineBusySeconds();
    const seconds = (performance.now() - t0) / 1000;
    const results: GenResult[] = [];
    for (const g of gens) await g.expect("DONE", 60_000);
    for (const g of gens) {
      await g.send("WINDOW 0 0");
      results.push(JSON.parse(await g.expect("RESULT", 60_000)));
    }
    const genSeconds = results[0].seconds;
    const delivered = results.reduce((a, r) => a + r.delivered, 0) / genSeconds;
    const sent = results.reduce((a, r) => a + r.sent, 0) / genSeconds;
    record.deliveredPerSec = delivered;
    record.sentPerSec = sent;
    // Percentiles: the worse of the two generators.
    record.p50Ms = worstMs(results.map((r) => r.p50Us));
    record.p99Ms = worstMs(results.map((r) => r.p99Us));
    record.p999Ms = worstMs(results.map((r) => r.p999Us));
    record.maxMs = worstMs(results.map((r) => r.maxUs));
    record.nodeCpuPct = nodes.map((_, i) => (100 * (cpu1[i] - cpu0[i])) / seconds);
    record.genCpuPct = Math.max(...results.map((r) => (100 * r.genCpuSeconds) / r.seconds));
    const measured = cpu1.reduce((a, c, i) => a + c - cpu0[i], 0) + (redisCpu1 - redisCpu0) +
      results.reduce((a, r) => a + r.genCpuSeconds, 0);
    record.otherCpuPct = (100 * (busy1 - busy0 - measured)) / seconds;
    if (redis !== null && redis0 !== null && redis1 !== null) {
      record.redisCpuPct = (100 * (redisCpu1 - redisCpu0)) / seconds;
      // The window's own first INFO is counted in the second reading; take it off.
      const commands = redis1.commands - redis0.commands - 1;
      const sentInWindow = sent * seconds;
      record.redisCommandsPerSent = commands / sentInWindow;
      record.redisCommandsPerDelivered = commands / (delivered * seconds);
      record.busBytesInPerSent = (redis1.bytesIn - redis0.bytesIn) / sentInWindow;
      record.busBytesOutPerSent = (redis1.bytesOut - redis0.bytesOut) / sentInWindow;
    }
    record.closed = results.reduce((a, r) => a + r.closed, 0);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const logs = nodes.map((n) => n.output().slice(-1500)).join("\n---\n");
    record.error = `${message.slice(0, 500)}${logs ? `\n${logs}` : ""}`;
  } finally {
    await Promise.all(gens.map((g) => g.stop()));
    await Promise.all(nodes.map((n) => n.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return record;
}

function summarize(trials: ClusterTrial[]): ClusterTrial[] {
  return summarizeTrials(trials, (t) => `${t.scenario}/${t.setup}`, (first, m, ok) => {
    const nodes = Math.max(0, ...ok.map((t) => t.nodeCpuPct.length));
    return {
      scenario: first.scenario,
      setup: first.setup,
      nodeCpuPct: Array.from({ length: nodes }, (_, i) => m((t) => t.nodeCpuPct[i] ?? null)),
      redisCpuPct: m((t) => t.redisCpuPct),
      redisCommandsPerSent: m((t) => t.redisCommandsPerSent),
      redisCommandsPerDelivered: m((t) => t.redisCommandsPerDelivered),
      busBytesInPerSent: m((t) => t.busBytesInPerSent),
      busBytesOutPerSent: m((t) => t.busBytesOutPerSent),
      redisBytesPerUser: m((t) => t.redisBytesPerUser),
    };
  });
}

function fmt(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  const abs = Math.abs(x);
  if (abs >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (abs >= 100) return Math.round(x).toLocaleString("en");
  // Commands per message can be 0.0004: keep two significant digits rather than print 0.000.
  if (abs > 0 && abs < 10 ** -digits * 10) return x.toPrecision(2);
  return x.toFixed(digits);
}

/** The report: settings, the medians, the ratios of each cluster setup to the single node. */
function renderMarkdown(
  options: ClusterBenchOptions,
  medians: ClusterTrial[],
  info: { date: string; host: string; cpu: string; cores: number; seconds: number; args: string[] },
): string {
  const lines: string[] = [];
  lines.push(`# Parley cluster benchmark, ${info.date.slice(0, 10)} (${info.host})`, "");
  lines.push(
    `${info.cpu}, ${info.cores} cores, Deno ${Deno.version.deno}; medians of ${options.reps} ` +
      `interleaved repetitions; ${options.warmupMs} ms warm-up, ${options.measureMs} ms ` +
      `measured; two generator processes in every setup; run took ${info.seconds.toFixed(0)} s. ` +
      `Command: \`${["deno task bench --cluster", ...info.args].join(" ")}\`.`,
    "",
  );
  lines.push(
    "| scenario | setup | delivered msgs/s | sent msgs/s | p50 ms | p99 ms | node CPU % | Redis CPU % " +
      "| gen CPU % | other CPU % | Redis cmds / sent | Redis cmds / delivered | bus bytes in / sent " +
      "| bus bytes out / sent | Redis bytes / user |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: " +
      "| ---: |",
  );
  for (const r of medians) {
    const title = SETUP_TITLES[r.setup];
    if (r.error !== null) {
      lines.push(`| ${r.scenario} | ${title} | error: ${r.error.split("\n")[0]} |`);
      continue;
    }
    lines.push(
      `| ${r.scenario} | ${title} | ${fmt(r.deliveredPerSec)} | ${fmt(r.sentPerSec)} | ` +
        `${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.nodeCpuPct.map((c) => fmt(c, 0)).join(" + ")} | ` +
        `${fmt(r.redisCpuPct, 0)} | ${fmt(r.genCpuPct, 0)} | ${fmt(r.otherCpuPct, 0)} | ` +
        `${fmt(r.redisCommandsPerSent, 3)} | ${fmt(r.redisCommandsPerDelivered, 4)} | ` +
        `${fmt(r.busBytesInPerSent, 1)} | ${fmt(r.busBytesOutPerSent, 1)} | ` +
        `${fmt(r.redisBytesPerUser, 0)} |`,
    );
  }
  const ratios: string[] = [];
  for (const scenario of options.only) {
    const base = medians.find((r) => r.scenario === scenario && r.setup === "single");
    for (const setup of ["cluster1", "cluster2"] as Setup[]) {
      const r = medians.find((m) => m.scenario === scenario && m.setup === setup);
      if (!base?.deliveredPerSec || !r?.deliveredPerSec) continue;
      ratios.push(
        `| ${scenario} | ${SETUP_TITLES[setup]} ÷ 1 node | ` +
          `${(r.deliveredPerSec / base.deliveredPerSec).toFixed(2)}× |`,
      );
    }
  }
  if (ratios.length > 0) {
    lines.push("", "| scenario | ratio | delivered msgs/s |", "| --- | --- | ---: |", ...ratios);
  }
  lines.push(
    "",
    "Redis commands and bytes are `INFO stats` deltas (`total_commands_processed`, " +
      "`total_net_input_bytes`, `total_net_output_bytes`) over the measured window, divided by " +
      "the messages the generators sent (a direct message to 5 users is one message) or " +
      "delivered in it. Redis bytes per user: `used_memory` once every client is logged in " +
      "(and in its room), less before, divided by the clients.",
    "",
  );
  return lines.join("\n");
}

function describe(r: ClusterTrial): string {
  if (r.error) return `ERROR ${r.error}`;
  return [
    `${fmt(r.deliveredPerSec)} msg/s (sent ${fmt(r.sentPerSec)}) p99 ${fmt(r.p99Ms)} ms`,
    `nodes ${r.nodeCpuPct.map((c) => fmt(c, 0)).join("+")}% redis ${fmt(r.redisCpuPct, 0)}%`,
    `gen ${fmt(r.genCpuPct, 0)}% other ${fmt(r.otherCpuPct, 0)}%`,
    `cmds/sent ${fmt(r.redisCommandsPerSent, 3)} cmds/delivered ` +
    `${fmt(r.redisCommandsPerDelivered, 4)} bytes/user ${fmt(r.redisBytesPerUser, 0)}`,
    r.failed || r.closed ? `failed ${r.failed} closed ${r.closed}` : "",
  ].join(" ");
}

/**
 * Runs the cluster benchmark with `args` (see the module doc) and writes
 * bench/results/<date>-<host>-cluster.md and .json.
 *
 * @example Usage
 * ```ts ignore
 * import { main } from "./cluster.ts";
 * await main(["--only", "rooms", "--reps", "1"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const scenarios = SCENARIOS.filter((s) => options.only.includes(s.name));
  const started = performance.now();
  const clustered = options.setups.some((s) => s !== "single");
  const cache = `${Deno.env.get("TMPDIR") ?? "/tmp"}/parley-bench-cache`;
  await Deno.mkdir(cache, { recursive: true });
  const users = Math.max(...scenarios.map((s) => s.clients));
  console.error(`bench: seeding ${users} users (SQLite cached in ${cache}; PostgreSQL) …`);
  const seededDb = await seededDatabase(cache, Math.max(2000, users));
  let redis: TestRedis | null = null;
  let pg: TestPostgres | null = null;
  const trials: ClusterTrial[] = [];
  try {
    let pgUrl = "";
    if (clustered) {
      [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
      pgUrl = await seedPostgres(pg, users);
    }
    const stage: Stage = { seededDb, pgUrl, redis };
    trials.push(
      ...await runInterleaved(
        scenarios,
        options.reps,
        options.setups,
        (scenario, setup, rep) => runTrial(options, scenario, setup, rep, stage),
        describe,
      ),
    );
  } finally {
    await Promise.all([redis?.stop(), pg?.stop()]);
  }
  const medians = summarize(trials);
  const info = {
    date: new Date().toISOString(),
    host: Deno.hostname(),
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency,
    seconds: (performance.now() - started) / 1000,
    args,
  };
  const markdown = renderMarkdown(options, medians, info);
  await Deno.mkdir(new URL("./results/", import.meta.url).pathname, { recursive: true });
  const report = { ...info, kernel: Deno.osRelease(), options, medians, trials };
  Deno.writeTextFileSync(`${options.out}.json`, JSON.stringify(report, null, 2) + "\n");
  Deno.writeTextFileSync(`${options.out}.md`, markdown);
  console.error(`bench: wrote ${options.out}.md and .json in ${info.seconds.toFixed(0)} s`);
  console.log(markdown);
}

if (import.meta.main) {
  await main(Deno.args);
}
