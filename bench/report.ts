/**
 * The benchmark's report: the Markdown table of medians, the ratios of Parley to each peer, the
 * targets of issues 4 and 17, and an SVG chart of delivered messages a second and p99 latency
 * (hand-written SVG).
 *
 * @module
 */

import type { GenScenario } from "./gen.ts";
import type { ServerName } from "./servers.ts";

/** A scenario of bench/run.ts: a generator workload, or fan-out or many rooms over TLS. */
export type ScenarioName = GenScenario | "fanout-tls" | "rooms-tls";

/** One trial, or (in `medians`) the median of a scenario × server's trials. */
export interface TrialRecord {
  scenario: ScenarioName;
  server: ServerName;
  /** The repetition; in medians, how many trials succeeded. */
  rep: number;
  deliveredPerSec: number | null;
  /** Messages sent a second (a direct message to 5 users counts once). */
  sentPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Reports written before these were measured lack them. */
  p999Ms: number | null;
  maxMs: number | null;
  /** Server CPU seconds during the measurement window. */
  serverCpuSec: number | null;
  serverCpuPct: number | null;
  peakRssKiB: number | null;
  rssPerConnKiB: number | null;
  /** The same after the server was left alone a while (V8 gives back its young generation). */
  settledRssPerConnKiB?: number | null;
  stormMs: number | null;
  /** The busiest generator process's CPU use during the window. */
  genCpuPct: number | null;
  /** CPU the rest of the machine used during the window (other people's work), 100 % = a core. */
  otherCpuPct: number | null;
  failed: number;
  closed: number;
  error: string | null;
}

/** Everything a run wrote. */
export interface Report {
  date: string;
  host: string;
  cpu: string;
  cores: number;
  kernel: string;
  versions: Record<string, string>;
  options: Record<string, unknown>;
  scenarios: { name: ScenarioName; title: string }[];
  servers: ServerName[];
  medians: TrialRecord[];
  trials: TrialRecord[];
  totalSeconds: number;
}

const LABEL: Record<ServerName, string> = {
  parley: "Parley",
  inspircd: "InspIRCd",
  ngircd: "ngircd",
  nats: "nats-server",
  redis: "Redis",
};

const COLOR: Record<ServerName, string> = {
  parley: "#d9480f",
  inspircd: "#1971c2",
  ngircd: "#74c0fc",
  nats: "#2f9e44",
  redis: "#7048e8",
};

function num(x: number | null, digits = 2): string {
  if (x === null || !Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en");
  if (Math.abs(x) >= 100) return x.toFixed(0);
  return x.toFixed(digits);
}

function rate(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return "–";
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(0);
}

function ratio(a: number | null, b: number | null): string {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "–";
  return `${(a / b).toFixed(2)}×`;
}

/** The metric each scenario is judged by, and whether more is better. */
function headline(
  s: ScenarioName,
): { label: string; get: (t: TrialRecord) => number | null; more: boolean } {
  switch (s) {
    case "paced":
      return { label: "p99 latency", get: (t) => t.p99Ms, more: false };
    case "storm":
      return { label: "p99 during storm", get: (t) => t.p99Ms, more: false };
    case "idle":
      return { label: "RSS per connection", get: (t) => t.rssPerConnKiB, more: false };
    default:
      return { label: "delivered msgs/s", get: (t) => t.deliveredPerSec, more: true };
  }
}

function find(report: Report, s: ScenarioName, server: ServerName): TrialRecord | undefined {
  return report.medians.find((t) => t.scenario === s && t.server === server);
}

/** The targets of issue 4, each met or not. */
function targets(report: Report): string[] {
  const lines: string[] = [];
  const get = (s: ScenarioName, v: ServerName) => find(report, s, v);
  for (const s of ["fanout", "rooms", "direct", "fanout-tls", "rooms-tls"] as ScenarioName[]) {
    const p = get(s, "parley")?.deliveredPerSec ?? null;
    if (p === null) continue;
    const peers = report.servers.filter((v) => v !== "parley");
    const best = Math.max(...peers.map((v) => get(s, v)?.deliveredPerSec ?? 0));
    const irc = Math.max(
      ...["inspircd", "ngircd"].map((v) => get(s, v as ServerName)?.deliveredPerSec ?? 0),
    );
    if (best > 0) {
      lines.push(
        `- ${s}: Parley ${rate(p)}/s is ${
          (p / best).toFixed(2)
        }× the fastest peer (target ≥ 1×): ` +
          (p >= best ? "**met**" : "**not met**"),
      );
    }
    if (irc > 0) {
      lines.push(
        `- ${s}: Parley is ${(p / irc).toFixed(2)}× the faster IRC server (target ≥ 1.5×): ` +
          (p >= 1.5 * irc ? "**met**" : "**not met**"),
      );
    }
  }
  lines.push(...fairness(report));
  const paced = get("paced", "parley")?.p99Ms ?? null;
  const natsPaced = get("paced", "nats")?.p99Ms ?? null;
  if (paced !== null && natsPaced !== null) {
    lines.push(
      `- paced: Parley p99 ${num(paced)} ms vs nats-server ${num(natsPaced)} ms (target ≤): ` +
        (paced <= natsPaced ? "**met**" : "**not met**"),
    );
  }
  const storm = get("storm", "parley");
  if (storm?.p99Ms !== null && storm?.p99Ms !== undefined) {
    lines.push(
      `- storm: Parley p99 during the storm ${num(storm.p99Ms)} ms (target ≤ 20 ms): ` +
        (storm.p99Ms <= 20 ? "**met**" : "**not met**") +
        `; the storm took ${num(storm.stormMs, 0)} ms`,
    );
  }
  const idleTrial = get("idle", "parley");
  const idle = idleTrial?.rssPerConnKiB ?? null;
  if (idle !== null) {
    const settled = idleTrial?.settledRssPerConnKiB ?? null;
    const worst = Math.max(idle, settled ?? idle);
    lines.push(
      `- idle: Parley ${num(idle)} KiB per connection after setup` +
        (settled === null ? "" : `, ${num(settled)} KiB settled`) + ` (target ≤ 5 KiB): ` +
        (worst <= 5
          ? "**met**"
          : settled !== null && settled <= 5
          ? "**met once settled**"
          : "**not met**"),
    );
  }
  return lines;
}

/**
 * Issue 17's fairness targets: in fan-out and many rooms (plain and TLS), Parley's p99 at or below
 * the best peer's p99, with its delivered/s at or above the fastest peer's.
 */
function fairness(report: Report): string[] {
  const lines: string[] = [];
  const peers = report.servers.filter((v) => v !== "parley");
  for (const s of ["fanout", "rooms", "fanout-tls", "rooms-tls"] as ScenarioName[]) {
    const p = find(report, s, "parley");
    const rivals = peers.map((v) => find(report, s, v)).filter((t) => t?.p99Ms != null);
    if (p?.p99Ms == null || rivals.length === 0) continue;
    const bestP99 = Math.min(...rivals.map((t) => t!.p99Ms!));
    const fastest = Math.max(...rivals.map((t) => t!.deliveredPerSec ?? 0));
    const met = p.p99Ms <= bestP99 && (p.deliveredPerSec ?? 0) >= fastest;
    lines.push(
      `- ${s} fairness: Parley p99 ${num(p.p99Ms)} ms (p99.9 ${num(p.p999Ms ?? null)}, max ` +
        `${num(p.maxMs ?? null)}) vs the best peer's ${num(bestP99)} ms, at ` +
        `${ratio(p.deliveredPerSec, fastest)} the fastest peer's delivered/s (target: p99 ≤ and ` +
        `delivered/s ≥): ${met ? "**met**" : "**not met**"}`,
    );
  }
  return lines;
}

/**
 * What TLS costs each server: delivered/s over TLS ÷ over plain TCP, for fan-out and many rooms,
 * where both ran.
 */
function tlsCost(report: Report): string[] {
  const lines: string[] = [];
  for (const v of report.servers) {
    const parts: string[] = [];
    for (const [plain, label] of [["fanout", "fan-out"], ["rooms", "many rooms"]] as const) {
      const base = find(report, plain, v)?.deliveredPerSec ?? null;
      const tls = find(report, `${plain}-tls`, v)?.deliveredPerSec ?? null;
      if (base === null || tls === null) continue;
      parts.push(`${label} ${ratio(tls, base)} (${rate(tls)}/s over TLS, ${rate(base)}/s plain)`);
    }
    if (parts.length > 0) lines.push(`- ${LABEL[v]}: ${parts.join("; ")}`);
  }
  return lines;
}

/**
 * The SVG chart: one panel per scenario with traffic to measure (not idle, not the storm), a row
 * per server, delivered messages a second on the left and the p99 latency beside it on the
 * right; each column of each panel has its own scale.
 */
export function renderSvg(report: Report): string {
  const panels = report.scenarios.filter((s) => !["idle", "storm"].includes(s.name));
  const servers = report.servers;
  const width = 900;
  const barH = 16;
  const gap = 4;
  const left = 100;
  const column = (width - left - 20) / 2; // each column: its bars and their labels
  const barMax = column - 80;
  const panelH = 30 + servers.length * (barH + gap) + 12;
  const height = 58 + panels.length * panelH;
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">` +
      `Medians of ${esc(String(report.options.reps))} interleaved runs, ` +
      `${esc(report.host)}, ${report.cores} cores</text>`,
    `<text x="${left}" y="44" font-weight="bold">delivered messages a second ` +
      `(longer is better)</text>`,
    `<text x="${left + column}" y="44" font-weight="bold">p99 latency, ms ` +
      `(shorter is better)</text>`,
  );
  let y = 54;
  for (const panel of panels) {
    const trials = servers.map((v) => find(report, panel.name, v));
    const rates = trials.map((t) => t?.deliveredPerSec ?? 0);
    const p99s = trials.map((t) => t?.p99Ms ?? 0);
    const maxRate = Math.max(1, ...rates);
    const maxP99 = Math.max(1e-9, ...p99s);
    out.push(`<text x="10" y="${y + 16}" font-weight="bold">${esc(panel.title)}</text>`);
    let by = y + 24;
    servers.forEach((v, k) => {
      const w1 = Math.round((barMax * rates[k]) / maxRate);
      const w2 = Math.round((barMax * p99s[k]) / maxP99);
      const x2 = left + column;
      out.push(
        `<text x="${left - 8}" y="${by + barH - 4}" text-anchor="end">${LABEL[v]}</text>`,
        `<rect x="${left}" y="${by}" width="${w1}" height="${barH}" fill="${COLOR[v]}"/>`,
        `<text x="${left + w1 + 6}" y="${by + barH - 4}">${
          rate(trials[k]?.deliveredPerSec ?? null)
        }` +
          `</text>`,
        `<rect x="${x2}" y="${by}" width="${w2}" height="${barH}" fill="${COLOR[v]}" ` +
          `fill-opacity="0.55"/>`,
        `<text x="${x2 + w2 + 6}" y="${by + barH - 4}">${num(trials[k]?.p99Ms ?? null)}</text>`,
      );
      by += barH + gap;
    });
    y += panelH;
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** The Markdown report, and the SVG it links to as `svgName`. */
export function renderMarkdown(report: Report, svgName: string): { markdown: string; svg: string } {
  const md: string[] = [];
  md.push(`# Parley benchmark, ${report.date.slice(0, 10)} on ${report.host}`, "");
  md.push(
    `${report.cores} cores (${report.cpu}), Linux ${report.kernel}. Servers: ` +
      Object.entries(report.versions).map(([k, v]) => `${k} ${v}`).join("; ") + ".",
    "",
    `Medians of ${report.options.reps} interleaved repetitions; ${report.options.measureMs} ms ` +
      `measured after ${report.options.warmupMs} ms of warm-up; generator processes: ` +
      `${report.options.procs}; in-flight window ${report.options.window} deliveries; ` +
      `${report.options.batch} messages per write; ` +
      (report.options.pin
        ? "the server pinned to core 0 and the generators to the others (taskset). "
        : "nothing pinned. ") +
      `The whole run took ` +
      `${Math.round(report.totalSeconds)} s.`,
    "",
    `![delivered msgs/s](${svgName})`,
    "",
    "## Table",
    "",
    "| scenario | server | delivered msgs/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU s | " +
      "server CPU % | peak RSS MiB | RSS/conn KiB | storm ms | gen CPU % | other CPU % | ok runs |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " +
      "---: | ---: |",
  );
  for (const s of report.scenarios) {
    for (const v of report.servers) {
      const t = find(report, s.name, v);
      if (!t) continue;
      md.push(
        `| ${s.name} | ${LABEL[v]} | ${rate(t.deliveredPerSec)} | ${num(t.p50Ms)} | ` +
          // `?? null`: reports written before p99.9 and max were measured lack them.
          `${num(t.p99Ms)} | ${num(t.p999Ms ?? null)} | ${num(t.maxMs ?? null)} | ` +
          `${num(t.serverCpuSec)} | ${num(t.serverCpuPct, 0)} | ` +
          `${num(t.peakRssKiB === null ? null : t.peakRssKiB / 1024, 1)} | ${num(t.rssPerConnKiB)}${
            t.settledRssPerConnKiB ? ` → ${num(t.settledRssPerConnKiB)}` : ""
          } | ` +
          `${num(t.stormMs, 0)} | ${num(t.genCpuPct, 0)} | ${
            num(t.otherCpuPct, 0)
          } | ${t.rep}/${report.options.reps}` +
          `${t.error ? ` (${t.error.slice(0, 80)})` : ""} |`,
      );
    }
  }
  md.push(
    "",
    "p50/p99/p99.9/max: send-to-receive latency of the timestamped messages (1 in 64; every message in the " +
      "paced runs); for storm, of the paced clients' messages received while the storm's logins ran. " +
      "Server CPU: user + system seconds over the measured window (all threads). Peak RSS: VmHWM. " +
      "RSS/conn: (RSS with all idle clients held − RSS before) ÷ connections, at the end of the " +
      "window → the lowest in the following settling time (a garbage-collected server gives back " +
      "its young generation after some quiet seconds). Gen CPU: the busiest " +
      "generator process's CPU over the window (100 % = one core). Other CPU: what the rest of " +
      "the machine used meanwhile (other jobs on a shared machine; high values mean a noisy run).",
    "",
    "## Ratios: Parley ÷ peer",
    "",
    `| scenario | metric | ${
      report.servers.filter((v) => v !== "parley").map((v) => LABEL[v]).join(" | ")
    } |`,
    `| --- | --- | ${report.servers.filter((v) => v !== "parley").map(() => "---:").join(" | ")} |`,
  );
  for (const s of report.scenarios) {
    const h = headline(s.name);
    const p = find(report, s.name, "parley");
    if (!p) continue;
    const cells = report.servers.filter((v) => v !== "parley").map((v) => {
      const t = find(report, s.name, v);
      return t ? ratio(h.get(p), h.get(t)) : "–";
    });
    md.push(
      `| ${s.name} | ${h.label} (${h.more ? "higher" : "lower"} is better) | ${
        cells.join(" | ")
      } |`,
    );
  }
  const cost = tlsCost(report);
  if (cost.length > 0) {
    md.push("", "## TLS cost: delivered/s over TLS ÷ over plain TCP", "", ...cost);
  }
  const t = targets(report);
  if (t.length > 0) md.push("", "## Targets (issues 4 and 17)", "", ...t);
  md.push("");
  return { markdown: md.join("\n"), svg: renderSvg(report) };
}
