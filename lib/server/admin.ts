/**
 * The operator's commands: add, remove and list users and rooms in the database (a SQLite file or
 * PostgreSQL), safely while the server runs (SQLite's WAL and busy timeout, PostgreSQL's
 * transactions; the server follows the change log).
 *
 * @module
 */

import { isValidUsername, isValidUserPassword, MAX_PASSWORD_BYTES } from "../protocol/codec.ts";
import type { AdminCommand, Config } from "./config.ts";
import { PasswordHasher, scryptParams } from "./password.ts";
import { isPostgresUrl } from "../store/database_url.ts";
import { openStore } from "../store/open_store.ts";
import { type Store, StoreError } from "../store/store.ts";
import { PromptCancelled, promptHidden } from "./terminal.ts";

/** Where an admin command reads its password and writes its output. */
export interface AdminIO {
  /** The password source when it is not a terminal. */
  stdin: ReadableStream<Uint8Array>;
  /** Whether stdin is a terminal (then the password is asked for, hidden, twice). */
  isTerminal: boolean;
  /** Prints a line of output. */
  out: (line: string) => void;
  /** Prints a line of error. */
  err: (line: string) => void;
}

/** A failure to report as one line on stderr, with a non-zero exit. */
export class AdminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdminError";
  }
}

/**
 * Runs one admin command and returns the process exit code (0 on success). Errors are printed
 * as one line on stderr; nothing is written to the database when a command fails.
 *
 * @example Add a user, then list the users
 * ```ts
 * import assert from "node:assert/strict";
 * import { runAdmin } from "./admin.ts";
 * import { parseInvocation } from "./config.ts";
 * const dir = await Deno.makeTempDir();
 * const output: string[] = [];
 * const run = async (args: string[], stdin = "") => {
 *   const invocation = parseInvocation(["--db", `${dir}/parley.db`, "--hash-cost", "10", ...args], {});
 *   assert.equal(invocation.kind, "admin");
 *   if (invocation.kind !== "admin") return -1;
 *   return await runAdmin(invocation.command, invocation.name, invocation.config, {
 *     stdin: ReadableStream.from([new TextEncoder().encode(stdin)]),
 *     isTerminal: false,
 *     out: (line) => output.push(line),
 *     err: (line) => output.push(line),
 *   });
 * };
 * assert.equal(await run(["--add-user", "alice"], "secret\n"), 0);
 * assert.equal(await run(["--list-users"]), 0);
 * assert.equal(await run(["--remove-user", "bob"]), 1);
 * assert.deepEqual(output, ["added user alice", "alice", "parley: no user named bob"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function runAdmin(
  command: AdminCommand,
  name: string,
  config: Config,
  io: AdminIO,
): Promise<number> {
  let store: Store | undefined;
  try {
    if (command === "add-user" || command === "set-password") checkUsername(name);
    if (command === "remove-rooms-by") checkUsername(name);
    if (command === "remove-idle-rooms") parseIdleDuration(name);
    if (command === "backup" && isPostgresUrl(config.db)) {
      // A consistent copy of a PostgreSQL database is its own tools' job (and its server's files).
      throw new AdminError("--backup copies a SQLite file; back up PostgreSQL with pg_dump");
    }
    if (command === "backup" && !await exists(config.db)) {
      throw new AdminError(`no database at ${config.db} to back up`);
    }
    store = await openStore(config.db);
    await execute(store, command, name, config, io);
    return 0;
  } catch (error) {
    const message = error instanceof AdminError || error instanceof StoreError
      ? error.message
      : `unexpected error: ${error instanceof Error ? error.message : String(error)}`;
    io.err(`parley: ${message}`);
    return 1;
  } finally {
    await store?.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function checkUsername(name: string): void {
  if (!isValidUsername(name)) {
    throw new AdminError(
      `invalid username "${name}": use 1 to 32 characters from A-Z a-z 0-9 _ . -`,
    );
  }
}

async function execute(
  store: Store,
  command: AdminCommand,
  name: string,
  config: Config,
  io: AdminIO,
): Promise<void> {
  const hasher = () => new PasswordHasher({ params: scryptParams(config.hashCost) });
  switch (command) {
    case "add-user": {
      if (await store.findUser(name)) throw new AdminError(`user ${name} already exists`);
      const hash = await hasher().hash(await readPassword(io, name));
      try {
        await store.addUser(name, hash);
      } catch (error) {
        if (error instanceof StoreError && error.code === "duplicate") {
          throw new AdminError(`user ${name} already exists`);
        }
        throw error;
      }
      io.out(`added user ${name}`);
      return;
    }
    case "set-password": {
      if (!await store.findUser(name)) throw new AdminError(`no user named ${name}`);
      const hash = await hasher().hash(await readPassword(io, name));
      if (!await store.setPassword(name, hash)) throw new AdminError(`no user named ${name}`);
      io.out(`set the password of ${name}`);
      return;
    }
    case "remove-user":
      if (!await store.removeUser(name)) throw new AdminError(`no user named ${name}`);
      io.out(`removed user ${name}`);
      return;
    case "list-users":
      for (const user of await store.listUsers()) io.out(user);
      return;
    case "list-rooms":
      for (const room of await store.listRooms()) {
        io.out(room.passwordHash === null ? room.name : `${room.name} (password)`);
      }
      return;
    case "remove-room":
      if (!await store.removeRoom(name)) throw new AdminError(`no room named ${name}`);
      io.out(`removed room ${name}`);
      return;
    case "remove-rooms-by": {
      const removed = await store.removeRoomsBy(name);
      io.out(`removed ${removed.length} room${removed.length === 1 ? "" : "s"} made by ${name}`);
      return;
    }
    case "remove-idle-rooms": {
      const removed = await store.removeRoomsUnusedSince(Date.now() - parseIdleDuration(name));
      io.out(`removed ${removed.length} room${removed.length === 1 ? "" : "s"} unused for ${name}`);
      return;
    }
    case "backup": {
      // Loaded here, not above: only a SQLite backup needs the SQLite driver.
      const { SqliteStore } = await import("../store/sqlite_store.ts");
      if (!(store instanceof SqliteStore)) throw new AdminError("--backup copies a SQLite file");
      const { users, rooms } = await store.backup(name);
      io.out(`backed up ${config.db} to ${name} (${users} users, ${rooms} rooms)`);
      return;
    }
  }
}

/** The shortest --remove-idle-rooms: a running server records room use every 10 minutes. */
const MIN_IDLE_MS = 3_600_000;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Reads a --remove-idle-rooms duration (`90m`, `12h`, `30d`) as milliseconds. At least an hour:
 * a running server writes which rooms are in use every 10 minutes, so a room in use always looks
 * used within the last hour.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdminError, parseIdleDuration } from "./admin.ts";
 * assert.equal(parseIdleDuration("2h"), 7_200_000);
 * assert.equal(parseIdleDuration("30d"), 30 * 86_400_000);
 * assert.throws(() => parseIdleDuration("5m"), AdminError); // under an hour
 * assert.throws(() => parseIdleDuration("soon"), AdminError);
 * ```
 */
export function parseIdleDuration(text: string): number {
  const match = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (match === null) {
    throw new AdminError(`--remove-idle-rooms needs a duration such as 12h or 30d (got "${text}")`);
  }
  const ms = Number(match[1]) * UNIT_MS[match[2]];
  if (ms < MIN_IDLE_MS) {
    throw new AdminError(`--remove-idle-rooms needs at least 1h (got "${text}")`);
  }
  return ms;
}

/**
 * Checks a new password's bytes, naming the rule it breaks (never the password).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdminError, checkNewPassword } from "./admin.ts";
 * checkNewPassword(new TextEncoder().encode("correct horse"));
 * assert.throws(() => checkNewPassword(new TextEncoder().encode("a:b")), AdminError);
 * ```
 */
export function checkNewPassword(password: Uint8Array): void {
  if (password.length === 0) throw new AdminError("the password is empty");
  if (password.length > MAX_PASSWORD_BYTES) {
    throw new AdminError(`the password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  if (password.includes(0x3a)) throw new AdminError("the password may not contain ':'");
  if (password.includes(0x0a) || password.includes(0x0d)) {
    throw new AdminError("the password may not contain a line break");
  }
  if (!isValidUserPassword(password)) throw new AdminError("the password is not valid");
}

async function readPassword(io: AdminIO, name: string): Promise<Uint8Array> {
  let password: Uint8Array;
  if (io.isTerminal) {
    password = await askHidden(`Password for ${name}: `);
    const again = await askHidden(`Password for ${name} (again): `);
    if (password.length !== again.length || !password.every((b, i) => b === again[i])) {
      throw new AdminError("the passwords do not match");
    }
  } else {
    password = new Uint8Array(await new Response(io.stdin).arrayBuffer());
    // `echo secret |` ends with a newline: drop one line ending, keep everything else.
    let end = password.length;
    if (end > 0 && password[end - 1] === 0x0a) end--;
    if (end > 0 && password[end - 1] === 0x0d) end--;
    password = password.subarray(0, end);
  }
  checkNewPassword(password);
  return password;
}

async function askHidden(prompt: string): Promise<Uint8Array> {
  try {
    return await promptHidden(prompt);
  } catch (error) {
    if (error instanceof PromptCancelled) throw new AdminError("cancelled");
    throw error;
  }
}
