/**
 * Time, as the timing rules read it (the login clock, flood control, the login throttle): the
 * system's, or a test's own, so that a rule is tested by moving time on, not by waiting for it.
 *
 * @module
 */

/** Where time comes from. */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Calls `task` once, `ms` from now; returns what cancels it (harmless once it ran). */
  after(ms: number, task: () => void): () => void;
}

/**
 * The system's clock.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock } from "./clock.ts";
 * const before = systemClock.now();
 * await new Promise<void>((resolve) => systemClock.after(5, resolve));
 * assert.ok(systemClock.now() >= before);
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, task) => {
    const timer = setTimeout(task, ms);
    return () => clearTimeout(timer);
  },
};

const nows = new WeakMap<Clock, () => number>();

/**
 * The clock's `now` as one function, the same for every caller: each connection's flood control
 * holds it, and a closure of its own each would cost memory per connection.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { nowOf, systemClock } from "./clock.ts";
 * assert.equal(nowOf(systemClock), nowOf(systemClock));
 * assert.equal(typeof nowOf(systemClock)(), "number");
 * ```
 */
export function nowOf(clock: Clock): () => number {
  let now = nows.get(clock);
  if (now === undefined) nows.set(clock, now = () => clock.now());
  return now;
}
