/**
 * Opens the store a `--db` value names: a `postgres://` or `postgresql://` URL is a PostgreSQL
 * database, anything else a SQLite file.
 *
 * @module
 */

import { describePostgresUrl, openPostgresStore } from "./postgres_store.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import type { Store } from "./store.ts";

/**
 * Whether `db` names a PostgreSQL database rather than a SQLite file.
 *
 * @example Usage
 * ```ts
 * import { isPostgresUrl } from "./open_store.ts";
 * isPostgresUrl("postgresql://parley@db/parley"); // true
 * isPostgresUrl("parley.db"); // false
 * ```
 */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/**
 * How logs name the store `db` names: a file as it is, a PostgreSQL URL without its user and
 * password (which must not reach a log).
 *
 * @example Usage
 * ```ts
 * import { describeDatabase } from "./open_store.ts";
 * describeDatabase("postgres://parley:secret@10.0.0.5:5432/parley"); // "postgres://10.0.0.5:5432/parley"
 * describeDatabase("parley.db"); // "parley.db"
 * ```
 */
export function describeDatabase(db: string): string {
  return isPostgresUrl(db) ? describePostgresUrl(db) : db;
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
  if (isPostgresUrl(db)) return openPostgresStore(db);
  try {
    return Promise.resolve(openSqliteStore(db));
  } catch (error) {
    return Promise.reject(error);
  }
}
