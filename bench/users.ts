/**
 * The benchmarks' users at the production hash cost (bench/restart.ts, bench/failover.ts): N users,
 * each with its own password and salted scrypt hash at cost 2^15, made once per N and cached as a
 * SQLite file in `bench/.cache/restart-<N>.db` (2,000 users: about 190 s of hashing on 2 cores),
 * and given to a cluster's PostgreSQL database from there.
 *
 * @module
 */

import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openStore } from "../lib/store/open_store.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";

/** The production hash cost (log2 of scrypt's N). */
export const COST = 15;

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * User i's password: distinct for every user.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { passwordOf } from "./users.ts";
 * assert.notEqual(passwordOf(1), passwordOf(2));
 * ```
 */
export const passwordOf = (i: number): string =>
  `pw-${i}-${(i * 2654435761 % 4294967296).toString(36)}`;

/**
 * User i's name.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { userOf } from "./users.ts";
 * assert.equal(userOf(7), "r7");
 * ```
 */
export const userOf = (i: number): string => `r${i}`;

/**
 * The cached SQLite database of users 0…n−1, made (all cores hashing) if missing.
 *
 * @example Usage
 * ```ts ignore
 * const file = await cachedUsers(2000); // bench/.cache/restart-2000.db
 * ```
 */
export async function cachedUsers(n: number): Promise<string> {
  const dir = `${ROOT}bench/.cache`;
  await Deno.mkdir(dir, { recursive: true });
  const file = `${dir}/restart-${n}.db`;
  try {
    await Deno.stat(file);
    console.log(`database: ${file} (cached)`);
    return file;
  } catch {
    // made below
  }
  const hasher = new PasswordHasher({
    params: scryptParams(COST),
    concurrency: Math.max(1, navigator.hardwareConcurrency),
    maxWaiting: n + 10,
    rememberVerified: 0,
  });
  const encoder = new TextEncoder();
  const hashes: string[] = new Array(n);
  let done = 0;
  const start = performance.now();
  const ticker = setInterval(() => {
    const s = (performance.now() - start) / 1000;
    const eta = done ? (s / done) * (n - done) : NaN;
    console.log(
      `hashing at cost ${COST}: ${done}/${n}, ${s.toFixed(0)} s, ~${eta.toFixed(0)} s left`,
    );
  }, 10_000);
  try {
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        hashes[i] = await hasher.hash(encoder.encode(passwordOf(i)));
        done++;
      }),
    );
  } finally {
    clearInterval(ticker);
  }
  const tmp = `${file}.${Deno.pid}.tmp`;
  const store = openSqliteStore(tmp);
  for (let i = 0; i < n; i++) await store.addUser(userOf(i), hashes[i]);
  await store.close();
  for (const suffix of ["-wal", "-shm"]) await Deno.remove(tmp + suffix).catch(() => {});
  await Deno.rename(tmp, file);
  console.log(
    `database: ${file}, ${n} users hashed in ${((performance.now() - start) / 1000).toFixed(0)} s`,
  );
  return file;
}

/**
 * Copies users 0…n−1 into the store at `to` (a postgres:// URL) with hashes at cost 2^10 of their
 * own passwords, and resolves to a function that raises each stored hash to its cost-15 one from
 * the SQLite file `from` (the same passwords). So a cluster's first logins, which a benchmark does
 * not measure, cost a cheap hash each; a login after the raise costs a production one.
 *
 * @example Usage
 * ```ts ignore
 * const raise = await cheapUsers(await cachedUsers(2000), db, 2000);
 * // … log everyone in …
 * await raise();
 * ```
 */
export async function cheapUsers(
  from: string,
  to: string,
  n: number,
): Promise<() => Promise<void>> {
  const hasher = new PasswordHasher({ params: scryptParams(10), maxWaiting: n + 10 });
  const encoder = new TextEncoder();
  const cheap = await Promise.all(
    Array.from({ length: n }, (_, i) => hasher.hash(encoder.encode(passwordOf(i)))),
  );
  const target = await openStore(to);
  try {
    for (let i = 0; i < n; i++) await target.addUser(userOf(i), cheap[i]);
  } finally {
    await target.close();
  }
  return async () => {
    const source = openSqliteStore(from);
    const target = await openStore(to);
    try {
      for (let i = 0; i < n; i++) {
        const user = await source.findUser(userOf(i));
        if (user === undefined) throw new Error(`${from} has no ${userOf(i)}`);
        await target.upgradePasswordHash(userOf(i), cheap[i], user.passwordHash);
      }
    } finally {
      await Promise.all([source.close(), target.close()]);
    }
  };
}
