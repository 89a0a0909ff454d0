/**
 * When the server is busy, a connection that was just written to waits a little before its next
 * write, so that what it is sent meanwhile goes out together: one system call, and over TLS one
 * record for the client to decrypt instead of dozens.
 *
 * A write costs the receiving end about as much as the lines in it: in many rooms over TLS, bench/'s
 * generator spent about 6 µs on each TLS record and 0.3 µs on each line, and Parley's writes carried
 * 28 lines where Redis's carried 79, because Redis writes to each client once per turn of its event
 * loop, and that turn grows with the load (bench/README.md, "TLS records: the write linger").
 *
 * The linger grows with the load, so that a server with time to spare keeps its latency: nothing
 * waits while the event loop's thread has used less than {@linkcode LINGER_FROM_SHARE} of a core
 * lately, the whole linger applies from {@linkcode LINGER_FULL_SHARE} on, and a connection quiet
 * for the current linger is written to at once.
 *
 * @module
 */

import process from "node:process";

/** The default linger: a busy connection is written to at most once in this many milliseconds. */
export const DEFAULT_WRITE_LINGER_MS = 40;

/** Below this share of a core, used lately by the event loop, nothing lingers. */
export const LINGER_FROM_SHARE = 0.5;

/** From this share of a core on, the whole linger applies (in between, a part in proportion). */
export const LINGER_FULL_SHARE = 0.9;

/** What is written at once regardless: a full TLS record. */
export const LINGER_MAX_BYTES = 16 * 1024;

/**
 * How often the CPU time is read, and over what window. A window this long sees sustained load,
 * not a burst: the paced scenario (about 40 % of a core) has 20 ms windows over 75 %.
 */
const SAMPLE_MS = 100;

const SCHEDSTAT = "/proc/thread-self/schedstat";

/**
 * A clock of the CPU milliseconds used by the calling thread (the event loop's), from Linux's
 * schedstat (nanoseconds; a read costs about 16 µs), so that the hasher's and the garbage
 * collector's threads do not count; elsewhere, or without read permission, the whole process's.
 */
function eventLoopCpuClock(): () => number {
  const permitted = Deno.build.os === "linux" &&
    Deno.permissions.querySync({ name: "read", path: SCHEDSTAT }).state === "granted";
  if (permitted) {
    const read = () => Number(Deno.readTextFileSync(SCHEDSTAT).split(" ", 1)[0]) / 1e6;
    try {
      if (Number.isFinite(read())) return read;
    } catch { /* no schedstat in this kernel */ }
  }
  return () => {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  };
}

/** How busy the event loop is: a {@linkcode LoadMeter}, or a test's. */
export interface Load {
  /** The share of a core used lately (1: one core busy all the time), as of `now`. */
  share(now: number): number;
}

/**
 * The share of one core used between the two latest readings of a CPU clock, read again when asked
 * {@linkcode SAMPLE_MS} or more after the last.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LoadMeter } from "./write_linger.ts";
 * let cpu = 0;
 * const meter = new LoadMeter(() => cpu, 0);
 * cpu = 90; // 90 ms of CPU in 100 ms
 * assert.equal(meter.share(100), 0.9);
 * cpu = 95;
 * assert.equal(meter.share(150), 0.9); // not read again within 100 ms
 * assert.equal(meter.share(200), 0.05); // 5 ms more in the next 100
 * ```
 */
export class LoadMeter implements Load {
  readonly #cpuMs: () => number;
  #lastAt: number;
  #lastCpu: number;
  #share = 0;

  /**
   * @param cpuMs the CPU time used so far, in milliseconds (default: the event loop thread's)
   * @param now the clock's reading now, in milliseconds
   */
  constructor(cpuMs: () => number = eventLoopCpuClock(), now: number = performance.now()) {
    this.#cpuMs = cpuMs;
    this.#lastAt = now;
    this.#lastCpu = cpuMs();
  }

  /** The share of a core used lately (1: one core busy all the time), as of `now`. */
  share(now: number): number {
    if (now - this.#lastAt >= SAMPLE_MS) {
      const cpu = this.#cpuMs();
      this.#share = (cpu - this.#lastCpu) / (now - this.#lastAt);
      this.#lastAt = now;
      this.#lastCpu = cpu;
    }
    return this.#share;
  }
}

/** A timer: `setTimeout`, or a test's; what it returns goes to `clearTimeout`. */
export type SetTimer = (run: () => void, ms: number) => unknown;

/**
 * Decides which writes wait, and holds them until the linger's tick: one timer for every
 * connection, so that under load each is written to about once a tick.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { WriteLinger } from "./write_linger.ts";
 * const ticks: (() => void)[] = [];
 * const busy = { share: () => 0.9 }; // 90 % of a core, lately: the whole linger
 * const linger = new WriteLinger(40, busy, (run) => ticks.push(run));
 * assert.ok(linger.holds(10, 100, 20)); // wrote 10 ms ago, 100 bytes wait: wait
 * assert.ok(!linger.holds(-30, 100, 20)); // quiet for the whole linger: write now
 * assert.ok(!linger.holds(10, 20_000, 20)); // a full TLS record waits: write now
 * const written: string[] = [];
 * linger.wait(() => written.push("late"));
 * ticks.shift()!(); // the tick
 * assert.deepEqual(written, ["late"]);
 * ```
 */
export class WriteLinger {
  /** The whole linger, at full load; 0 turns lingering off. */
  readonly lingerMs: number;
  readonly #load: Load;
  readonly #setTimer: SetTimer;
  /** The linger at the load last measured. */
  #currentMs = 0;
  #waiting: (() => void)[] = [];
  #timer: unknown = null;

  /**
   * @param lingerMs the linger at full load; 0 turns it off
   * @param load how busy the event loop is (default: its CPU time, {@linkcode LoadMeter})
   * @param setTimer runs the tick (default: `setTimeout`)
   */
  constructor(lingerMs: number, load?: Load, setTimer?: SetTimer) {
    this.lingerMs = lingerMs;
    this.#load = load ?? (lingerMs > 0 ? new LoadMeter() : { share: () => 0 });
    this.#setTimer = setTimer ?? ((run, ms) => setTimeout(run, ms));
  }

  /**
   * Whether a connection last written at `lastWriteAt`, with `pendingBytes` waiting, should wait
   * for the tick rather than be written now (`now`, on `performance.now()`'s clock).
   */
  holds(lastWriteAt: number, pendingBytes: number, now: number = performance.now()): boolean {
    const since = now - lastWriteAt;
    if (since >= this.lingerMs || pendingBytes >= LINGER_MAX_BYTES) return false;
    const share = this.#load.share(now);
    const part = (share - LINGER_FROM_SHARE) / (LINGER_FULL_SHARE - LINGER_FROM_SHARE);
    this.#currentMs = this.lingerMs * Math.min(1, Math.max(0, part));
    return since < this.#currentMs;
  }

  /** Runs `resume` at the next tick: at most the current linger from now. */
  wait(resume: () => void): void {
    this.#waiting.push(resume);
    this.#timer ??= this.#setTimer(this.#tick, Math.max(1, this.#currentMs));
  }

  /** Runs what waits now and stops the timer: for a server shutting down. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer as number);
    this.#tick();
  }

  #tick = (): void => {
    this.#timer = null;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (let i = 0; i < waiting.length; i++) waiting[i]();
  };
}

/** Never lingers: for queues outside a server, and for tests that want writes at once. */
export const NO_LINGER: WriteLinger = new WriteLinger(0);
