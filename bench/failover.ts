/**
 * A mass reconnect across the cluster (issues "resume" and "the cluster in production"): two
 * Parley nodes on one Redis and one PostgreSQL, HAProxy in front with deploy/haproxy.cfg, N users
 * with distinct passwords at the production hash cost (bench/users.ts) in 100 rooms, each a
 * {@linkcode ParleyClient} with `reconnect` on (bench/failover_gen.ts). Then one node goes:
 *
 * - `kill`: SIGKILL. Its clients lose their connections, come back through HAProxy by token on
 *   the other node and rejoin their rooms. Reported: the time from the kill until every one of
 *   them is back in its room, and until a message sent to each room has reached every client;
 *   compared with `--node-ttl-ms` + 2 s (the issue's target);
 * - `drain`: SIGTERM, the node drains over `--drain-ms`; the same times from the signal.
 *
 * Besides: tokens refused (the survivor's `parley_failed_logins_total`, and as the clients saw
 * it), password fallbacks, clients that ended or failed to rejoin, the rooms' members as the
 * survivor lists them (nobody missing, nobody twice, and its `parley_sessions` = N), and the same
 * again, with a second message, once the dead node's TTL has run out. The node then starts again,
 * and half the clients move back to it by token (not measured) before the next trial, which takes
 * the other node down. Cases alternate within each repetition; the report gives medians.
 *
 * ```sh
 * deno run -A bench/failover.ts --quick              # 60 clients, 1 rep of each case
 * deno run -A bench/failover.ts --clients 2000       # 3 reps of kill and drain
 * deno task bench --only failover --clients 2000     # the same, through bench/run.ts
 * ```
 *
 * Flags: `--clients N`, `--reps N` (3), `--cases kill,drain`, `--procs N` (client processes,
 * default one per 10,000 clients), `--node-ttl-ms` (10,000, the default), `--drain-ms` (2,000,
 * the default), `--inter` (HAProxy's check interval, `2s` as documented), `--out PATH`.
 *
 * @module
 */

import { startNode } from "../tests/cluster_support.ts";
import {
  CONFIG,
  haproxyInstalled,
  renderConfig,
  type RunningHaproxy,
  servers,
  startHaproxy,
  untilServers,
} from "../tests/haproxy_support.ts";
import type { TestServer } from "../tests/helpers.ts";
import { startPostgres, type TestPostgres } from "../tests/pg_support.ts";
import { freePort, startRedis, type TestRedis } from "../tests/redis_support.ts";
import type { FailoverGenConfig } from "./failover_gen.ts";
import { GenProcess } from "./gen_process.ts";
import { cpuSeconds } from "./servers.ts";
import { cpuModel, flagReader, listOption, median } from "./stats.ts";
import { cachedUsers, cheapUsers, COST, userOf } from "./users.ts";

type Case = "kill" | "drain";
const CASES: Case[] = ["kill", "drain"];
const ROOMS = 100;
const GEN = new URL("./failover_gen.ts", import.meta.url).pathname;

interface Options {
  clients: number;
  reps: number;
  cases: Case[];
  procs: number;
  nodeTtlMs: number;
  drainMs: number;
  inter: string;
  /** Lines added to the backend, before its servers (`--haproxy "no option redispatch"`). */
  backendLines: string;
  out: string;
}

/** One trial: one node taken down. Times in ms from the kill or the SIGTERM. */
export interface FailoverTrial {
  case: Case;
  rep: number;
  node: string;
  /** Clients HAProxy had on that node. */
  victims: number;
  lost: number;
  back: number;
  /** Until HAProxy marked the node DOWN (null: not seen). */
  downMs: number | null;
  /** Until every lost client was back in its room; until the first was. */
  backMs: number | null;
  firstBackMs: number | null;
  /** CPU % of one core over [signal, all back]: the surviving node, the client processes. */
  survivorCpuPct: number | null;
  clientsCpuPct: number | null;
  /** Until the message sent to each room (once all were back) had reached every client. */
  heardMs: number | null;
  heard: number;
  /** The survivor's failed logins during the trial: refused tokens. */
  refusedTokens: number;
  /** Password logins after a refused (or missing) token, as the clients saw them. */
  fallbacks: number;
  ended: number;
  rejoinErrors: number;
  /** Reconnect tries of the lost clients, in all, and the most any one needed. */
  attempts: number;
  maxAttempt: number;
  /** Rooms whose members were not exactly their users, once all were back. */
  badRooms: number;
  /** The survivor's `parley_sessions` once all were back (N expected). */
  sessions: number | null;
  /** After the dead node's TTL: clients that missed a second message, and bad rooms. */
  missedAfterTtl: number;
  badRoomsAfterTtl: number;
  error: string | null;
}

function parseOptions(args: string[]): Options {
  const value = flagReader(args);
  const quick = args.includes("--quick");
  const clients = Number(value("--clients") ?? (quick ? 60 : 2000));
  const date = new Date().toISOString().slice(0, 10);
  for (const flag of ["--clients", "--reps", "--procs", "--node-ttl-ms", "--drain-ms"]) {
    const given = value(flag);
    if (given !== undefined && !(Number.isInteger(Number(given)) && Number(given) >= 0)) {
      console.error(`bench/failover.ts: ${flag} ${given}: not a whole number`);
      Deno.exit(2);
    }
  }
  return {
    clients,
    reps: Number(value("--reps") ?? (quick ? 1 : 3)),
    cases: listOption(value("--cases"), CASES, "case"),
    procs: Number(value("--procs") ?? Math.ceil(clients / 10_000)),
    nodeTtlMs: Number(value("--node-ttl-ms") ?? 10_000),
    drainMs: Number(value("--drain-ms") ?? 2000),
    inter: value("--inter") ?? "2s",
    backendLines: (value("--haproxy") ?? "").split(";").map((l) => `    ${l.trim()}`).join("\n"),
    out: value("--out") ??
      new URL(`./results/${date}-cluster-failover-${clients}`, import.meta.url).pathname,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A metric's value on a node's /metrics. */
async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const found = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  if (found === null) throw new Error(`no ${name} on :${port}`);
  return Number(found[1]);
}

/**
 * A free port below the kernel's ephemeral range: a node restarts on the same port (HAProxy's
 * config names it), and while it is down, a port from that range may be taken by any of the
 * thousands of outgoing connections, which made the restart fail with EADDRINUSE.
 */
function fixedPort(): number {
  const [low] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").split(/\s+/);
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (Number(low) - 10_000));
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // taken: another
    }
  }
}

/** The cluster, HAProxy and the client processes of one run. */
class Stage {
  nodes: TestServer[] = [];
  gens: GenProcess[] = [];
  haproxy: RunningHaproxy | null = null;
  readonly ports = [fixedPort(), fixedPort()];
  readonly metricsPorts = [fixedPort(), fixedPort()];
  readonly front = freePort();
  constructor(
    readonly options: Options,
    readonly redis: TestRedis,
    readonly db: string,
    readonly dir: string,
  ) {}

  get socket(): string {
    return `${this.dir}/admin.sock`;
  }

  /** Starts node k (`n<k+1>`) on its port, hashing new passwords at `cost`. */
  async startNode(k: number, cost = COST): Promise<TestServer> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#startNode(k, cost);
      } catch (error) {
        // Another process may hold the port a moment: try again.
        if (attempt >= 30 || !String(error).includes("Address already in use")) throw error;
        await sleep(1000);
      }
    }
  }

  #startNode(k: number, cost: number): Promise<TestServer> {
    return startNode({
      redis: this.redis.url,
      db: this.db,
      nodeId: `n${k + 1}`,
      nodeTtlMs: this.options.nodeTtlMs,
      port: this.ports[k],
      args: [
        ...["--metrics-port", String(this.metricsPorts[k]), "--hash-cost", String(cost)],
        ...["--max-connections", String(this.options.clients + 1000)],
        ...["--drain-ms", String(this.options.drainMs)],
        // deploy/haproxy.cfg sends a PROXY v2 header; HAProxy connects from 127.0.0.1.
        ...["--proxy-protocol", "127.0.0.1"],
      ],
    });
  }

  /** Starts node k again, waits until HAProxy counts it UP, and moves half the clients to it. */
  async bringBack(k: number): Promise<void> {
    const name = `n${k + 1}`;
    this.nodes[k] = await this.startNode(k);
    await untilServers(this.socket, (m) => m.get(name)?.status === "UP", `${name} UP`, 60_000);
    await this.rebalance();
  }

  /** Half the clients leave and come back by token: leastconn spreads them over both nodes. */
  async rebalance(): Promise<void> {
    await sleep(1500); // past the rendered slowstart
    const moved = await this.ask("MOVE", "MOVED", 600_000);
    const spread = await servers(this.socket);
    console.log(
      `  moved back: ${moved.map((m) => `${m.ms} ms`).join(", ")}; n1 ${spread.get("n1")?.scur}, ` +
        `n2 ${spread.get("n2")?.scur}`,
    );
  }

  /**
   * After the first logins: raises the stored hashes to the production cost, and restarts each
   * node in turn at that cost (its clients come back on the other by token).
   */
  async toProduction(raise: () => Promise<void>): Promise<void> {
    await raise();
    for (let k = 0; k < 2; k++) {
      await this.nodes[k].stop("SIGTERM");
      this.nodes[k] = await this.startNode(k);
      const name = `n${k + 1}`;
      await untilServers(this.socket, (m) => m.get(name)?.status === "UP", `${name} UP`, 60_000);
      const deadline = Date.now() + 300_000;
      while ((await this.status()).connected < this.options.clients) {
        if (Date.now() > deadline) throw new Error("clients not all back after a restart");
        await sleep(200);
      }
    }
    await this.rebalance(); // n1 holds everyone now
  }

  /** Sends `line` to every client process and reads one `word` line from each. */
  async ask(line: string, word: string, timeoutMs = 30_000): Promise<Record<string, number>[]> {
    for (const g of this.gens) await g.send(line);
    return await Promise.all(
      this.gens.map(async (g) => JSON.parse(await g.expect(word, timeoutMs))),
    );
  }

  async status(): Promise<Record<string, number>> {
    const all = await this.ask("STATUS", "STATUS");
    const sum: Record<string, number> = {};
    for (const s of all) {
      for (const [k, v] of Object.entries(s)) {
        if (k.startsWith("last")) sum[k] = Math.max(sum[k] ?? 0, v);
        else if (k.startsWith("first")) sum[k] = v > 0 ? Math.min(sum[k] || v, v) : sum[k] ?? 0;
        else sum[k] = (sum[k] ?? 0) + v;
      }
    }
    return sum;
  }

  /** Rooms whose members, as the first client process's first client sees them, are wrong. */
  async badRooms(): Promise<number> {
    await this.gens[0].send("ROOMS");
    const rooms: Record<string, string[]> = JSON.parse(await this.gens[0].expect("ROOMS", 30_000));
    let bad = 0;
    for (let r = 0; r < ROOMS; r++) {
      const want = [];
      for (let i = r; i < this.options.clients; i += ROOMS) want.push(userOf(i));
      const got = rooms[`room${r}`] ?? [];
      if (got.length !== want.length || new Set(got).size !== got.length) bad++;
      else if (want.some((u) => !got.includes(u))) bad++;
    }
    return bad;
  }

  /** Sends a message to every room; resolves to when the last client heard it (epoch ms). */
  async message(tag: string, timeoutMs: number): Promise<{ heard: number; lastHeardAt: number }> {
    for (const g of this.gens) await g.send(`HEAR ${tag}`);
    for (const g of this.gens) await g.send(`SAY ${tag}`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status();
      if (s.heard >= this.options.clients || Date.now() > deadline) return s as never;
      await sleep(100);
    }
  }
}

async function trial(stage: Stage, c: Case, rep: number, k: number): Promise<FailoverTrial> {
  const { options } = stage;
  const name = `n${k + 1}`;
  const survivor = 1 - k;
  const record: FailoverTrial = {
    case: c,
    rep,
    node: name,
    victims: 0,
    lost: 0,
    back: 0,
    downMs: null,
    backMs: null,
    firstBackMs: null,
    survivorCpuPct: null,
    clientsCpuPct: null,
    heardMs: null,
    heard: 0,
    refusedTokens: 0,
    fallbacks: 0,
    ended: 0,
    rejoinErrors: 0,
    attempts: 0,
    maxAttempt: 0,
    badRooms: 0,
    sessions: null,
    missedAfterTtl: 0,
    badRoomsAfterTtl: 0,
    error: null,
  };
  await stage.ask("STATUS", "STATUS"); // every process idle
  for (const g of stage.gens) await g.send("MARK");
  record.victims = (await servers(stage.socket)).get(name)?.scur ?? 0;
  const failed0 = await metric(stage.metricsPorts[survivor], "parley_failed_logins_total");
  const cpu = () => [
    cpuSeconds(stage.nodes[survivor].process.pid),
    stage.gens.reduce((a, g) => a + cpuSeconds(g.child.pid), 0),
  ];
  const cpu0 = cpu();
  const t0 = Date.now();
  const stopping = stage.nodes[k].stop(c === "kill" ? "SIGKILL" : "SIGTERM");
  const deadline = t0 + 120_000;
  let s: Record<string, number> = {};
  for (;;) {
    s = await stage.status();
    const state = (await servers(stage.socket)).get(name)?.status ?? "";
    if (record.downMs === null && state.startsWith("DOWN")) {
      record.downMs = Date.now() - t0;
    }
    if (s.lost >= record.victims && s.back >= s.lost) break;
    if (Date.now() > deadline) {
      record.error = `stuck: ${s.back} of ${s.lost} lost clients back after 120 s`;
      break;
    }
    await sleep(100);
  }
  Object.assign(record, { lost: s.lost, back: s.back, ended: s.ended });
  Object.assign(record, { attempts: s.attempts, maxAttempt: s.lastAttempt });
  const cpu1 = cpu();
  record.survivorCpuPct = (100 * (cpu1[0] - cpu0[0])) / ((Date.now() - t0) / 1000);
  record.clientsCpuPct = (100 * (cpu1[1] - cpu0[1])) / ((Date.now() - t0) / 1000);
  if (record.error === null) record.backMs = s.lastBackAt - t0;
  if (s.firstBackAt > 0) record.firstBackMs = s.firstBackAt - t0;
  const heard = await stage.message(`m-${c}-${rep}`, 30_000);
  record.heard = heard.heard;
  if (heard.heard >= options.clients) record.heardMs = heard.lastHeardAt - t0;
  record.badRooms = await stage.badRooms();
  record.sessions = await metric(stage.metricsPorts[survivor], "parley_sessions");
  // Once the dead node's TTL has run out, the survivor drops what it held: nobody who came back
  // may go with it.
  await sleep(Math.max(0, t0 + options.nodeTtlMs + 2000 - Date.now()));
  const again = await stage.message(`t-${c}-${rep}`, 10_000);
  record.missedAfterTtl = options.clients - again.heard;
  record.badRoomsAfterTtl = await stage.badRooms();
  s = await stage.status();
  record.fallbacks = s.fallbacks;
  record.rejoinErrors = s.rejoinErrors;
  record.ended = s.ended;
  record.refusedTokens = await metric(stage.metricsPorts[survivor], "parley_failed_logins_total") -
    failed0;
  await stopping;
  await stage.bringBack(k); // two nodes again, half the clients on each
  return record;
}

function fmt(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 1000).toFixed(2)} s`;
}

function describe(t: FailoverTrial): string {
  return `${t.case} #${t.rep} (${t.node}, ${t.victims} clients): HAProxy DOWN ${fmt(t.downMs)}, ` +
    `back ${fmt(t.firstBackMs)} (first) to ${fmt(t.backMs)} (all), message reached all ${
      fmt(t.heardMs)
    }; tokens refused ` +
    `${t.refusedTokens}, password fallbacks ${t.fallbacks}, ended ${t.ended}, rejoin errors ` +
    `${t.rejoinErrors}, tries ${t.attempts} (at most ${t.maxAttempt}), bad rooms ${t.badRooms}/${t.badRoomsAfterTtl} (after TTL), survivor ` +
    `sessions ${t.sessions}, missed after TTL ${t.missedAfterTtl}; CPU survivor ` +
    `${t.survivorCpuPct?.toFixed(0)} %, clients ${t.clientsCpuPct?.toFixed(0)} %` +
    (t.error ? `; ${t.error}` : "");
}

/**
 * Runs the benchmark with `args` (see the module doc) and writes `<out>.md` and `.json`.
 *
 * @example Usage
 * ```ts ignore
 * import { main } from "./failover.ts";
 * await main(["--clients", "2000"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  if (!haproxyInstalled) throw new Error("bench/failover.ts: no /usr/sbin/haproxy");
  const options = parseOptions(args);
  const started = performance.now();
  const file = await cachedUsers(options.clients);
  const dir = await Deno.makeTempDir({ prefix: "parley-failover-" });
  let redis: TestRedis | undefined;
  let pg: TestPostgres | undefined;
  let stage: Stage | undefined;
  const trials: FailoverTrial[] = [];
  try {
    [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
    const db = await pg.createDatabase();
    const raise = await cheapUsers(file, db, options.clients);
    stage = new Stage(options, redis, db, dir);
    for (let k = 0; k < 2; k++) stage.nodes.push(await stage.startNode(k, 10));
    const config = renderConfig(await Deno.readTextFile(CONFIG), {
      front: stage.front,
      nodes: stage.ports.map((port, k) => ({ port, metricsPort: stage!.metricsPorts[k] })),
      socket: stage.socket,
      maxconn: 2 * options.clients + 1000,
      inter: options.inter,
      slowstart: "1s",
    }).replace(/^(\s*server n1 )/m, `${options.backendLines}\n$1`);
    await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
    stage.haproxy = startHaproxy(`${dir}/haproxy.cfg`);
    await untilServers(stage.socket, (m) => [...m.values()].every((v) => v.status === "UP"), "UP");
    console.log(`${options.clients} clients logging in by password (not measured)…`);
    const per = Math.ceil(options.clients / options.procs);
    for (let p = 0; p < options.procs; p++) {
      const config: FailoverGenConfig = {
        port: stage.front,
        first: p * per,
        count: Math.min(per, options.clients - p * per),
        rooms: ROOMS,
        loginsInFlight: 16,
      };
      stage.gens.push(new GenProcess(config, GEN));
    }
    const ready = await Promise.all(stage.gens.map((g) => g.expect("READY", 3_600_000)));
    console.log(`  logged in: ${ready.join(", ")}; raising the hashes to cost ${COST}…`);
    await stage.toProduction(raise);
    let n = 0;
    for (let rep = 1; rep <= options.reps; rep++) {
      for (const c of options.cases) {
        const t = await trial(stage, c, rep, n++ % 2);
        console.log(describe(t));
        trials.push(t);
      }
    }
  } finally {
    await Promise.all(stage?.gens.map((g) => g.stop()) ?? []);
    await stage?.haproxy?.stop();
    await Promise.all(stage?.nodes.map((node) => node.stop()) ?? []);
    await Promise.all([redis?.stop(), pg?.stop()]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const seconds = (performance.now() - started) / 1000;
  const markdown = report(options, trials, args, seconds);
  await Deno.mkdir(new URL("./results/", import.meta.url).pathname, { recursive: true });
  await Deno.writeTextFile(`${options.out}.md`, markdown);
  await Deno.writeTextFile(
    `${options.out}.json`,
    JSON.stringify({ options, machine: machine(), trials }, null, 2) + "\n",
  );
  console.log(`\n${markdown}\nwrote ${options.out}.md and .json in ${seconds.toFixed(0)} s`);
}

function machine(): string {
  return `${navigator.hardwareConcurrency} cores, ${cpuModel()}, Deno ${Deno.version.deno}`;
}

function report(options: Options, trials: FailoverTrial[], args: string[], s: number): string {
  const date = new Date().toISOString().slice(0, 10);
  const target = options.nodeTtlMs + 2000;
  const rows = options.cases.map((c) => {
    const mine = trials.filter((t) => t.case === c);
    const m = (f: (t: FailoverTrial) => number | null) =>
      median(mine.map(f).filter((x): x is number => x !== null));
    const sum = (f: (t: FailoverTrial) => number) => mine.reduce((a, t) => a + f(t), 0);
    return `| ${c} | ${mine.length} | ${m((t) => t.victims)} | ${fmt(m((t) => t.downMs))} | ` +
      `${fmt(m((t) => t.backMs))} | ${fmt(m((t) => t.heardMs))} | ` +
      `${sum((t) => t.refusedTokens)} | ${sum((t) => t.fallbacks)} | ` +
      `${sum((t) => t.ended + t.rejoinErrors + t.missedAfterTtl + (t.error ? 1 : 0))} | ` +
      `${sum((t) => t.badRooms + t.badRoomsAfterTtl)} |`;
  });
  return [
    `# Cluster failover with ${options.clients.toLocaleString("en")} clients (${date})`,
    "",
    `\`deno run -A bench/failover.ts ${args.join(" ")}\` (${s.toFixed(0)} s): 2 nodes on Redis ` +
    `and PostgreSQL behind HAProxy (deploy/haproxy.cfg, \`inter ${options.inter} fall 3 rise 2\`, ` +
    `\`on-marked-down shutdown-sessions\`, slowstart 1s), \`--node-ttl-ms ${options.nodeTtlMs}\`, ` +
    `\`--drain-ms ${options.drainMs}\`, ${options.clients} users with distinct passwords at hash ` +
    `cost ${COST} in ${ROOMS} rooms, lib/client/client.ts with \`reconnect\` (default backoff). ` +
    `Times from the SIGKILL or SIGTERM; medians of the trials. Target for kill: ` +
    `${fmt(target)} (\`--node-ttl-ms\` + 2 s).`,
    "",
    "| case | trials | clients on the node | HAProxy DOWN | all back in rooms | message reached all " +
    "| tokens refused | password fallbacks | lost (ended, rejoin errors, missed msgs) | bad rooms |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    "",
    `Machine: ${machine()}.`,
    "",
    "Trials:",
    "",
    ...trials.map((t) => `- ${describe(t)}`),
    "",
  ].join("\n");
}

if (import.meta.main) {
  await main(Deno.args);
}
