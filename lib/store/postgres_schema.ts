/**
 * The PostgreSQL schema: its migrations, in order, and how a database is brought up to date
 * (under an advisory lock, so nodes starting together do not race), or refused when it is newer
 * than this build or not UTF-8.
 *
 * @module
 */

import type postgres from "postgres";

/** The advisory lock that serializes migrations across nodes ("parley" in ASCII). */
const MIGRATION_LOCK = 0x7061726c6579;

/** Schema changes, in order. A database at version N gets every one after N, in one transaction. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE users (
     name TEXT COLLATE "C" PRIMARY KEY,
     password_hash TEXT NOT NULL,
     created_at TIMESTAMPTZ NOT NULL DEFAULT now()
   );
   CREATE TABLE rooms (
     name TEXT COLLATE "C" PRIMARY KEY,
     password_hash TEXT,
     created_at TIMESTAMPTZ NOT NULL DEFAULT now()
   );
   CREATE TABLE changes (
     seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     at TIMESTAMPTZ NOT NULL DEFAULT now()
   );`,
  // Who made each room (none for the rooms made before), and when it was last used: what the
  // per-user room limit and the operator's bulk removals read.
  `ALTER TABLE rooms ADD COLUMN maker TEXT COLLATE "C", ADD COLUMN last_used_at TIMESTAMPTZ;
   UPDATE rooms SET last_used_at = created_at;
   ALTER TABLE rooms ALTER COLUMN last_used_at SET DEFAULT now(),
     ALTER COLUMN last_used_at SET NOT NULL;
   CREATE INDEX rooms_by_maker ON rooms (maker);`,
  // Each user's newest resume token, as its SHA-256 only; it goes with its user, and on a
  // password change.
  `CREATE TABLE resume_tokens (
     user_name TEXT COLLATE "C" PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
     token_hash TEXT NOT NULL,
     issued_at BIGINT NOT NULL -- ms since the epoch, as the issuer's clock read it
   );`,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/** Applies the migrations a database lacks, in one transaction. */
export async function migrate(sql: postgres.Sql): Promise<void> {
  await sql.begin(async (tx) => {
    // Held until commit: a second node starting now waits, then finds the schema up to date.
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    const [{ server_encoding: encoding }] = await tx`SHOW server_encoding`;
    if (encoding !== "UTF8") {
      // Room names are any UTF-8: another encoding would refuse some, or mangle them.
      throw new Error(
        `the database's encoding is ${encoding}, not UTF8 (CREATE DATABASE ... ENCODING 'UTF8')`,
      );
    }
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
               version INTEGER PRIMARY KEY,
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`;
    const [{ v }] = await tx`SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations`;
    const current = Number(v);
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `schema version ${current} is newer than this Parley understands (${SCHEMA_VERSION})`,
      );
    }
    for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
      await tx.unsafe(MIGRATIONS[version - 1]);
      await tx`INSERT INTO schema_migrations (version) VALUES (${version})`;
    }
  });
}
