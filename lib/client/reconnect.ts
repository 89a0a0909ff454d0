/**
 * How a {@linkcode ParleyClient} (client.ts) waits between tries to come back: exponential backoff
 * with full jitter and a cap, so thousands of clients dropped by one restart do not all knock at
 * once (docs/protocol.md asks clients told `7:shutdown` to wait a random delay).
 *
 * @module
 */

/** The `reconnect` option of `ParleyClient.connect`. */
export interface ReconnectOptions {
  /** The first ceiling of the random delay, doubled on each failed try (default 250 ms). */
  baseMs?: number;
  /** The most any delay may be (default 10,000 ms). */
  capMs?: number;
  /** Tries after one loss before the client gives up (default: never gives up). */
  maxAttempts?: number;
  /** Keep the password given to `login()` in memory, to log in again with it (default true). */
  keepPassword?: boolean;
  /** Asked for the password when a token is refused and none is kept; `undefined`: give up. */
  onPassword?: () => Promise<string | undefined> | string | undefined;
  /** A number in [0, 1) (default `Math.random`); tests pin it. */
  random?: () => number;
  /** Waits `ms` (default a timer that `close()` cuts short); tests may make it instant. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * The delay before try `attempt` (1 for the first): a random value in
 * `[0, min(cap, base * 2^(attempt-1)))`, whole milliseconds ("full jitter").
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { backoffDelay } from "./reconnect.ts";
 * const top = () => 0.999999;
 * assert.equal(backoffDelay(1, { random: top }), 249);
 * assert.equal(backoffDelay(3, { random: top }), 999);
 * assert.equal(backoffDelay(30, { random: top }), 9999); // capped at 10 s
 * assert.equal(backoffDelay(5, { random: () => 0 }), 0);
 * ```
 */
export function backoffDelay(attempt: number, options: ReconnectOptions = {}): number {
  const base = options.baseMs ?? 250;
  const cap = options.capMs ?? 10_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt - 1, 52));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}

/**
 * A sleep that can be cut short: `wait(ms)` resolves after `ms`, or at once after `cancel()`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sleeper } from "./reconnect.ts";
 * const sleeper = new Sleeper();
 * const waiting = sleeper.wait(60_000);
 * sleeper.cancel();
 * assert.equal(await waiting, undefined);
 * ```
 */
export class Sleeper {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, ms);
    });
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#wake?.();
    this.#wake = null;
  }
}
