/**
 * The hub's edge: the slow work the synchronous hub asks for (the store, the password hasher,
 * the cluster's claims), done asynchronously, with each outcome fed back into the hub as an
 * event. Failures that are the server's (a store write failing) are reported and become a
 * failed login or a `9:2:server-error`; the server carries on. A check the hasher's queue had no
 * room for is answered "busy", which is not a wrong password. Every hash is asked for on behalf
 * of the peer's remote address, which the hasher serves in turn with the others. A user whose
 * stored hash was made at another cost is re-hashed at the current one after a right password.
 *
 * @module
 */

import type { CheckOutcome, HubResults, HubWork, StoredRoom } from "../hub/ports.ts";
import type { RoomRecord } from "../store/store.ts";
import { QueueFullError } from "./fair_queue.ts";

/** What the edge needs of the store. */
export interface EdgeStore {
  /** The user's password hash, or undefined if there is no such user. */
  findUser(name: string): Promise<{ passwordHash: string } | undefined>;
  /** Stores a new room durably, made by `maker`; rejects when it exists already. */
  addRoom(name: string, passwordHash: string | null, maker: string | null): Promise<void>;
  /** The stored room, or undefined. */
  findRoom(name: string): Promise<RoomRecord | undefined>;
  /**
   * Replaces the user's hash `old` by `replacement`, only if it is still `old`; whether it did.
   * Without it, hashes are never re-made at login.
   */
  upgradePasswordHash?(name: string, old: string, replacement: string): Promise<boolean>;
}

/**
 * What the edge needs of the password hasher (see password.ts). `key` is the address asking; a
 * full queue rejects with a {@linkcode QueueFullError}.
 */
export interface EdgePasswords {
  /** Whether the password matches; with `undefined` it does the same work and returns false. */
  verify(password: Uint8Array, stored: string | undefined, key?: string): Promise<boolean>;
  /** A new hash of the password. */
  hash(password: Uint8Array, key?: string): Promise<string>;
  /** Whether a stored hash was made at other parameters than new ones get. */
  needsRehash?(stored: string): boolean;
}

/** What the edge needs of the cluster (see lib/cluster/link.ts). */
export interface EdgeClaims {
  /**
   * Claims `user` cluster-wide: the claim's fence once no other node has a live session of the
   * user, or null when it was refused.
   */
  claim(user: string): Promise<number | null>;
}

/**
 * Resume tokens (docs/protocol.md, v1.1; see resume_tokens.ts): checking one costs no password
 * hash. Without them every `6:` login is refused.
 */
export interface EdgeTokens {
  /** Whether `token` resumes `user` now. */
  check(user: string, token: string): Promise<boolean>;
  /** A new token for the session of `user` that just started. */
  issue(user: string): Promise<string>;
}

/** What {@linkcode hubEdge} works with. */
export interface HubEdgeOptions {
  store: EdgeStore;
  passwords: EdgePasswords;
  /** The cluster, if this node is in one. */
  claims?: EdgeClaims;
  /** Resume tokens, if the server issues them. */
  tokens?: EdgeTokens;
  /** Called with failures that are the server's, not the client's. */
  onError: (error: unknown) => void;
}

/**
 * The `work` option of a Hub: the edge that does its slow work.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hubEdge } from "./hub_edge.ts";
 * const answers: string[] = [];
 * const work = hubEdge({
 *   store: {
 *     findUser: () => Promise.resolve({ passwordHash: "h" }),
 *     addRoom: () => Promise.resolve(),
 *     findRoom: () => Promise.resolve(undefined),
 *   },
 *   passwords: { verify: () => Promise.resolve(true), hash: () => Promise.resolve("h") },
 *   onError: () => {},
 * })({
 *   loginChecked: (ticket, ok) => answers.push(`login ${ticket} ${ok}`),
 *   resumeChecked: (ticket, ok) => answers.push(`resume ${ticket} ${ok}`),
 *   claimDecided() {},
 *   tokenIssued() {},
 *   roomStored() {},
 *   roomPasswordChecked() {},
 * });
 * work.checkLogin(1, "alice", new TextEncoder().encode("pw"), "192.0.2.1");
 * work.checkResume(2, "alice", "abcdefghijklmnop", "192.0.2.1");
 * assert.deepEqual(answers, []); // never answered at once
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * assert.deepEqual(answers.sort(), ["login 1 true", "resume 2 false"]); // no tokens: refused
 * ```
 */
export function hubEdge(
  options: HubEdgeOptions,
): (results: HubResults) => Required<Omit<HubWork, "issueToken">> & HubWork {
  const { store, passwords, claims, tokens, onError } = options;
  /** The outcome of `task`, or `fallback` (reported) when it fails. */
  const attempt = async <T>(task: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await task();
    } catch (error) {
      if (!(error instanceof QueueFullError)) onError(error); // busy is no server fault
      return fallback;
    }
  };
  /** A password check: its outcome, "busy" when the hasher had no room for it. */
  const check = (task: () => Promise<boolean>): Promise<CheckOutcome> =>
    attempt(async () => {
      try {
        return await task();
      } catch (error) {
        if (error instanceof QueueFullError) return "busy";
        throw error;
      }
    }, false);
  /** Re-makes a right password's hash at the current cost, unless it changed meanwhile. */
  const upgrade = async (user: string, old: string, password: Uint8Array, address: string) => {
    if (store.upgradePasswordHash === undefined || !passwords.needsRehash?.(old)) return;
    try {
      await store.upgradePasswordHash(user, old, await passwords.hash(password, address));
    } catch (error) {
      if (!(error instanceof QueueFullError)) onError(error); // busy: the next login tries again
    }
  };
  return (results) => ({
    checkResume(ticket, username, token) {
      void attempt(() => tokens?.check(username, token) ?? Promise.resolve(false), false)
        .then((ok) => results.resumeChecked(ticket, ok));
    },
    // Without tokens the hub starts sessions at once; a token not stored is never handed out.
    issueToken: tokens && ((ticket, username) => {
      void attempt(() => tokens.issue(username), null)
        .then((token) => results.tokenIssued(ticket, token));
    }),
    checkLogin(ticket, username, password, address) {
      void check(async () => {
        const user = await store.findUser(username);
        const ok = await passwords.verify(password, user?.passwordHash, address);
        if (ok) void upgrade(username, user!.passwordHash, password, address);
        return ok;
      }).then((ok) => results.loginChecked(ticket, ok));
    },
    claim(ticket, username) {
      if (claims === undefined) {
        queueMicrotask(() => results.claimDecided(ticket, null));
        return;
      }
      void attempt(() => claims.claim(username), null)
        .then((fence) => results.claimDecided(ticket, fence));
    },
    storeRoom(ticket, name, password, address, maker) {
      void attempt(async (): Promise<StoredRoom | null> => {
        const hash = password.length === 0 ? null : await passwords.hash(password, address);
        try {
          await store.addRoom(name, hash, maker);
          return { record: { name, passwordHash: hash, maker }, created: true };
        } catch (error) {
          // Another node or the admin CLI made it first: join the stored one.
          const stored = await store.findRoom(name).catch(() => undefined);
          if (stored === undefined) throw error;
          return { record: stored, created: false };
        }
      }, null).then((outcome) => results.roomStored(ticket, outcome));
    },
    checkRoomPassword(ticket, password, passwordHash, address) {
      void check(() => passwords.verify(password, passwordHash, address))
        .then((ok) => results.roomPasswordChecked(ticket, ok));
    },
  });
}
