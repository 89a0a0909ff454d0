/**
 * The load generator's process plumbing (bench/gen.ts): a clock comparable between processes,
 * its own CPU time, seeded randomness, bounded concurrency and its control lines on stdin.
 *
 * @module
 */

/** Microseconds since the epoch, comparable between processes on this machine. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** CPU seconds (user + system) this process has used. */
export function selfCpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A seeded pseudo-random generator of numbers in [0, 1) (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `task` over `items` with at most `limit` at once; returns how many failed. */
export async function bounded<T>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<{ failed: number; firstError: unknown }> {
  let at = 0;
  let failed = 0;
  let firstError: unknown = undefined;
  const worker = async () => {
    while (at < items.length) {
      const item = items[at++];
      try {
        await task(item);
      } catch (error) {
        failed++;
        firstError ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return { failed, firstError };
}

/** The lines written to this process's stdin, without their newlines. */
export async function* stdinLines(): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) !== -1) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
}
