/**
 * The limits a Parley server enforces unless its flags say otherwise, defined once: the flags
 * (lib/server) show and apply them, the hub falls back on them, and the client sizes its line
 * buffer by them.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MAX_LINE_BYTES, MAX_LINE_BYTES_CEILING } from "./limits.ts";
 * assert.equal(DEFAULT_MAX_LINE_BYTES, 65536);
 * assert.ok(DEFAULT_MAX_LINE_BYTES <= MAX_LINE_BYTES_CEILING);
 * ```
 *
 * @module
 */

/** The longest line a client may send, before its LF (`--max-line-bytes`). */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
/** The most `--max-line-bytes` may be set to, so also the longest line a client must accept. */
export const MAX_LINE_BYTES_CEILING = 16 << 20;
/** How long a connection may stay without a session (`--login-timeout-ms`). */
export const DEFAULT_LOGIN_TIMEOUT_MS = 30_000;
/**
 * How long a stopping server spreads its connections' closes over (docs/security.md): long
 * enough that a node's users reconnect as a trickle rather than a herd, short enough for a
 * deploy's or an orchestrator's stop timeout (often 10 s) to leave room for the rest.
 */
export const DEFAULT_DRAIN_MS = 2_000;
/**
 * How long a resume token stays good, in seconds (`--resume-ttl-s`): a day, so a client that
 * lost its connection overnight logs in again with its password.
 */
export const DEFAULT_RESUME_TTL_S = 86_400;
/** The most rooms there may be (`--max-rooms`). */
export const DEFAULT_MAX_ROOMS = 10_000;
/**
 * The most rooms one user may have made (`--max-rooms-per-user`): 1% of the default
 * `--max-rooms`, so a single account cannot take the server's room cap.
 */
export const DEFAULT_MAX_ROOMS_PER_USER = 100;
/** The most distinct users one `3:2` may name (`--max-targets`). */
export const DEFAULT_MAX_TARGETS = 100;
/** The most open connections (`--max-connections`). */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/**
 * The most connections one address may hold (`--max-connections-per-address`; an IPv6 address
 * counts by its /64). One honest host (a home or office behind NAT, a few hundred bots) fits; a
 * single attacking machine no longer fills the default 10,000 slots.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256;
/** How long a WebSocket-port client has to send its whole HTTP request head (`--header-timeout-ms`). */
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
/** Output a client may leave unread before it is dropped (`--max-pending-bytes`). */
export const DEFAULT_MAX_PENDING_BYTES = 4 << 20;
/** Lines a client may send back to back (`--rate-burst`). */
export const DEFAULT_RATE_BURST = 2000;
/** Lines a second a client may send sustained (`--rate-per-second`). */
export const DEFAULT_RATE_PER_SECOND = 500;
/**
 * Bytes a client may spend back to back (`--rate-burst-bytes`): `3:` lines it sends, `1` and
 * `2:` replies it gets. Well below the slow-consumer bound, so one sender alone cannot fill a
 * reader's pending output.
 */
export const DEFAULT_RATE_BURST_BYTES = 1 << 20;
/**
 * Bytes a second a client may spend sustained (`--rate-bytes-per-second`): half of what a reader
 * on a 1 MB/s link takes, so one sender alone never makes it a slow consumer.
 */
export const DEFAULT_RATE_BYTES_PER_SECOND = 512 << 10;
/** Failed logins after which a connection is closed (`--max-login-failures`). */
export const DEFAULT_MAX_LOGIN_FAILURES = 10;
/** How long a closing connection gets to take its last lines before it is cut (`--close-flush-ms`). */
export const DEFAULT_CLOSE_FLUSH_MS = 2_000;
/** Password hashes that may wait in line before a login is answered `7:busy` (`--max-hash-queue`). */
export const DEFAULT_MAX_HASH_QUEUE = 1000;
/** Failed logins answered at once; each later one is answered more slowly. */
export const FREE_LOGIN_FAILURES = 3;
/**
 * Password checks (logins, room passwords) of one remote address in the hasher's hands at once;
 * the address's others wait their turn without taking a place in the hasher's queue.
 */
export const LOGIN_CHECKS_PER_ADDRESS = 2;
