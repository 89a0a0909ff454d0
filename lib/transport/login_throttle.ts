/**
 * Slows repeated failed logins, per connection and per remote address, so guessing passwords is
 * slow while logins from other addresses go at full speed.
 *
 * @module
 */

import { DEFAULT_MAX_LOGIN_FAILURES, FREE_LOGIN_FAILURES } from "../protocol/limits.ts";

/** Options of {@linkcode LoginThrottle}. */
export interface LoginThrottleOptions {
  /** Failures allowed before any delay. Default {@linkcode FREE_LOGIN_FAILURES}. */
  freeFailures?: number;
  /** The first delay; each further failure doubles it. Default 250 ms. */
  baseDelayMs?: number;
  /** The longest delay. Default 5,000 ms. */
  maxDelayMs?: number;
  /** Failures after which a connection is closed. Default {@linkcode DEFAULT_MAX_LOGIN_FAILURES}. */
  maxFailuresPerConnection?: number;
  /** How long an address's failure count takes to halve. Default 60,000 ms. */
  halfLifeMs?: number;
  /** The clock (tests pass their own). */
  now?: () => number;
}

interface AddressRecord {
  failures: number;
  at: number;
}

/** How many addresses are remembered before forgotten ones are swept. */
const SWEEP_AT = 10_000;

/**
 * Remembers failed logins and says how long the next attempt must wait.
 *
 * @example Usage
 * ```ts
 * import { LoginThrottle } from "./login_throttle.ts";
 * const throttle = new LoginThrottle({ freeFailures: 1, baseDelayMs: 100 });
 * throttle.recordFailure("10.0.0.1");
 * throttle.recordFailure("10.0.0.1");
 * throttle.delayMs("10.0.0.1", 0); // 100
 * throttle.delayMs("10.0.0.2", 0); // 0: other addresses are not slowed
 * ```
 */
export class LoginThrottle {
  readonly freeFailures: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxFailuresPerConnection: number;
  readonly halfLifeMs: number;
  #now: () => number;
  #addresses = new Map<string, AddressRecord>();

  constructor(options: LoginThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? FREE_LOGIN_FAILURES;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.maxFailuresPerConnection = options.maxFailuresPerConnection ??
      DEFAULT_MAX_LOGIN_FAILURES;
    this.halfLifeMs = options.halfLifeMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  #failuresOf(address: string, now: number): number {
    const record = this.#addresses.get(address);
    if (record === undefined) return 0;
    return record.failures * 0.5 ** ((now - record.at) / this.halfLifeMs);
  }

  /** How long a login from `address`, on a connection that failed `connectionFailures`, waits. */
  delayMs(address: string, connectionFailures: number): number {
    const failures = Math.max(connectionFailures, this.#failuresOf(address, this.#now()));
    const excess = Math.floor(failures) - this.freeFailures;
    if (excess <= 0) return 0;
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (excess - 1));
  }

  /** Counts a failed login from `address`. */
  recordFailure(address: string): void {
    const now = this.#now();
    if (this.#addresses.size >= SWEEP_AT) this.#sweep(now);
    this.#addresses.set(address, { failures: this.#failuresOf(address, now) + 1, at: now });
  }

  /** How many addresses are remembered (bounded by sweeping the ones that have cooled down). */
  get size(): number {
    return this.#addresses.size;
  }

  #sweep(now: number): void {
    for (const [address] of this.#addresses) {
      if (this.#failuresOf(address, now) < 1) this.#addresses.delete(address);
    }
    // Still full of hot addresses (a wide attack): forget the oldest half rather than grow.
    if (this.#addresses.size >= SWEEP_AT) {
      let drop = this.#addresses.size / 2;
      for (const [address] of this.#addresses) {
        if (drop-- <= 0) break;
        this.#addresses.delete(address);
      }
    }
  }
}
