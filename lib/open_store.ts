/**
 * Opens the store a `--db` value names: a `postgres://` or `postgresql://` URL is a PostgreSQL
 * database, anything else a SQLite file.
 *
 * @module
 */

import { openSqliteStore } from "./sqlite_store.ts";
import type { Store } from "./store.ts";

/** Whether `db` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/**
 * Opens the store `db` names. Throws a {@linkcode StoreError} whose message names the file or
 * database when it cannot.
 *
 * @example Usage
 * ```ts
 * import { openStore } from "./open_store.ts";
 * const store = await openStore(":memory:");
 * await store.close();
 * ```
 */
export function openStore(db: string): Promise<Store> {
  if (isPostgresUrl(db)) throw new Error("PostgreSQL store: not built yet");
  return Promise.resolve(openSqliteStore(db));
}
