/**
 * Opens the store a `--db` value names: a `postgres://` or `postgresql://` URL is a PostgreSQL
 * database, anything else a SQLite file. Each driver is loaded only when its store is opened, so
 * a SQLite server never loads the PostgreSQL client, and the reverse.
 *
 * @module
 */

import { isPostgresUrl } from "./database_url.ts";
import type { Store } from "./store.ts";

// Callers that ask this module what a `--db` names keep working; the answers live in
// database_url.ts, which loads no driver.
export { describeDatabase, isPostgresUrl } from "./database_url.ts";

/**
 * Opens the store `db` names. Rejects with a {@linkcode StoreError} whose message names the file
 * or database when it cannot.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./open_store.ts";
 * const store = await openStore(":memory:");
 * await store.addUser("alice", "scrypt$...");
 * assert.deepEqual(await store.listUsers(), ["alice"]);
 * await store.close();
 * ```
 */
export async function openStore(db: string): Promise<Store> {
  if (isPostgresUrl(db)) {
    const { openPostgresStore } = await import("./postgres_store.ts");
    return await openPostgresStore(db);
  }
  const { openSqliteStore } = await import("./sqlite_store.ts");
  return openSqliteStore(db);
}
