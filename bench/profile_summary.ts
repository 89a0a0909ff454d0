/**
 * Summarizes a V8 CPU profile (what `deno run --cpu-prof` writes): the functions with the most
 * self time, and the share of time in each source file, so the README can say where Parley's time
 * goes without opening DevTools. `--last-ms` keeps only the samples of the profile's last
 * milliseconds (the measured window ends shortly before the server is stopped; the start of the
 * profile is start-up, logins and warm-up).
 *
 * ```sh
 * deno run -A bench/profile_summary.ts /tmp/prof/fanout-1.cpuprofile [--top 25] [--last-ms 4000]
 * ```
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time in ms per function and per file, heaviest first. */
export function summarize(profile: CpuProfile, lastMs = Infinity): {
  totalMs: number;
  functions: [string, number][];
  files: [string, number][];
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  const at: number[] = [];
  let t = 0;
  for (const delta of profile.timeDeltas) at.push(t += delta / 1000);
  const from = t - lastMs;
  for (let i = 0; i < profile.samples.length; i++) {
    if (at[i] < from) continue;
    const id = profile.samples[i];
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let totalMs = 0;
  for (const [id, ms] of selfMs) {
    const frame = byId.get(id)!.callFrame;
    const file = frame.url.replace(/^.*\/(lib|bench|ext|node)\//, "$1/") || "(native)";
    const name = `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    files.set(file, (files.get(file) ?? 0) + ms);
    totalMs += ms;
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { totalMs, functions: sorted(functions), files: sorted(files) };
}

if (import.meta.main) {
  const path = Deno.args.find((a) => !a.startsWith("--"));
  if (!path) {
    console.error("usage: profile_summary.ts FILE.cpuprofile [--top N]");
    Deno.exit(2);
  }
  const at = Deno.args.indexOf("--top");
  const top = at === -1 ? 25 : Number(Deno.args[at + 1]);
  const lastAt = Deno.args.indexOf("--last-ms");
  const lastMs = lastAt === -1 ? Infinity : Number(Deno.args[lastAt + 1]);
  const profile = JSON.parse(Deno.readTextFileSync(path));
  const { totalMs, functions, files } = summarize(profile, lastMs);
  const pct = (ms: number) => `${((100 * ms) / totalMs).toFixed(1).padStart(5)} %`;
  console.log(`total ${totalMs.toFixed(0)} ms sampled\n\nself time by function:`);
  for (const [name, ms] of functions.slice(0, top)) console.log(`${pct(ms)}  ${name}`);
  console.log("\nself time by file:");
  for (const [file, ms] of files.slice(0, top)) console.log(`${pct(ms)}  ${file}`);
}
