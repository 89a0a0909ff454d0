/**
 * Slows repeated failed logins (and wrong room passwords), per connection and per remote
 * address, so guessing passwords is slow while logins from other addresses go at full speed.
 *
 * An address's password checks take turns ({@linkcode LoginThrottle.turn}): at most
 * {@linkcode LOGIN_CHECKS_PER_ADDRESS} at once, and once the address's failures are past the
 * free ones, one at a time, each after the delay, however many connections it opens. So many
 * connections guess no faster than one, and cannot fill the hasher's queue ahead of others.
 * A cheap check (a resume token: a hash and a read, no password hash) needs no slot while the
 * address's failures are free, so a whole NAT's users resume at once after a restart; past
 * them it takes turns like any other.
 *
 * @module
 */

import {
  DEFAULT_MAX_LOGIN_FAILURES,
  FREE_LOGIN_FAILURES,
  LOGIN_CHECKS_PER_ADDRESS,
} from "../protocol/limits.ts";
import { type Clock, systemClock } from "../observe/clock.ts";

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
  /** Checks of one address at once. Default {@linkcode LOGIN_CHECKS_PER_ADDRESS}. */
  checksPerAddress?: number;
  /** The clock of the delays (tests pass their own). */
  clock?: Clock;
  /** Where failures' ages are read (default: the clock's). */
  now?: () => number;
}

interface AddressRecord {
  failures: number;
  at: number;
}

/** A check waiting for its address's turn. */
interface Waiter {
  connectionFailures: number;
  admit: () => void;
}

/** An address's checks: the ones waiting, oldest first, and how many run. */
interface Turns {
  waiting: Waiter[];
  running: number;
  /** Cancels the delay the first waiter waits out (null: none runs). */
  delay: (() => void) | null;
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
  readonly checksPerAddress: number;
  #now: () => number;
  #after: Clock["after"];
  #addresses = new Map<string, AddressRecord>();
  /** Addresses with checks waiting or running. */
  #turns = new Map<string, Turns>();

  constructor(options: LoginThrottleOptions = {}) {
    this.freeFailures = options.freeFailures ?? FREE_LOGIN_FAILURES;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 5000;
    this.maxFailuresPerConnection = options.maxFailuresPerConnection ??
      DEFAULT_MAX_LOGIN_FAILURES;
    this.halfLifeMs = options.halfLifeMs ?? 60_000;
    this.checksPerAddress = options.checksPerAddress ?? LOGIN_CHECKS_PER_ADDRESS;
    const clock = options.clock ?? systemClock;
    this.#now = options.now ?? (() => clock.now());
    this.#after = (ms, task) => clock.after(ms, task);
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

  /**
   * Waits for the address's turn to check a password, then calls `go` (never before returning).
   * While the address's failures are free, up to {@linkcode checksPerAddress} go at once; past
   * them one at a time, each when the address has had nothing running for the delay (the
   * address's, or the connection's own `connectionFailures` if larger). Returns what ends the
   * turn: call it when the check is answered, or to give up waiting (idempotent). A `cheap`
   * check goes at once, without a slot, while the address's failures are free.
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { LoginThrottle } from "./login_throttle.ts";
   * const throttle = new LoginThrottle({ checksPerAddress: 1 });
   * const went: string[] = [];
   * const endFirst = throttle.turn("10.0.0.1", 0, () => went.push("first"));
   * throttle.turn("10.0.0.1", 0, () => went.push("second"));
   * throttle.turn("10.0.0.2", 0, () => went.push("elsewhere"));
   * await Promise.resolve();
   * assert.deepEqual(went, ["first", "elsewhere"]); // the second waits for the first
   * endFirst();
   * await Promise.resolve();
   * assert.deepEqual(went, ["first", "elsewhere", "second"]);
   * ```
   */
  turn(
    address: string,
    connectionFailures: number,
    go: () => void,
    cheap = false,
  ): () => void {
    if (cheap && this.#isFree(address, connectionFailures)) {
      queueMicrotask(go);
      return () => {};
    }
    let turns = this.#turns.get(address);
    if (turns === undefined) {
      turns = { waiting: [], running: 0, delay: null };
      this.#turns.set(address, turns);
    }
    const line = turns;
    let state: "waiting" | "running" | "ended" = "waiting";
    const waiter: Waiter = {
      connectionFailures,
      admit: () => {
        state = "running";
        line.running++;
        queueMicrotask(go);
      },
    };
    line.waiting.push(waiter);
    this.#next(address, line);
    return () => {
      if (state === "running") line.running--;
      else if (state === "waiting") {
        if (line.waiting[0] === waiter && line.delay !== null) {
          line.delay();
          line.delay = null;
        }
        line.waiting.splice(line.waiting.indexOf(waiter), 1);
      } else return;
      state = "ended";
      this.#next(address, line);
    };
  }

  /** Whether the address's failures (or the connection's own) are still within the free ones. */
  #isFree(address: string, connectionFailures: number): boolean {
    const failures = Math.max(connectionFailures, this.#failuresOf(address, this.#now()));
    return failures <= this.freeFailures;
  }

  /** Admits whoever may go now, or starts the delay the first waiter waits out. */
  #next(address: string, line: Turns): void {
    while (line.waiting.length > 0 && line.delay === null) {
      const first = line.waiting[0];
      const delay = this.delayMs(address, first.connectionFailures);
      if (this.#isFree(address, first.connectionFailures)) {
        if (line.running >= this.checksPerAddress) return;
        line.waiting.shift()!.admit();
        continue;
      }
      // Slowed: one at a time, the delay counted from when the address fell idle.
      if (line.running > 0) return;
      if (delay === 0) {
        line.waiting.shift()!.admit();
        continue;
      }
      line.delay = this.#after(delay, () => {
        line.delay = null;
        line.waiting.shift()!.admit();
        this.#next(address, line);
      });
      return;
    }
    if (line.waiting.length === 0 && line.running === 0) this.#turns.delete(address);
  }

  /** How many addresses have checks waiting or running. */
  get busyAddresses(): number {
    return this.#turns.size;
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
