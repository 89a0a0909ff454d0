/**
 * `deno task bench`: runs the scenarios of issue 4 against Parley and the peers, repetitions
 * interleaved (A B C A B C), and writes bench/results/<date>-<host>.md and .json with the table of
 * medians, the ratios of Parley to each peer, and an SVG chart.
 *
 * ```sh
 * deno task bench                          # everything (about 12 minutes on 2 cores before
 *                                          # the TLS scenarios, a few more with them)
 * deno task bench --quick                  # one repetition, short windows, 2,000 idle connections
 * deno task bench --only fanout,rooms --servers parley,nats --reps 5
 * deno task bench --only fanout,fanout-tls,rooms,rooms-tls   # plain TCP and TLS, and their ratio
 * deno task bench --only fanout --procs 2  # the generator split over two processes
 * deno task bench --no-pin                # leave the cores to the scheduler (default: server
 *                                          # on core 0, generators on the others)
 * deno task bench --only fanout --servers parley --cpu-prof /tmp/prof   # Parley's CPU profile
 * deno task bench --only fanout --servers parley --strace /tmp/strace   # strace -c of Parley
 * deno task bench --only rooms-tls --servers parley --perf /tmp/perf  # perf record: server, gens
 * deno task bench --only rooms-tls --syscalls /tmp/calls  # socket system calls: server, gens
 * deno task bench --cluster                # 1 node against 2 sharing a Redis (bench/cluster.ts)
 * deno task bench --only failover          # a node killed or drained (bench/failover.ts)
 * ```
 *
 * @module
 */

import type { GenConfig, GenResult } from "./gen.ts";
import { GenProcess, workloadPart } from "./gen_process.ts";
import type { Report, ScenarioName, TrialRecord } from "./report.ts";
import { writeRendered } from "./render.ts";
import { startTracers, stopTracers } from "./tracers.ts";
import {
  ALL_SERVERS,
  coreSplit,
  cpuSeconds,
  installedPeers,
  machineBusySeconds,
  memoryKiB,
  pinProcess,
  PROTOCOL_OF,
  type RunningServer,
  seededDatabase,
  type ServerName,
  serverVersions,
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
import {
  allScenarios,
  PACED_CLIENTS,
  type Scenario,
  SCENARIO_ORDER,
  STORM_LOGINS,
  STORM_PACED,
} from "./scenarios.ts";
import { type BenchCert, makeBenchCert } from "./tls_cert.ts";
import { cachedUsers, COST as COSTLY_HASH_COST } from "./users.ts";

/** The benchmark's options. */
export interface Options {
  quick: boolean;
  only: ScenarioName[];
  /** Whether to run bench/restart.ts too, with the storm's users. */
  restart: boolean;
  servers: ServerName[];
  reps: number;
  procs: number;
  warmupMs: number;
  measureMs: number;
  idleConnections: number;
  /** Idle: how long RSS is watched after the window for the lowest reading. */
  idleSettleMs: number;
  window: number;
  batch: number;
  out: string;
  cpuProf: string;
  strace: string;
  /** perf record -g of the server and of each generator over the measured window, into here. */
  perf: string;
  /** perf stat of the socket system calls of the server and of each generator, into here. */
  syscalls: string;
  /** Server on core 0, generators on the others ({@linkcode coreSplit}); `--no-pin` turns it off. */
  pin: boolean;
}

/** How long the storm's logins may take before one counts as failed (Parley's). */
const STORM_LIMIT_MS = 600_000;

function parseOptions(args: string[]): Options {
  const value = flagReader(args);
  const quick = args.includes("--quick");
  // "restart" is bench/restart.ts, run after the others (it restarts one server many times).
  const named = listOption(value("--only"), [...SCENARIO_ORDER, "restart"], "scenario");
  const only = named.filter((s): s is ScenarioName => s !== "restart");
  const servers = listOption(value("--servers"), ALL_SERVERS, "server");
  const host = Deno.hostname();
  const date = new Date().toISOString().slice(0, 10);
  return {
    quick,
    only,
    restart: named.includes("restart"),
    servers,
    reps: Number(value("--reps") ?? (quick ? 1 : 3)),
    procs: Number(value("--procs") ?? 1),
    warmupMs: Number(value("--warmup-ms") ?? (quick ? 500 : 1000)),
    measureMs: Number(value("--measure-ms") ?? (quick ? 1500 : 3000)),
    idleConnections: Number(value("--idle") ?? (quick ? 2000 : 10_000)),
    idleSettleMs: Number(value("--idle-settle-ms") ?? (quick ? 10_000 : 40_000)),
    window: Number(value("--window") ?? 524_288),
    batch: Number(value("--batch") ?? 16),
    out: value("--out") ??
      new URL(`./results/${date}-${host}${quick ? "-quick" : ""}`, import.meta.url).pathname,
    cpuProf: value("--cpu-prof") ?? "",
    strace: value("--strace") ?? "",
    perf: value("--perf") ?? "",
    syscalls: value("--syscalls") ?? "",
    pin: !args.includes("--no-pin"),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function genConfig(
  options: Options,
  scenario: Scenario,
  server: RunningServer,
  part: number,
  parts: number,
  cert: BenchCert | null,
): GenConfig {
  const workload = { name: scenario.workload, clients: scenario.clients, rooms: scenario.rooms };
  return {
    ...workloadPart(workload, part, parts, options),
    protocol: PROTOCOL_OF[server.name],
    port: server.port,
    tls: scenario.tls,
    caPem: scenario.tls ? cert?.certPem : undefined,
    // InspIRCd 3 completes a registration on its once-a-second timer: set many up at once.
    // ngircd listens with a backlog of 10: more connects at once get their SYNs dropped and
    // retried seconds later.
    connectConcurrency: server.name === "inspircd" ? 1000 : server.name === "ngircd" ? 8 : 64,
    readBufferBytes: scenario.name === "idle" ? 1024 : 64 * 1024,
  };
}

/** What a run makes once for all its trials. */
interface RunFiles {
  /** Parley's database of users u0…, copied for each trial. */
  seededDb: string;
  /** Parley's database of the storm's users (bench/users.ts). */
  stormDb: string;
  /** The TLS scenarios' certificate, when any runs. */
  cert: BenchCert | null;
}

/** One scenario against one server: start it, drive it, measure, stop it. */
async function runTrial(
  options: Options,
  scenario: Scenario,
  name: ServerName,
  rep: number,
  files: RunFiles,
): Promise<TrialRecord> {
  const { seededDb, stormDb, cert } = files;
  if (scenario.tls && cert === null) throw new Error(`${scenario.name} needs a certificate`);
  const dir = await Deno.makeTempDir({ prefix: `parley-bench-${name}-` });
  const denoFlags = options.cpuProf
    ? [
      "--cpu-prof",
      `--cpu-prof-dir=${options.cpuProf}`,
      `--cpu-prof-name=${scenario.name}-${rep}.cpuprofile`,
    ]
    : [];
  const storm = scenario.name === "storm";
  // The storm runs Parley as an operator would: the default hash cost, and users with distinct
  // passwords hashed at it (the paced clients are r0…r99, the storm's logins the next ones).
  const server = storm && name === "parley"
    ? await startServer(name, {
      dir,
      seededDb: stormDb,
      denoFlags,
      parleyArgs: ["--hash-cost", String(COSTLY_HASH_COST)],
    })
    : await startServer(name, { dir, seededDb, denoFlags, tls: scenario.tls ? cert! : undefined });
  const cores = options.pin ? coreSplit() : null;
  if (cores) pinProcess(server.pid, cores.server);
  const costlyLogins = storm && name === "parley";
  const gens: GenProcess[] = [];
  const record: TrialRecord = {
    scenario: scenario.name,
    server: name,
    rep,
    deliveredPerSec: null,
    sentPerSec: null,
    p50Ms: null,
    p99Ms: null,
    p999Ms: null,
    maxMs: null,
    serverCpuSec: null,
    serverCpuPct: null,
    peakRssKiB: null,
    rssPerConnKiB: null,
    settledRssPerConnKiB: null,
    stormMs: null,
    genCpuPct: null,
    otherCpuPct: null,
    failed: 0,
    closed: 0,
    error: null,
  };
  let tracers: Deno.ChildProcess[] = [];
  try {
    await sleep(200);
    const baseRss = memoryKiB(server.pid, "VmRSS");
    const procs = scenario.name === "idle" || storm || scenario.name === "paced"
      ? 1
      : options.procs;
    if (storm) {
      gens.push(
        new GenProcess({
          ...genConfig(options, STORM_PACED, server, 0, 1, cert),
          costlyLogins,
          untilStop: true,
        }),
      );
    } else {
      for (let p = 0; p < procs; p++) {
        gens.push(new GenProcess(genConfig(options, scenario, server, p, procs, cert)));
      }
    }
    if (cores) { for (const g of gens) pinProcess(g.child.pid, cores.generators); }
    // 10,000 logins on a loaded machine can take minutes.
    const setupTimeout = 180_000 + 20 * scenario.clients;
    for (const g of gens) {
      const ready = JSON.parse(await g.expect("READY", setupTimeout));
      record.failed += ready.failed;
    }
    let stormGen: GenProcess | null = null;
    if (storm) {
      stormGen = new GenProcess({
        ...genConfig(options, scenario, server, 0, 1, cert),
        scenario: "storm",
        first: costlyLogins ? PACED_CLIENTS : 1000,
        count: scenario.clients,
        costlyLogins,
        // Each login is a full scrypt at the production cost, one at a time: minutes on 2 cores.
        stormLimitMs: costlyLogins ? STORM_LIMIT_MS : undefined,
      });
      if (cores) pinProcess(stormGen.child.pid, cores.generators);
      await stormGen.expect("READY", setupTimeout);
    }
    const measureMs = storm ? Math.max(options.measureMs, 4000) : options.measureMs;
    // The storm's paced clients measure until told to STOP, after the storm.
    const goMs = storm ? STORM_LIMIT_MS + 60_000 : measureMs;
    for (const g of gens) await g.send(`GO ${options.warmupMs} ${goMs}`);
    await sleep(options.warmupMs);
    const cpu0 = cpuSeconds(server.pid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    const trace = `${scenario.name}-${name}-${rep}`;
    tracers = await startTracers(options, trace, server.pid, gens.map((g) => g.child.pid));
    let stormWindow = "WINDOW 0 0";
    if (stormGen) {
      await sleep(500);
      await stormGen.send(`GO 0 0`);
      await stormGen.expect("DONE", STORM_LIMIT_MS + 30_000);
      await stormGen.send("WINDOW 0 0");
      const s = JSON.parse(await stormGen.expect("RESULT", 30_000)) as GenResult;
      record.stormMs = s.stormMs ?? null;
      record.failed += s.failed;
      stormWindow = `WINDOW ${s.stormStartUs} ${s.stormEndUs}`;
    }
    const left = measureMs - (performance.now() - t0);
    if (left > 0) await sleep(left);
    if (storm) { for (const g of gens) await g.send("STOP"); }
    const cpu1 = cpuSeconds(server.pid);
    const busy1 = machineBusySeconds();
    const t1 = performance.now();
    await stopTracers(tracers, "SIGINT");
    tracers = [];
    const results: GenResult[] = [];
    for (const g of gens) await g.expect("DONE", 60_000);
    // Idle: a generator holds its connections until it is sent the window line, and hangs up once
    // it has answered it, so the server's memory is read before that, clients held.
    let idleRss = 0;
    let idleLowest = 0;
    if (scenario.name === "idle") {
      idleRss = idleLowest = memoryKiB(server.pid, "VmRSS");
      // V8 keeps the young generation it grew during setup until its memory reducer runs, some
      // 10–30 s after allocation stops: what an idle server holds is the lowest reading after.
      for (const end = performance.now() + options.idleSettleMs; performance.now() < end;) {
        await sleep(1000);
        idleLowest = Math.min(idleLowest, memoryKiB(server.pid, "VmRSS"));
      }
    }
    for (const g of gens) {
      await g.send(stormWindow);
      results.push(JSON.parse(await g.expect("RESULT", 60_000)));
    }
    const seconds = results[0].seconds;
    record.deliveredPerSec = results.reduce((a, r) => a + r.delivered, 0) / seconds;
    record.sentPerSec = results.reduce((a, r) => a + r.sent, 0) / seconds;
    // The storm is judged by the latency while its logins ran (the window).
    const pick = (r: GenResult) =>
      storm
        ? [r.windowP50Us, r.windowP99Us, r.windowP999Us, r.windowMaxUs]
        : [r.p50Us, r.p99Us, r.p999Us, r.maxUs];
    // With several generators, report the worst of their percentiles.
    record.p50Ms = worstMs(results.map((r) => pick(r)[0]));
    record.p99Ms = worstMs(results.map((r) => pick(r)[1]));
    record.p999Ms = worstMs(results.map((r) => pick(r)[2]));
    record.maxMs = worstMs(results.map((r) => pick(r)[3]));
    record.serverCpuSec = cpu1 - cpu0;
    record.serverCpuPct = (100 * (cpu1 - cpu0)) / ((t1 - t0) / 1000);
    record.genCpuPct = Math.max(...results.map((r) => (100 * r.genCpuSeconds) / r.seconds));
    const genCpu = results.reduce((a, r) => a + r.genCpuSeconds, 0);
    record.otherCpuPct = (100 * (busy1 - busy0 - (cpu1 - cpu0) - genCpu)) / ((t1 - t0) / 1000);
    record.closed = results.reduce((a, r) => a + r.closed, 0);
    record.peakRssKiB = memoryKiB(server.pid, "VmHWM");
    if (scenario.name === "idle") {
      const held = scenario.clients - record.failed - record.closed;
      record.rssPerConnKiB = held > 0 ? (idleRss - baseRss) / held : null;
      record.settledRssPerConnKiB = held > 0 ? (idleLowest - baseRss) / held : null;
    }
  } catch (error) {
    record.error = error instanceof Error ? error.message.slice(0, 500) : String(error);
  } finally {
    await stopTracers(tracers, "SIGKILL");
    await Promise.all(gens.map((g) => g.stop()));
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return record;
}

function summarize(trials: TrialRecord[]): TrialRecord[] {
  return summarizeTrials(trials, (t) => `${t.scenario}/${t.server}`, (first, m) => ({
    scenario: first.scenario,
    server: first.server,
    serverCpuSec: m((t) => t.serverCpuSec),
    serverCpuPct: m((t) => t.serverCpuPct),
    peakRssKiB: m((t) => t.peakRssKiB),
    rssPerConnKiB: m((t) => t.rssPerConnKiB),
    settledRssPerConnKiB: m((t) => t.settledRssPerConnKiB ?? null),
    stormMs: m((t) => t.stormMs),
  }));
}

async function main(): Promise<void> {
  if (Deno.args.includes("--cluster")) {
    // The cluster scenario set has setups, not peers: bench/cluster.ts runs it.
    const { main: cluster } = await import("./cluster.ts");
    return await cluster(Deno.args.filter((a) => a !== "--cluster"));
  }
  const only = Deno.args.indexOf("--only");
  if (only !== -1 && Deno.args[only + 1] === "failover") {
    // A node of a cluster killed or drained behind HAProxy: bench/failover.ts runs it.
    const { main: failover } = await import("./failover.ts");
    return await failover(Deno.args.filter((_, i) => i !== only && i !== only + 1));
  }
  const options = parseOptions(Deno.args);
  const installed = installedPeers();
  const missing = options.servers.filter((s) => s !== "parley" && !installed.includes(s));
  if (missing.length > 0) {
    console.error(
      `bench: not installed: ${missing.join(", ")} (apt-get install nats-server redis-server ` +
        `ngircd inspircd); running without them`,
    );
    options.servers = options.servers.filter((s) => !missing.includes(s));
  }
  const list = allScenarios(options.idleConnections).filter((s) => options.only.includes(s.name));
  const started = performance.now();
  const cache = `${Deno.env.get("TMPDIR") ?? "/tmp"}/parley-bench-cache`;
  await Deno.mkdir(cache, { recursive: true });
  let seededDb = "";
  if (options.servers.includes("parley")) {
    const users = Math.max(2000, list.some((s) => s.name === "idle") ? options.idleConnections : 0);
    console.error(`bench: seeding ${users} users (cached in ${cache}) …`);
    seededDb = await seededDatabase(cache, users);
  }
  let stormDb = "";
  if (options.servers.includes("parley") && list.some((s) => s.name === "storm")) {
    stormDb = await cachedUsers(PACED_CLIENTS + STORM_LOGINS);
  }
  // One throwaway certificate for every TLS trial of the run.
  const cert = list.some((s) => s.tls) ? await makeBenchCert() : null;
  const files: RunFiles = { seededDb, stormDb, cert };
  let trials: TrialRecord[];
  try {
    trials = await runInterleaved(
      list,
      options.reps,
      options.servers,
      (scenario, name, rep) => runTrial(options, scenario, name, rep, files),
      describe,
    );
  } finally {
    if (cert) await Deno.remove(cert.dir, { recursive: true }).catch(() => {});
  }
  const report: Report = {
    date: new Date().toISOString(),
    host: Deno.hostname(),
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency,
    kernel: Deno.osRelease(),
    versions: serverVersions(options.servers),
    options: { ...options },
    scenarios: list.map((s) => ({ name: s.name, title: s.title })),
    servers: options.servers,
    medians: summarize(trials),
    trials,
    totalSeconds: (performance.now() - started) / 1000,
  };
  await Deno.mkdir(new URL("./results/", import.meta.url).pathname, { recursive: true });
  const base = options.out;
  Deno.writeTextFileSync(`${base}.json`, JSON.stringify(report, null, 2) + "\n");
  // A finished restart run wrote <base>-restart.md; a failed one says so at the end.
  const restartFailure = options.restart ? await runRestart(options, base) : "";
  const markdown = writeRendered(report, base, options.restart && !restartFailure, restartFailure);
  console.error(`bench: wrote ${base}.md, .json and .svg in ${report.totalSeconds.toFixed(0)} s`);
  console.log(markdown);
}

/**
 * Runs bench/restart.ts with the storm's users (the same cached database); it writes its report
 * to `<base>-restart.md`. Returns "" or, if it failed, a line that says so.
 */
async function runRestart(options: Options, base: string): Promise<string> {
  const clients = options.quick ? 60 : PACED_CLIENTS + STORM_LOGINS;
  const args = ["run", "-A", new URL("./restart.ts", import.meta.url).pathname];
  args.push("--clients", String(clients), "--out", `${base}-restart`);
  if (options.quick) args.push("--quick");
  else args.push("--reps", String(options.reps), "--password-reps", "1");
  console.error(`bench: restart with ${clients} clients (bench/restart.ts) …`);
  const status = await new Deno.Command(Deno.execPath(), { args, stdout: "inherit" }).spawn()
    .status;
  return status.success ? "" : `\nrestart: bench/restart.ts exited ${status.code}\n`;
}

function describe(r: TrialRecord): string {
  if (r.error) return `ERROR ${r.error}`;
  const parts = [
    `${fmt(r.deliveredPerSec)} msg/s (sent ${fmt(r.sentPerSec)})`,
    `p50 ${fmt(r.p50Ms)} p99 ${fmt(r.p99Ms)} p99.9 ${fmt(r.p999Ms)} max ${fmt(r.maxMs)} ms`,
    `cpu ${fmt(r.serverCpuPct)}% gen ${fmt(r.genCpuPct)}% other ${fmt(r.otherCpuPct)}%`,
    `rss ${fmt(r.peakRssKiB)} KiB`,
  ];
  if (r.rssPerConnKiB !== null) {
    parts.push(`${fmt(r.rssPerConnKiB)} KiB/conn (settled ${fmt(r.settledRssPerConnKiB ?? null)})`);
  }
  if (r.stormMs !== null) parts.push(`storm ${fmt(r.stormMs)} ms`);
  if (r.failed || r.closed) parts.push(`failed ${r.failed} closed ${r.closed}`);
  return parts.join(" ");
}

function fmt(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString("en");
  return x.toFixed(2);
}

if (import.meta.main) {
  await main();
}
