/**
 * Admission: which accepted sockets the server takes. Every socket counts from the moment it is
 * accepted until it is closed, whatever its transport and state (an HTTP head still arriving, a
 * session, a WebSocket waiting for the peer's close frame), against `--max-connections` in all and
 * `--max-connections-per-address` for its address. Also the rate limit of the warnings admission
 * and accepting log, so a flood of refusals cannot flood the log as well.
 *
 * @module
 */

/** Why a socket was refused: every slot is taken, or every slot its address may take. */
export type Refusal = "server-full" | "address-full";

/**
 * The per-address cap actually applied: the flag's value (0: no cap), but never more than
 * `maxConnections` less a reserve of a tenth of it (at least one slot once there are two), so
 * that one address can never take every slot.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { perAddressCap } from "./admission.ts";
 * assert.equal(perAddressCap(10_000, 256), 256);
 * assert.equal(perAddressCap(100, 256), 90);
 * assert.equal(perAddressCap(2, 256), 1);
 * assert.equal(perAddressCap(1, 256), 1);
 * assert.equal(perAddressCap(100, 0), Infinity);
 * ```
 */
export function perAddressCap(maxConnections: number, flag: number): number {
  if (flag === 0) return Infinity;
  const reserve = maxConnections < 2 ? 0 : Math.max(1, Math.floor(maxConnections / 10));
  return Math.max(1, Math.min(flag, maxConnections - reserve));
}

/**
 * The key an address is counted under: an IPv4 address as it is (also when mapped into IPv6), an
 * IPv6 address by its first 64 bits, the smallest block one subscriber is usually given.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressKey } from "./admission.ts";
 * assert.equal(addressKey("127.0.0.2"), "127.0.0.2");
 * assert.equal(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
 * assert.equal(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
 * assert.equal(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
 * ```
 */
export function addressKey(address: string): string {
  if (!address.includes(":")) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1];
  const [head, tail] = address.toLowerCase().split("::");
  const front = head === "" ? [] : head.split(":");
  const back = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? front
    : [...front, ...Array(Math.max(0, 8 - front.length - back.length)).fill("0"), ...back];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}

/**
 * The count of open sockets, in all and by address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Admission } from "./admission.ts";
 * const admission = new Admission(10, 2);
 * assert.equal(admission.admit("10.0.0.1"), null);
 * assert.equal(admission.admit("10.0.0.1"), null);
 * assert.equal(admission.admit("10.0.0.1"), "address-full");
 * assert.equal(admission.admit("10.0.0.2"), null);
 * admission.release("10.0.0.1");
 * assert.equal(admission.admit("10.0.0.1"), null);
 * assert.equal(admission.open, 3);
 * ```
 */
export class Admission {
  /** The most sockets open at once. */
  readonly maxConnections: number;
  /** The most one address may hold (Infinity: no cap): see {@linkcode perAddressCap}. */
  readonly maxPerAddress: number;
  #open = 0;
  #byAddress = new Map<string, number>();

  /** @param perAddressFlag `--max-connections-per-address` (0: no per-address cap) */
  constructor(maxConnections: number, perAddressFlag: number) {
    this.maxConnections = maxConnections;
    this.maxPerAddress = perAddressCap(maxConnections, perAddressFlag);
  }

  /** Sockets counted now. */
  get open(): number {
    return this.#open;
  }

  /** Counts a socket from `address` in, or says why not; each admitted one is released once. */
  admit(address: string): Refusal | null {
    if (this.#open >= this.maxConnections) return "server-full";
    const key = addressKey(address);
    const held = this.#byAddress.get(key) ?? 0;
    if (held >= this.maxPerAddress) return "address-full";
    this.#byAddress.set(key, held + 1);
    this.#open++;
    return null;
  }

  /**
   * Counts a balancer's socket in all but under no address yet: its PROXY header names the client
   * it is counted under ({@linkcode name}).
   */
  admitUnnamed(): Refusal | null {
    if (this.#open >= this.maxConnections) return "server-full";
    this.#open++;
    return null;
  }

  /**
   * Counts a socket {@linkcode admitUnnamed} let in under its client's address, or says why not
   * (it then stays unnamed: release it with null).
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { Admission } from "./admission.ts";
   * const admission = new Admission(10, 1);
   * assert.equal(admission.admitUnnamed(), null);
   * assert.equal(admission.admitUnnamed(), null);
   * assert.equal(admission.name("192.0.2.1"), null);
   * assert.equal(admission.name("192.0.2.1"), "address-full");
   * admission.release(null);
   * admission.release("192.0.2.1");
   * assert.equal(admission.open, 0);
   * ```
   */
  name(address: string): Refusal | null {
    const key = addressKey(address);
    const held = this.#byAddress.get(key) ?? 0;
    if (held >= this.maxPerAddress) return "address-full";
    this.#byAddress.set(key, held + 1);
    return null;
  }

  /** A socket {@linkcode admit} let in is closed (null: one that was never named). */
  release(address: string | null): void {
    if (address === null) {
      if (this.#open > 0) this.#open--;
      return;
    }
    const key = addressKey(address);
    const held = this.#byAddress.get(key) ?? 0;
    if (held <= 0) return;
    if (held === 1) this.#byAddress.delete(key);
    else this.#byAddress.set(key, held - 1);
    this.#open--;
  }
}

/**
 * A warning that may come thousands of times a second (refused sockets, failed accepts) is
 * written at most once per interval for each key (a transport, say), with how many were left out
 * since the last one.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RateLimitedWarning } from "./admission.ts";
 * const warning = new RateLimitedWarning(1000);
 * assert.equal(warning.due(0), 0); // write it: none left out
 * assert.equal(warning.due(10), null); // too soon: left out
 * assert.equal(warning.due(15, "ws"), 0); // another key has its own interval
 * assert.equal(warning.due(20), null);
 * assert.equal(warning.due(1000), 2); // write it: two were left out
 * ```
 */
export class RateLimitedWarning {
  readonly intervalMs: number;
  #keys = new Map<string, { writtenAt: number; suppressed: number }>();

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** At time `now` (ms): null to leave this one out, else how many were left out before it. */
  due(now: number, key = ""): number | null {
    let state = this.#keys.get(key);
    if (state === undefined) this.#keys.set(key, state = { writtenAt: -Infinity, suppressed: 0 });
    if (now - state.writtenAt < this.intervalMs) {
      state.suppressed++;
      return null;
    }
    const suppressed = state.suppressed;
    state.writtenAt = now;
    state.suppressed = 0;
    return suppressed;
  }
}
