/**
 * Resume tokens (docs/protocol.md, "Resume"): issued at every session start, checked at a
 * `6:<username>:<token>` login. A token is 24 random bytes in base64url (32 characters). The
 * store keeps one row a user: the SHA-256 of its newest token and when it was issued, so each
 * new session makes every older token of its user useless, and a reader of the database learns
 * nothing it could log in with. Checking costs one hash and one read, never a password hash.
 *
 * Writes (and reads) asked for while one is in flight, or within the same event-loop turn, go
 * to the store together: a storm of 10,000 resumes is a handful of transactions, not 10,000
 * fsyncs. A token is handed out only once its batch has committed.
 *
 * @module
 */

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import type { ResumeTokenRecord } from "../store/store.ts";

/** What tokens need of the store (see lib/store/store.ts). */
export interface TokenStore {
  /** Replaces each user's row, in one transaction; unknown users are skipped. */
  saveResumeTokens(tokens: readonly ResumeTokenRecord[]): Promise<void>;
  /** The rows of `users` (none for a user without one). */
  findResumeTokens(users: readonly string[]): Promise<ResumeTokenRecord[]>;
}

/** Options of {@linkcode ResumeTokens}. */
export interface ResumeTokensOptions {
  store: TokenStore;
  /** How long a token stays good (`--resume-ttl-s`, in ms here). */
  ttlMs: number;
  /** Wall-clock time in ms since the epoch (stored, so shared by restarts and nodes). */
  now?: () => number;
  /** Runs the next batch later in this turn's wake (default: a 0 ms timer). */
  schedule?: (task: () => void) => void;
  /** The most rows one transaction writes or reads. */
  maxBatch?: number;
}

/** Random bytes a token carries: 192 bits, beyond guessing. */
const TOKEN_BYTES = 24;
/** Rows a batch holds at most: one write stays short, so the event loop is not held long. */
const DEFAULT_MAX_BATCH = 2000;

/** The stored form of a token: its SHA-256, lowercase hex. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * Issues and checks resume tokens through a store, in batches.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ResumeTokens } from "./resume_tokens.ts";
 * import type { ResumeTokenRecord } from "../store/store.ts";
 * const rows = new Map<string, ResumeTokenRecord>();
 * let writes = 0;
 * const tokens = new ResumeTokens({
 *   ttlMs: 60_000,
 *   store: {
 *     saveResumeTokens: (batch) => {
 *       writes++;
 *       for (const row of batch) rows.set(row.user, row);
 *       return Promise.resolve();
 *     },
 *     findResumeTokens: (users) => Promise.resolve(users.flatMap((u) => rows.get(u) ?? [])),
 *   },
 * });
 * const [old, alice, bob] = await Promise.all(["alice", "alice", "bob"].map((u) => tokens.issue(u)));
 * assert.equal(writes, 1); // one turn's issues, one write
 * assert.match(alice, /^[A-Za-z0-9_-]{32}$/);
 * assert.equal(await tokens.check("alice", alice), true);
 * assert.equal(await tokens.check("alice", old), false); // the newer one replaced it
 * assert.equal(await tokens.check("alice", bob), false);
 * ```
 */
export class ResumeTokens {
  #ttlMs: number;
  #now: () => number;
  #writes: Batches<ResumeTokenRecord, undefined>;
  #reads: Batches<string, ResumeTokenRecord | undefined>;

  constructor(options: ResumeTokensOptions) {
    const { store, ttlMs, now = Date.now } = options;
    const schedule = options.schedule ?? ((task) => setTimeout(task, 0));
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.#ttlMs = ttlMs;
    this.#now = now;
    this.#writes = new Batches(
      async (rows) => {
        await store.saveResumeTokens(rows);
        return rows.map(() => undefined);
      },
      schedule,
      maxBatch,
    );
    this.#reads = new Batches(
      async (users) => {
        const found = new Map<string, ResumeTokenRecord>();
        for (const row of await store.findResumeTokens([...new Set(users)])) {
          found.set(row.user, row);
        }
        return users.map((user) => found.get(user));
      },
      schedule,
      maxBatch,
    );
  }

  /**
   * A new token for `user`, once stored: every older token of the user is useless from then on.
   * Rejects when the store fails.
   */
  async issue(user: string): Promise<string> {
    const token = randomBytes(TOKEN_BYTES).toString("base64url");
    await this.#writes.add({ user, hash: hashToken(token), issuedAt: this.#now() });
    return token;
  }

  /** Whether `token` is `user`'s newest and younger than the lifetime. Rejects when the store fails. */
  async check(user: string, token: string): Promise<boolean> {
    const row = await this.#reads.add(user);
    if (row === undefined || this.#now() - row.issuedAt >= this.#ttlMs) return false;
    const stored = Buffer.from(row.hash, "hex");
    const given = createHash("sha256").update(token).digest();
    // Constant time: how much of the hash matched tells nothing.
    return stored.length === given.length && timingSafeEqual(stored, given);
  }
}

/** An item waiting for its batch, with what settles its promise. */
interface Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Runs items in batches, one batch at a time, in the order added: items added while a batch
 * runs, or before the scheduled one starts, go in the next.
 */
class Batches<T, R> {
  #queue: Waiting<T, R>[] = [];
  #busy = false;
  #run: (items: T[]) => Promise<R[]>;
  #schedule: (task: () => void) => void;
  #max: number;

  constructor(
    run: (items: T[]) => Promise<R[]>,
    schedule: (task: () => void) => void,
    max: number,
  ) {
    this.#run = run;
    this.#schedule = schedule;
    this.#max = max;
  }

  add(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#busy || this.#queue.length === 0) return;
    this.#busy = true;
    this.#schedule(() => void this.#next());
  }

  async #next(): Promise<void> {
    const batch = this.#queue.splice(0, this.#max);
    try {
      const results = await this.#run(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(results[i]));
    } catch (error) {
      for (const w of batch) w.reject(error);
    } finally {
      this.#busy = false;
      this.#kick();
    }
  }
}
