/**
 * Users as an operator has them: each with its own password, hashed at the production cost
 * (2^15), so every login costs a full scrypt. bench/restart.ts and the login storm of
 * bench/run.ts share them. Hashing is slow (about 85 ms a user here, 2 at a time), so the
 * database is made once per N and cached in `bench/.cache/`.
 *
 * ```ts ignore
 * const db = await costlyUsersDatabase(500); // bench/.cache/restart-500.db
 * const line = `0:${costlyUser(7)}:${costlyPassword(7)}\n`;
 * ```
 *
 * @module
 */

import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";

/** The production hash cost (log2 N), as `--hash-cost` defaults to. */
export const COSTLY_HASH_COST = 15;

const CACHE = new URL("./.cache/", import.meta.url).pathname;

/** User `i`'s name. */
export function costlyUser(i: number): string {
  return `r${i}`;
}

/** User `i`'s password: distinct for every user. */
export function costlyPassword(i: number): string {
  return `pw-${i}-${(i * 2654435761 % 4294967296).toString(36)}`;
}

/**
 * The cached database of users r0…r(n−1) with {@linkcode costlyPassword}, hashed at
 * {@linkcode COSTLY_HASH_COST}; made (one hash per core at a time, progress printed) if missing.
 */
export async function costlyUsersDatabase(n: number): Promise<string> {
  await Deno.mkdir(CACHE, { recursive: true });
  const file = `${CACHE}restart-${n}.db`;
  try {
    await Deno.stat(file);
    console.log(`database: ${file} (cached)`);
    return file;
  } catch {
    // made below
  }
  const hasher = new PasswordHasher({
    params: scryptParams(COSTLY_HASH_COST),
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
      `hashing at cost ${COSTLY_HASH_COST}: ${done}/${n}, ${s.toFixed(0)} s, ~${
        eta.toFixed(0)
      } s left`,
    );
  }, 10_000);
  try {
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        hashes[i] = await hasher.hash(encoder.encode(costlyPassword(i)));
        done++;
      }),
    );
  } finally {
    clearInterval(ticker);
  }
  const tmp = `${file}.${Deno.pid}.tmp`;
  const store = openSqliteStore(tmp);
  for (let i = 0; i < n; i++) await store.addUser(costlyUser(i), hashes[i]);
  await store.close();
  for (const suffix of ["-wal", "-shm"]) await Deno.remove(tmp + suffix).catch(() => {});
  await Deno.rename(tmp, file);
  console.log(
    `database: ${file}, ${n} users hashed in ${((performance.now() - start) / 1000).toFixed(0)} s`,
  );
  return file;
}
