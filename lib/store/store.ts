/**
 * What Parley keeps on disk: users, rooms, and a log of changes that other processes (the admin
 * CLI) made, so a running server notices them. One interface, so the hub never sees SQL and a
 * shared store can stand in for the local SQLite file.
 *
 * @module
 */

/** A stored user. */
export interface UserRecord {
  /** The username, which is also the user's id on the wire. */
  name: string;
  /** The scrypt hash of the user's password (see password.ts). */
  passwordHash: string;
}

/** A stored room. */
export interface RoomRecord {
  /** The room's name. */
  name: string;
  /** The scrypt hash of the room's password, or `null` for a public room. */
  passwordHash: string | null;
  /** The user whose join made the room; `null` for rooms made before makers were recorded. */
  maker: string | null;
}

/**
 * A user's newest resume token, as stored: only its SHA-256, so a reader of the database cannot
 * use it (see lib/server/resume_tokens.ts).
 */
export interface ResumeTokenRecord {
  /** The user it was issued to. */
  user: string;
  /** SHA-256 of the token, lowercase hex. */
  hash: string;
  /** When it was issued, in ms since the epoch. */
  issuedAt: number;
}

/** What changed, as written to the change log. */
export type ChangeKind = "user-removed" | "room-added" | "room-removed";

/** What removing a user or a room deletes, and the change it logs. */
export const REMOVALS = {
  user: { table: "users", change: "user-removed", noun: "user" },
  room: { table: "rooms", change: "room-removed", noun: "room" },
} as const;

/** One of {@linkcode REMOVALS}. */
export type Removal = (typeof REMOVALS)[keyof typeof REMOVALS];

/** One entry of the change log. */
export interface Change {
  /** Increases with every change; a reader asks for what came after the last it saw. */
  seq: number;
  /** What happened. */
  kind: ChangeKind;
  /** The user or room it happened to. */
  name: string;
}

/** Why a store call failed, for callers that answer differently (a duplicate name, say). */
export class StoreError extends Error {
  /** `duplicate` (the name is taken), `not-found`, or `io` (the file or database failed). */
  readonly code: "duplicate" | "not-found" | "io";
  constructor(code: "duplicate" | "not-found" | "io", message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
    this.code = code;
  }
}

/**
 * The store behind the hub and the admin CLI. Every write is durable when its promise resolves.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Store } from "./store.ts";
 * import { openSqliteStore } from "./sqlite_store.ts";
 * async function countUsers(store: Store): Promise<number> {
 *   return (await store.listUsers()).length;
 * }
 * const store: Store = openSqliteStore(":memory:");
 * await store.addUser("alice", "scrypt$...");
 * assert.equal(await countUsers(store), 1);
 * await store.close();
 * ```
 */
export interface Store {
  /** The user named `name`, or `undefined`. */
  findUser(name: string): Promise<UserRecord | undefined>;
  /** Adds a user; a taken name fails with {@linkcode StoreError} code `duplicate`. */
  addUser(name: string, passwordHash: string): Promise<void>;
  /** Removes a user; false if there was none. */
  removeUser(name: string): Promise<boolean>;
  /**
   * Replaces a user's password hash, and drops its resume token; false if there is no such
   * user. (Removing a user drops its token too.)
   */
  setPassword(name: string, passwordHash: string): Promise<boolean>;
  /**
   * Replaces a user's hash by the same password's `replacement` (made at a new cost), only if
   * the stored one is still `old`: a password changed meanwhile is left alone. Whether it did.
   */
  upgradePasswordHash(name: string, old: string, replacement: string): Promise<boolean>;
  /** Every username, sorted. */
  listUsers(): Promise<string[]>;
  /** Every room, sorted by name. */
  listRooms(): Promise<RoomRecord[]>;
  /** The room named `name`, or `undefined`. */
  findRoom(name: string): Promise<RoomRecord | undefined>;
  /**
   * Adds a room, made by `maker` (null: by no user); a taken name fails with
   * {@linkcode StoreError} code `duplicate`. Its last use is now.
   */
  addRoom(name: string, passwordHash: string | null, maker?: string | null): Promise<void>;
  /** Removes a room; false if there was none. */
  removeRoom(name: string): Promise<boolean>;
  /** Removes every room `maker` made, in one transaction; their names, sorted. */
  removeRoomsBy(maker: string): Promise<string[]>;
  /** Removes every room last used before `before` (ms since the epoch); their names, sorted. */
  removeRoomsUnusedSince(before: number): Promise<string[]>;
  /** Records that the rooms `names` were used at `at` (ms since the epoch), in one write. */
  touchRooms(names: readonly string[], at: number): Promise<void>;
  /**
   * Stores each user's newest resume token in one transaction, replacing the one it had (the
   * last of a user's in `tokens` wins); users that do not exist are skipped.
   */
  saveResumeTokens(tokens: readonly ResumeTokenRecord[]): Promise<void>;
  /** The stored resume tokens of `users` (none for a user without one), in one read. */
  findResumeTokens(users: readonly string[]): Promise<ResumeTokenRecord[]>;
  /** The newest change's seq (0 when there is none). */
  lastChange(): Promise<number>;
  /** The changes after `seq`, oldest first. */
  changesSince(seq: number): Promise<Change[]>;
  /** Closes the store; later calls fail. */
  close(): Promise<void>;
}
