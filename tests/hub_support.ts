/**
 * Shared pieces of the hub's unit tests (tests/hub_test.ts, tests/hub_cluster_test.ts): a peer
 * that records what the hub sends it, and a hub on the real SQLite store (in memory) and the
 * real scrypt hasher at a low cost.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseCommand } from "../lib/protocol/codec.ts";
import { Hub, type HubOptions, type Peer, type SessionEndReason } from "../lib/hub/hub.ts";
import { type EdgeClaims, type EdgePasswords, hubEdge } from "../lib/server/hub_edge.ts";
import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openSqliteStore, type SqliteStore } from "../lib/store/sqlite_store.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connection as the hub sees it, recording what it is sent and told, in order. */
export class RecordingPeer implements Peer {
  /** Lines (without their LF) and notices ("@started:alice", "@ended:replaced"), in order. */
  log: string[] = [];
  /** The raw lines, LF included. */
  raw: Uint8Array[] = [];
  /** How many times send() was called (a run of room messages is one call). */
  sends = 0;
  constructor(readonly label: string) {}
  send(lines: Uint8Array): void {
    this.sends++;
    assert.equal(lines[lines.length - 1], 0x0a, `${this.label}: output ends in LF`);
    // A run of room messages arrives as one chunk: record it line by line.
    let start = 0;
    for (let lf = lines.indexOf(0x0a); lf !== -1; lf = lines.indexOf(0x0a, start)) {
      this.raw.push(lines.slice(start, lf + 1));
      this.log.push(decoder.decode(lines.subarray(start, lf)));
      start = lf + 1;
    }
  }
  sessionStarted(username: string): void {
    this.log.push(`@started:${username}`);
  }
  sessionEnded(reason: SessionEndReason): void {
    this.log.push(`@ended:${reason}`);
  }
  #done: (() => void)[] = [];
  commandDone(): void {
    for (const resolve of this.#done.splice(0)) resolve();
  }
  /** Resolves when the hub finishes this peer's pending command. */
  nextDone(): Promise<void> {
    return new Promise((resolve) => this.#done.push(resolve));
  }
  /** What was recorded since the last take. */
  take(): string[] {
    const log = this.log;
    this.log = [];
    this.raw = [];
    return log;
  }
}

export const hasher = new PasswordHasher({ params: scryptParams(10) });
/** Every test user's password is "pw"; "Zed" sorts before the lower-case names in byte order. */
export const USERS = ["alice", "bob", "carol", "dave", "Zed"];
let userHash: Promise<string> | null = null;

/** What a test hub is made with: the hub's options, and the edge's store parts to swap. */
export interface TestHubOptions extends Partial<Omit<HubOptions, "work">> {
  /** The password hasher (default: the real one at a low cost). */
  passwords?: EdgePasswords;
  /** The cluster's claims (with `cluster`). */
  claims?: EdgeClaims;
}

/**
 * A hub on a fresh in-memory store holding the test users (or on `shared`), with the real edge (the store and
 * the hasher), and the errors the edge reports.
 */
export async function makeHub(
  options: TestHubOptions = {},
  shared?: SqliteStore,
): Promise<{ hub: Hub; store: SqliteStore; errors: unknown[] }> {
  const store = shared ?? openSqliteStore(":memory:");
  userHash ??= hasher.hash(encoder.encode("pw"));
  if (shared === undefined) {
    for (const name of USERS) await store.addUser(name, await userHash);
  }
  const errors: unknown[] = [];
  const { passwords = hasher, claims, ...hubOptions } = options;
  const hub = new Hub({
    work: hubEdge({ store, passwords, claims, onError: (error) => errors.push(error) }),
    ...hubOptions,
  });
  return { hub, store, errors };
}

/** Sends one client line from `peer` and waits for the hub to finish with it. */
export function send(hub: Hub, peer: RecordingPeer, line: string | Uint8Array): Promise<void> {
  const command = parseCommand(typeof line === "string" ? encoder.encode(line) : line);
  assert.ok(command !== null, "not a blank line");
  return hub.handle(peer, command) ? Promise.resolve() : peer.nextDone();
}

/** Connects a peer labelled `user` and sends its login; the replies stay in its log. */
export async function connectAs(hub: Hub, user: string): Promise<RecordingPeer> {
  const peer = new RecordingPeer(user);
  hub.connect(peer);
  await send(hub, peer, `0:${user}:pw`);
  return peer;
}

/** Connects a peer and logs it in as `user`, checking the login worked and discarding the replies. */
export async function loggedIn(hub: Hub, user: string): Promise<RecordingPeer> {
  const peer = await connectAs(hub, user);
  assert.match(peer.take()[0], /^0:[1-9][0-9]*$/);
  return peer;
}

/** Has each peer join `room` in turn, then discards what every one of them has got. */
export async function inRoom(hub: Hub, room: string, ...peers: RecordingPeer[]): Promise<void> {
  for (const peer of peers) await send(hub, peer, `2:${room}`);
  for (const peer of peers) peer.take();
}

/** What a test gets from {@link withHub}. */
export type TestHub = Awaited<ReturnType<typeof makeHub>>;

/** Runs `body` on a fresh test hub (see {@link makeHub}), closing its store afterwards. */
export async function withHub(
  options: TestHubOptions,
  body: (made: TestHub) => Promise<void>,
): Promise<void> {
  const made = await makeHub(options);
  try {
    await body(made);
  } finally {
    await made.store.close();
  }
}
