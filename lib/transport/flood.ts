/**
 * Flood control for one connection: two token buckets, one on lines and one on bytes. The line
 * bucket bounds how many commands a client may send; the byte bucket bounds how many bytes it
 * may make the server write to others, or to itself:
 *
 * - a `3:` line costs its own size up front (each recipient gets at most that many bytes of it,
 *   plus the sender's name with `--stamp-sender`), and is refused when the bucket holds less;
 *   so one sender alone cannot push a reader that keeps up with the sustained rate towards the
 *   slow-consumer bound, whatever the size of its lines;
 * - a `1` or `2:` line is let through while the bucket is not in debt, and its reply (a room
 *   list, a member list: far bigger than the line) is charged after it was sent, which may put
 *   the bucket in debt until it refills.
 *
 * Refused lines count as strikes, which decay at half the line rate; the connection decides
 * what to do with a client that keeps striking.
 *
 * @module
 */

import { DEFAULT_RATE_BURST_BYTES, DEFAULT_RATE_BYTES_PER_SECOND } from "../protocol/limits.ts";

/** The limits of {@linkcode FloodControl}; the byte ones default to limits.ts. */
export interface FloodLimits {
  /** Lines that may be sent back to back; 0 turns flood control off, both buckets. */
  rateBurst: number;
  /** Lines a second, sustained. */
  ratePerSecond: number;
  /** Bytes that may be spent back to back; 0 turns the byte bucket alone off. */
  rateBurstBytes?: number;
  /** Bytes a second, sustained. */
  rateBytesPerSecond?: number;
}

/** Each limits object with its defaults filled in, made once and shared by every connection. */
const filled = new WeakMap<FloodLimits, Required<FloodLimits>>();
function withDefaults(limits: FloodLimits): Required<FloodLimits> {
  let full = filled.get(limits);
  if (full === undefined) {
    full = {
      rateBurstBytes: DEFAULT_RATE_BURST_BYTES,
      rateBytesPerSecond: DEFAULT_RATE_BYTES_PER_SECOND,
      ...limits,
    };
    filled.set(limits, full);
  }
  return full;
}

/** What a line costs in the byte bucket, by its code. */
type ByteRule = "message" | "reply" | "free";

function byteRule(line: Uint8Array): ByteRule {
  const code = line[0];
  if (line.length > 1 && line[1] !== 0x3a) return "free"; // not a command: answered `9:?:`
  if (code === 0x33) return "message"; // 3
  if (code === 0x31 || code === 0x32) return "reply"; // 1, 2
  return "free";
}

/**
 * The flood buckets of one connection.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FloodControl } from "./flood.ts";
 * let now = 0;
 * const flood = new FloodControl(
 *   { rateBurst: 100, ratePerSecond: 10, rateBurstBytes: 1000, rateBytesPerSecond: 100 },
 *   () => now,
 * );
 * const say = new TextEncoder().encode("3:0:" + "x".repeat(595)); // 599 bytes + LF
 * assert.equal(flood.admit(say), true);
 * assert.equal(flood.admit(say), false); // 400 bytes left: refused
 * now += 2000; // two seconds: 200 more
 * assert.equal(flood.admit(say), true);
 * const list = new TextEncoder().encode("1");
 * flood.charged(list, 5000); // a big room list puts the bucket in debt
 * now += 1000;
 * assert.equal(flood.admit(list), false); // still in debt
 * ```
 */
export class FloodControl {
  #limits: Required<FloodLimits>;
  #now: () => number;
  #lines: number;
  #bytes: number;
  #strikes = 0;
  #refilledAt: number;

  /** `now` reads the clock in milliseconds. */
  constructor(limits: FloodLimits, now: () => number) {
    this.#limits = withDefaults(limits);
    this.#now = now;
    this.#lines = this.#limits.rateBurst;
    this.#bytes = this.#limits.rateBurstBytes;
    this.#refilledAt = now();
  }

  /** Lines refused lately (decaying at half the line rate). */
  get strikes(): number {
    return this.#strikes;
  }

  /** Whether the client keeps flooding: more refused lines lately than a burst of lines. */
  get flooding(): boolean {
    return this.#strikes > this.#limits.rateBurst;
  }

  /** Whether `line` may go now; if so its line token (and a message's bytes) are spent. */
  admit(line: Uint8Array): boolean {
    const { rateBurst, rateBurstBytes } = this.#limits;
    if (rateBurst === 0) return true; // flood control is off
    this.#refill();
    const rule = rateBurstBytes === 0 ? "free" : byteRule(line);
    // A line longer than the whole burst passes when the bucket is full, and empties it.
    const cost = rule === "message" ? Math.min(line.length + 1, rateBurstBytes) : 0;
    const linesOk = this.#lines >= 1;
    const bytesOk = rule === "free" || (rule === "message" ? this.#bytes >= cost : this.#bytes > 0);
    if (linesOk && bytesOk) {
      this.#lines -= 1;
      this.#bytes -= cost;
      return true;
    }
    this.#strikes += 1;
    return false;
  }

  /** `line` was let through and its reply took `bytes`: a `1` or `2:` reply is charged. */
  charged(line: Uint8Array, bytes: number): void {
    const { rateBurst, rateBurstBytes } = this.#limits;
    if (rateBurst === 0 || rateBurstBytes === 0 || byteRule(line) !== "reply") return;
    this.#refill();
    this.#bytes -= bytes;
  }

  #refill(): void {
    const { rateBurst, ratePerSecond, rateBurstBytes, rateBytesPerSecond } = this.#limits;
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#refilledAt) / 1000;
    this.#refilledAt = now;
    this.#lines = Math.min(rateBurst, this.#lines + elapsed * ratePerSecond);
    this.#bytes = Math.min(rateBurstBytes, this.#bytes + elapsed * rateBytesPerSecond);
    this.#strikes = Math.max(0, this.#strikes - elapsed * ratePerSecond / 2);
  }
}
