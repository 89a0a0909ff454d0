/**
 * The load generator's latency samples: the send-to-receive time of each stamped message and
 * when it arrived, kept in preallocated arrays so that the hot path allocates nothing, and the
 * percentiles of the samples that arrived in a window.
 *
 * @module
 */

/** At most this many samples are kept (later ones are dropped). */
const SAMPLE_CAP = 1 << 21;
const latencies = new Float64Array(SAMPLE_CAP);
const sampledAt = new Float64Array(SAMPLE_CAP);
let samples = 0;

/**
 * Records the latency of the stamped message whose 16 timestamp digits start at `stampStart` in
 * `chunk`, received at `now` (µs since the epoch); a stamp that is not 16 digits is ignored.
 */
export function recordSample(chunk: Uint8Array, stampStart: number, now: number): void {
  let ts = 0;
  for (let k = stampStart; k < stampStart + 16; k++) {
    const d = chunk[k] - 0x30;
    if (d < 0 || d > 9) return;
    ts = ts * 10 + d;
  }
  if (samples < SAMPLE_CAP) {
    latencies[samples] = now - ts;
    sampledAt[samples] = now;
    samples++;
  }
}

/** The latency percentiles of some samples, in µs (null when there were none). */
export interface LatencySummary {
  samples: number;
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  maxUs: number | null;
}

function percentile(sorted: Float64Array, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * The percentiles of the samples received between `fromUs` and `toUs` (µs since the epoch).
 *
 * @example Usage
 * ```ts
 * import { latencyBetween } from "./gen_latency.ts";
 * latencyBetween(0, 1).samples; // 0
 * ```
 */
export function latencyBetween(fromUs: number, toUs: number): LatencySummary {
  const picked: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (sampledAt[i] >= fromUs && sampledAt[i] <= toUs) picked.push(latencies[i]);
  }
  const sorted = Float64Array.from(picked).sort();
  return {
    samples: sorted.length,
    p50Us: percentile(sorted, 0.5),
    p99Us: percentile(sorted, 0.99),
    p999Us: percentile(sorted, 0.999),
    maxUs: sorted.length > 0 ? sorted[sorted.length - 1] : null,
  };
}
