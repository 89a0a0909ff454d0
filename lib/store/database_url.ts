/**
 * What a `--db` value names, told from its text alone: a PostgreSQL URL or a SQLite file, and how
 * logs may name it. Pure, so flag parsing and logging never load a database driver.
 *
 * @module
 */

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/**
 * Whether `db` names a PostgreSQL database rather than a SQLite file.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isPostgresUrl } from "./database_url.ts";
 * assert.equal(isPostgresUrl("postgresql://parley@db/parley"), true);
 * assert.equal(isPostgresUrl("parley.db"), false);
 * ```
 */
export function isPostgresUrl(db: string): boolean {
  return POSTGRES_URL.test(db);
}

/**
 * `postgres://host:port/dbname`: where the database is, with no user or password (the database
 * defaults to the user's name, as in libpq).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { postgresLabel } from "./database_url.ts";
 * assert.equal(postgresLabel(new URL("postgres://parley:pw@db:6543")), "postgres://db:6543/parley");
 * ```
 */
export function postgresLabel(url: URL): string {
  const database = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username);
  return `postgres://${url.host || "?"}${url.port === "" ? ":5432" : ""}/${database}`;
}

/**
 * How messages and logs name the database `url` names: `postgres://host:port/dbname`, without
 * the user and password.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { describePostgresUrl } from "./database_url.ts";
 * assert.equal(
 *   describePostgresUrl("postgres://parley:secret@db.internal/parley"),
 *   "postgres://db.internal:5432/parley",
 * );
 * assert.equal(describePostgresUrl("postgres://a:b@[::1"), "postgres://(not a valid URL)");
 * ```
 */
export function describePostgresUrl(url: string): string {
  try {
    return postgresLabel(new URL(url));
  } catch {
    return "postgres://(not a valid URL)"; // the text itself may hold the password
  }
}

/**
 * How logs name the store `db` names: a file as it is, a PostgreSQL URL without its user and
 * password (which must not reach a log).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeDatabase } from "./database_url.ts";
 * assert.equal(
 *   describeDatabase("postgres://parley:secret@10.0.0.5:5432/parley"),
 *   "postgres://10.0.0.5:5432/parley",
 * );
 * assert.equal(describeDatabase("parley.db"), "parley.db");
 * ```
 */
export function describeDatabase(db: string): string {
  return isPostgresUrl(db) ? describePostgresUrl(db) : db;
}
