/**
 * Password hashing with scrypt from node:crypto: salted, memory-hard, run off the event loop and
 * with bounded concurrency, so a burst of logins never stalls the clients already chatting.
 *
 * A stored hash reads `scrypt$<log2 N>$<r>$<p>$<salt>$<key>` (salt and key in base64), so every
 * hash carries its own parameters and the defaults can be raised without breaking old ones.
 *
 * @module
 */

import { createHmac, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { FairQueue, QueueFullError } from "./fair_queue.ts";
import { DEFAULT_MAX_HASH_QUEUE } from "../protocol/limits.ts";

/** The scrypt cost parameters. */
export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  logN: number;
  /** The block size r. */
  r: number;
  /** The parallelism p. */
  p: number;
}

/** The production cost: N = 2^15, r = 8, p = 1 (about 32 MiB and 100 ms a hash here). */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = { logN: 15, r: 8, p: 1 };

/**
 * The production parameters at another cost: only N is tunable (`--hash-cost`); r and p stay
 * as {@linkcode DEFAULT_SCRYPT} has them.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { scryptParams } from "./password.ts";
 * assert.deepEqual(scryptParams(10), { logN: 10, r: 8, p: 1 });
 * ```
 */
export function scryptParams(logN: number): ScryptParams {
  return { ...DEFAULT_SCRYPT, logN };
}

const SALT_BYTES = 16;
const KEY_BYTES = 32;

/**
 * Thrown by {@linkcode PasswordHasher} when more hashes are waiting than it may queue: the
 * password was not checked (busy), which is not a wrong password.
 */
export class HasherBusyError extends QueueFullError {
  constructor() {
    super("too many password checks waiting");
    this.name = "HasherBusyError";
  }
}

/** Options of {@linkcode PasswordHasher}. */
export interface PasswordHasherOptions {
  /** Cost of new hashes (and of the stand-in hash an unknown user is checked against). */
  params?: ScryptParams;
  /**
   * How many hashes may run at once; the rest wait in line, served round-robin between the keys
   * (remote addresses) they were asked for. Default: one fewer than the machine's cores (at
   * least 1), so a login storm always leaves a core to the event loop.
   */
  concurrency?: number;
  /** How many may wait in line before new requests fail with {@linkcode HasherBusyError}. */
  maxWaiting?: number;
  /**
   * How many recently proven passwords to remember, so a returning user costs an HMAC instead
   * of a full scrypt (see {@linkcode PasswordHasher.verify}). Default 50,000; 0 turns it off.
   */
  rememberVerified?: number;
}

function derive(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const N = 2 ** params.logN;
  const maxmem = 256 * N * params.r * params.p + (1 << 20);
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { N, r: params.r, p: params.p, maxmem }, (err, key) => {
      if (err) reject(err);
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
    });
  });
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

interface ParsedHash {
  params: ScryptParams;
  salt: Uint8Array;
  key: Uint8Array;
}

/**
 * Reads a stored hash, or returns `null` if it is not one this module wrote.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHash } from "./password.ts";
 * const parsed = parseHash("scrypt$10$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA");
 * assert.deepEqual(parsed?.params, { logN: 10, r: 8, p: 1 });
 * assert.equal(parsed?.salt.length, 16);
 * assert.equal(parseHash("$2b$10$bcrypt..."), null);
 * ```
 */
export function parseHash(encoded: string): ParsedHash | null {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return null;
  const [logN, r, p] = parts.slice(1, 4).map(Number);
  if (![logN, r, p].every((n) => Number.isInteger(n) && n > 0) || logN > 24) return null;
  try {
    return { params: { logN, r, p }, salt: fromBase64(parts[4]), key: fromBase64(parts[5]) };
  } catch {
    return null;
  }
}

/**
 * The extra work that makes a check at `stored` cost as much as one at `current`: nothing when
 * the stored cost is not lower, else scrypt at the costs s, s, s+1, …, c−1 after the real check
 * at s (2^s + 2^s + 2^(s+1) + … + 2^(c−1) = 2^c). r and p are the stored hash's.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { paddingCosts, scryptParams } from "./password.ts";
 * assert.deepEqual(paddingCosts(scryptParams(10), scryptParams(13)).map((p) => p.logN), [10, 11, 12]);
 * assert.deepEqual(paddingCosts(scryptParams(15), scryptParams(15)), []);
 * assert.deepEqual(paddingCosts(scryptParams(16), scryptParams(15)), []);
 * ```
 */
export function paddingCosts(stored: ScryptParams, current: ScryptParams): ScryptParams[] {
  const costs: ScryptParams[] = [];
  for (let logN = stored.logN; logN < current.logN; logN++) costs.push({ ...stored, logN });
  return costs;
}

/** How many of the latest runs at the current cost the timing of the padding follows. */
const TIMED_RUNS = 15;

/**
 * Hashes and checks passwords with scrypt, a few at a time, serving the addresses that asked
 * round-robin ({@linkcode FairQueue}).
 *
 * Timing: an unknown user is checked against a stand-in hash at the current cost; a wrong
 * password against a hash stored at a lower cost (an older `--hash-cost`) is answered no sooner
 * than a check at the current cost lately took, so neither answer tells
 * which names exist, also while the cost is being raised. A hash stored at a higher cost is
 * checked at its own cost (it cannot be cheaper), and so takes longer than an unknown name until
 * it is re-hashed ({@linkcode PasswordHasher.needsRehash}; the server does so at the next login).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { PasswordHasher, scryptParams } from "./password.ts";
 * const hasher = new PasswordHasher({ params: scryptParams(10) });
 * const pw = new TextEncoder().encode("secret");
 * const stored = await hasher.hash(pw);
 * assert.match(stored, /^scrypt\$10\$8\$1\$/);
 * assert.equal(await hasher.verify(pw, stored), true);
 * assert.equal(await hasher.verify(new TextEncoder().encode("guess"), stored, "10.0.0.1"), false);
 * // An unknown user: false, after the same work as a real check.
 * assert.equal(await hasher.verify(pw, undefined), false);
 * assert.equal(hasher.needsRehash(stored), false);
 * assert.equal(new PasswordHasher({ params: scryptParams(11) }).needsRehash(stored), true);
 * ```
 */
export class PasswordHasher {
  readonly params: ScryptParams;
  readonly concurrency: number;
  readonly maxWaiting: number;
  #queue: FairQueue;
  #standIn: Promise<string> | null = null;
  readonly rememberVerified: number;
  /** Stored hash → HMAC of the password proven against it; oldest first (a Map keeps order). */
  #verified = new Map<string, Uint8Array>();
  /** The HMAC key: random per process, never written anywhere. */
  #secret = new Uint8Array(randomBytes(32));
  /** How long the latest scrypt runs at this hasher's cost took, in ms (at most TIMED_RUNS). */
  #recentMs: number[] = [];

  constructor(options: PasswordHasherOptions = {}) {
    this.params = options.params ?? DEFAULT_SCRYPT;
    this.concurrency = options.concurrency ?? Math.max(1, navigator.hardwareConcurrency - 1);
    this.maxWaiting = options.maxWaiting ?? DEFAULT_MAX_HASH_QUEUE;
    this.rememberVerified = options.rememberVerified ?? 50_000;
    this.#queue = new FairQueue({
      concurrency: this.concurrency,
      maxWaiting: this.maxWaiting,
      full: () => new HasherBusyError(),
    });
  }

  /**
   * Hashes `password` with a fresh 16-byte salt at this hasher's cost. `key` (the address that
   * asked) is whose turn it takes in the queue.
   */
  async hash(password: Uint8Array, key = ""): Promise<string> {
    const salt = new Uint8Array(randomBytes(SALT_BYTES));
    const derived = await this.#queue.run(key, async () => {
      const started = performance.now();
      const derived = await derive(password, salt, this.params);
      this.#observe(performance.now() - started);
      return derived;
    });
    const { logN, r, p } = this.params;
    return `scrypt$${logN}$${r}$${p}$${toBase64(salt)}$${toBase64(derived)}`;
  }

  /** Whether `stored` was made with other parameters than this hasher's (so worth re-making). */
  needsRehash(stored: string): boolean {
    const parsed = parseHash(stored);
    if (parsed === null) return false;
    const { logN, r, p } = parsed.params;
    return logN !== this.params.logN || r !== this.params.r || p !== this.params.p;
  }

  /**
   * Whether `password` matches `stored`. With no stored hash (an unknown user) it checks against
   * a stand-in hash of the same cost and returns false, so the answer takes the same time; a
   * wrong password against a cheaper stored hash is padded to the same time too. `key` (the
   * address that asked) is whose turn the check takes in the queue; a full queue rejects with
   * {@linkcode HasherBusyError}.
   *
   * A password proven right against a stored hash is remembered, in memory only, as an HMAC
   * under a per-process random key; the same password against the same stored hash is then
   * accepted after one HMAC, not a full scrypt. Only a right password takes that shortcut: a
   * wrong one, or an unknown user, always costs a full scrypt. A changed password is a new stored
   * hash, so what was remembered for the old one is never used again.
   */
  async verify(password: Uint8Array, stored: string | undefined, key = ""): Promise<boolean> {
    if (stored !== undefined && this.#remembered(password, stored)) return true;
    const known = stored !== undefined;
    const parsed = parseHash(stored ?? await this.#standInHash());
    if (parsed === null) return false;
    const ok = await this.#queue.run(key, async () => {
      const started = performance.now();
      const derived = await derive(password, parsed.salt, parsed.params);
      if (this.#isCurrent(parsed.params)) this.#observe(performance.now() - started);
      const right = known && derived.length === parsed.key.length &&
        timingSafeEqual(derived, parsed.key);
      // Only a right password (which its owner knows anyway) is answered without the padding.
      if (!right) await this.#pad(password, parsed, started);
      return right;
    });
    if (ok) this.#remember(password, stored!);
    return ok;
  }

  /**
   * Makes a wrong answer against a cheaper stored hash take as long as a check at this hasher's
   * cost: it waits until the recent time of such a check has passed since `started`. Waiting for
   * the measured time, not doing scrypt at the lower costs, matters: smaller scrypt runs fit the
   * caches better and add up to less time than one run at the full cost, most of all on a busy
   * machine. Until one check at the full cost has been timed, the padding is that work.
   */
  async #pad(password: Uint8Array, parsed: ParsedHash, started: number): Promise<void> {
    const costs = paddingCosts(parsed.params, this.params);
    if (costs.length === 0) return;
    if (this.#recentMs.length === 0) {
      for (const cost of costs) await derive(password, parsed.salt, cost);
      return;
    }
    // The median: one run slowed by a busy moment does not move it.
    const typical = [...this.#recentMs].sort((a, b) => a - b)[this.#recentMs.length >> 1];
    const wait = typical - (performance.now() - started);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }

  #isCurrent(params: ScryptParams): boolean {
    return params.logN === this.params.logN && params.r === this.params.r &&
      params.p === this.params.p;
  }

  /** Records how long one scrypt run at this hasher's cost took. */
  #observe(ms: number): void {
    this.#recentMs.push(ms);
    if (this.#recentMs.length > TIMED_RUNS) this.#recentMs.shift();
  }

  #tag(password: Uint8Array, stored: string): Uint8Array {
    return new Uint8Array(
      createHmac("sha256", this.#secret).update(stored).update(password).digest(),
    );
  }

  #remembered(password: Uint8Array, stored: string): boolean {
    const tag = this.#verified.get(stored);
    return tag !== undefined && timingSafeEqual(tag, this.#tag(password, stored));
  }

  #remember(password: Uint8Array, stored: string): void {
    if (this.rememberVerified === 0) return;
    this.#verified.delete(stored); // re-inserted as the newest
    if (this.#verified.size >= this.rememberVerified) {
      this.#verified.delete(this.#verified.keys().next().value!);
    }
    this.#verified.set(stored, this.#tag(password, stored));
  }

  /** Makes the stand-in hash ahead of time, so even the first unknown user costs one check. */
  async prepare(): Promise<void> {
    await this.#standInHash();
  }

  #standInHash(): Promise<string> {
    this.#standIn ??= this.hash(new Uint8Array(randomBytes(SALT_BYTES))).catch((error) => {
      this.#standIn = null; // a busy queue: make it next time
      throw error;
    });
    return this.#standIn;
  }
}
