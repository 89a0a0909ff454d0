/**
 * Small helpers both benchmark runners (bench/run.ts, bench/cluster.ts) use to summarise trials
 * and describe the machine.
 *
 * @module
 */

/**
 * The median of the finite values, or null when there are none.
 *
 * @example Usage
 * ```ts
 * import { median } from "./stats.ts";
 * median([3, 1, 2, NaN]); // 2
 * ```
 */
export function median(values: number[]): number | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * The CPU's model name from /proc/cpuinfo, or "?" where there is none.
 *
 * @example Usage
 * ```ts
 * import { cpuModel } from "./stats.ts";
 * console.log(cpuModel()); // "AMD EPYC ..."
 * ```
 */
export function cpuModel(): string {
  try {
    return Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "?";
  } catch {
    return "?";
  }
}

/**
 * A reader of `--flag value` options: the value after `flag` in `args`, or undefined where the
 * flag is absent. A flag with no value (the end, or another flag next) is an error.
 *
 * @example Usage
 * ```ts
 * import { flagReader } from "./stats.ts";
 * flagReader(["--reps", "5"])("--reps"); // "5"
 * ```
 */
export function flagReader(args: string[]): (flag: string) => string | undefined {
  return (flag) => {
    const at = args.indexOf(flag);
    if (at === -1) return undefined;
    const v = args[at + 1];
    if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value`);
    return v;
  };
}

/**
 * A comma-separated list option (`given`, or all of `known` when absent), every item checked to
 * be one of `known`; `what` names an item in the error.
 *
 * @example Usage
 * ```ts
 * import { listOption } from "./stats.ts";
 * listOption("a,c", ["a", "b", "c"], "letter"); // ["a", "c"]
 * ```
 */
export function listOption<T extends string>(
  given: string | undefined,
  known: readonly T[],
  what: string,
): T[] {
  const list = (given?.split(",") ?? [...known]) as T[];
  for (const item of list) {
    if (!known.includes(item)) throw new Error(`unknown ${what} ${item} (${known})`);
  }
  return list;
}

/**
 * The worst (highest) of several generators' latencies in µs, in ms; null when none has one.
 *
 * @example Usage
 * ```ts
 * import { worstMs } from "./stats.ts";
 * worstMs([1500, null, 2500]); // 2.5
 * ```
 */
export function worstMs(valuesUs: (number | null)[]): number | null {
  const known = valuesUs.filter((x): x is number => x !== null);
  return known.length ? Math.max(...known) / 1000 : null;
}

/**
 * What every trial measures: delivered and sent messages a second, latency, the busier
 * generator's CPU % and the machine CPU % used by anything not measured.
 */
const MEASURES = [
  "deliveredPerSec",
  "sentPerSec",
  "p50Ms",
  "p99Ms",
  "p999Ms",
  "maxMs",
  "genCpuPct",
  "otherCpuPct",
] as const;
type Measures = Record<(typeof MEASURES)[number], number | null>;

/** What every trial record has, whatever else it measures. */
export interface TrialOutcome extends Measures {
  rep: number;
  failed: number;
  closed: number;
  error: string | null;
}

/**
 * One record a group of trials (the trials with the same `key`, in order of first appearance):
 * the medians of the measures every trial has over the good trials (`ok`: no error), and what
 * `fields` makes with `m` (a median over them too); `rep` is how many were good, `failed` and
 * `closed` the worst of all, `error` all the errors when none was good.
 *
 * @example Usage
 * ```ts
 * import { summarizeTrials, type TrialOutcome } from "./stats.ts";
 * type Trial = TrialOutcome & { s: string; x: number | null };
 * const none = {
 *   deliveredPerSec: null, sentPerSec: null, p50Ms: null, p99Ms: null, p999Ms: null, maxMs: null,
 * };
 * const trials: Trial[] = [1, 3].map((x) => ({
 *   ...none, genCpuPct: null, otherCpuPct: null, s: "a", x, rep: 1, failed: 0, closed: 0, error: null,
 * }));
 * summarizeTrials(trials, (t) => t.s, (first, m) => ({ s: first.s, x: m((t) => t.x) }))[0].x; // 2
 * ```
 */
export function summarizeTrials<T extends TrialOutcome>(
  trials: T[],
  key: (trial: T) => string,
  fields: (
    first: T,
    m: (f: (trial: T) => number | null) => number | null,
    ok: T[],
  ) => Omit<T, keyof TrialOutcome>,
): T[] {
  return [...Map.groupBy(trials, key).values()].map((group) => {
    const ok = group.filter((t) => t.error === null);
    const m = (f: (t: T) => number | null) => median(ok.map((t) => f(t) ?? NaN));
    const outcome: TrialOutcome = {
      ...Object.fromEntries(MEASURES.map((k) => [k, m((t) => t[k])])) as Measures,
      rep: ok.length,
      failed: Math.max(0, ...group.map((t) => t.failed)),
      closed: Math.max(0, ...group.map((t) => t.closed)),
      error: ok.length === 0 ? group.map((t) => t.error).join("; ") : null,
    };
    return { ...fields(group[0], m, ok), ...outcome } as T;
  });
}

/**
 * Runs every scenario `reps` times, each repetition on every one of `variants` in turn (A B C A
 * B C), logging each record with `describe`; the records in the order run.
 *
 * @example Usage
 * ```ts ignore
 * import { runInterleaved } from "./stats.ts";
 * await runInterleaved(scenarios, 3, ["parley", "nats"], runTrial, describe);
 * ```
 */
export async function runInterleaved<S extends { name: string }, V extends string, R>(
  scenarios: S[],
  reps: number,
  variants: V[],
  run: (scenario: S, variant: V, rep: number) => Promise<R>,
  describe: (record: R) => string,
): Promise<R[]> {
  const records: R[] = [];
  for (const scenario of scenarios) {
    for (let rep = 1; rep <= reps; rep++) {
      for (const variant of variants) {
        const t = performance.now();
        const record = await run(scenario, variant, rep);
        records.push(record);
        const secs = ((performance.now() - t) / 1000).toFixed(1);
        console.error(
          `bench: ${scenario.name} rep ${rep} ${variant.padEnd(8)} ${describe(record)} (${secs} s)`,
        );
      }
    }
  }
  return records;
}
