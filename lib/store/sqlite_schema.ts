/**
 * The SQLite schema: its migrations, in order, and how a file is brought up to date (or
 * refused, when it is another program's database or newer than this build).
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";

/** Schema changes, in order. A file at version N gets every migration after N, in one transaction. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE users (
     name TEXT PRIMARY KEY NOT NULL,
     password_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE rooms (
     name TEXT PRIMARY KEY NOT NULL,
     password_hash TEXT,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE changes (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     at INTEGER NOT NULL
   );`,
  // Who made each room (none for the rooms made before), and when it was last used: what the
  // per-user room limit and the operator's bulk removals read.
  `ALTER TABLE rooms ADD COLUMN maker TEXT;
   ALTER TABLE rooms ADD COLUMN last_used_at INTEGER;
   UPDATE rooms SET last_used_at = created_at;
   CREATE INDEX rooms_by_maker ON rooms (maker);`,
  // Each user's newest resume token, as its SHA-256 only; deleted with the user (explicitly:
  // foreign keys are off) and on a password change.
  `CREATE TABLE resume_tokens (
     user_name TEXT PRIMARY KEY NOT NULL,
     token_hash TEXT NOT NULL,
     issued_at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/** Another program's SQLite file: adding Parley's tables to it would be writing over it. */
export function refuseForeign(db: DatabaseSync): void {
  const tables = (db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
  ).all() as { name: string }[]).map((t) => t.name);
  if (tables.length > 0 && !tables.includes("schema_migrations")) {
    throw new Error("it is an SQLite file but not a Parley database (no schema_migrations)");
  }
}

/** Applies the migrations a file lacks, in one transaction. */
export function migrate(db: DatabaseSync): void {
  // BEGIN IMMEDIATE takes the write lock up front: a read-only or locked file fails here, clearly.
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
               version INTEGER PRIMARY KEY NOT NULL,
               applied_at INTEGER NOT NULL)`);
    const row = db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as {
      v: number | null;
    };
    const current = row.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `schema version ${current} is newer than this Parley understands (${SCHEMA_VERSION})`,
      );
    }
    const record = db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
    for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version - 1]);
      record.run(version, Date.now());
    }
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}
