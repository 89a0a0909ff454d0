// Resume tokens (lib/server/resume_tokens.ts) on a counting fake store: batching (a storm of
// issues is one write), the newest-wins rule, the lifetime, and store failures.
import assert from "node:assert/strict";
import { hashToken, ResumeTokens, type TokenStore } from "../lib/server/resume_tokens.ts";
import type { ResumeTokenRecord } from "../lib/store/store.ts";

/** A store in memory that counts its calls and can be made to fail. */
class CountingStore implements TokenStore {
  rows = new Map<string, ResumeTokenRecord>();
  writes: number[] = [];
  reads: number[] = [];
  failing = false;

  saveResumeTokens(tokens: readonly ResumeTokenRecord[]): Promise<void> {
    if (this.failing) return Promise.reject(new Error("disk full"));
    this.writes.push(tokens.length);
    for (const row of tokens) this.rows.set(row.user, row);
    return Promise.resolve();
  }

  findResumeTokens(users: readonly string[]): Promise<ResumeTokenRecord[]> {
    if (this.failing) return Promise.reject(new Error("disk full"));
    this.reads.push(users.length);
    return Promise.resolve(users.flatMap((u) => this.rows.get(u) ?? []));
  }
}

Deno.test("10,000 issues in one turn are 5 writes of 2,000, their checks 5 reads", async () => {
  const store = new CountingStore();
  const tokens = new ResumeTokens({ store, ttlMs: 60_000 });
  const users = Array.from({ length: 10_000 }, (_, i) => `u${i}`);
  const issued = await Promise.all(users.map((u) => tokens.issue(u)));
  assert.deepEqual(store.writes, [2000, 2000, 2000, 2000, 2000]); // --max-batch rows each
  assert.equal(new Set(issued).size, issued.length);
  for (const token of issued) assert.match(token, /^[A-Za-z0-9_-]{32}$/);
  // Only hashes are stored.
  assert.equal(store.rows.get("u7")?.hash, hashToken(issued[7]));
  assert.ok(![...store.rows.values()].some((row) => issued.includes(row.hash)));
  const checks = await Promise.all(users.map((u, i) => tokens.check(u, issued[i])));
  assert.ok(checks.every((ok) => ok));
  assert.equal(store.writes.length, 5);
  assert.deepEqual(store.reads, [2000, 2000, 2000, 2000, 2000]);
});

Deno.test("issues made while a write is in flight go together in the next", async () => {
  const store = new CountingStore();
  const tokens = new ResumeTokens({ store, ttlMs: 60_000, maxBatch: 100_000 });
  const first = tokens.issue("a");
  await new Promise((resolve) => setTimeout(resolve, 0)); // the first batch starts alone
  const rest = ["b", "c", "d"].map((u) => tokens.issue(u));
  await Promise.all([first, ...rest]);
  assert.deepEqual(store.writes, [1, 3]);
});

Deno.test("only the user's newest token, younger than the lifetime, is good", async () => {
  const store = new CountingStore();
  let now = 1_000_000;
  const tokens = new ResumeTokens({ store, ttlMs: 10_000, now: () => now });
  const older = await tokens.issue("alice");
  const newer = await tokens.issue("alice");
  const bob = await tokens.issue("bob");
  assert.equal(await tokens.check("alice", older), false, "a newer session replaced it");
  assert.equal(await tokens.check("alice", newer), true);
  assert.equal(await tokens.check("alice", bob), false, "another user's token");
  assert.equal(await tokens.check("carol", newer), false, "a user without a token");
  assert.equal(await tokens.check("alice", `${newer}x`), false);
  assert.equal(await tokens.check("alice", ""), false);
  now += 9_999;
  assert.equal(await tokens.check("alice", newer), true);
  now += 1;
  assert.equal(await tokens.check("alice", newer), false, "expired");
});

Deno.test("a failing store rejects the whole batch; the next batch works", async () => {
  const store = new CountingStore();
  const tokens = new ResumeTokens({ store, ttlMs: 60_000 });
  store.failing = true;
  const failed = await Promise.allSettled([tokens.issue("a"), tokens.issue("b")]);
  assert.deepEqual(failed.map((r) => r.status), ["rejected", "rejected"]);
  await assert.rejects(() => tokens.check("a", "x".repeat(32)));
  store.failing = false;
  const token = await tokens.issue("a");
  assert.equal(await tokens.check("a", token), true);
});
