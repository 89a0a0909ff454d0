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
