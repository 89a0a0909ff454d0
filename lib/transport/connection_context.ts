/**
 * What a {@linkcode Connection} is given: its limits, what it shares with the rest of the server,
 * and the transport that carries its lines (tcp.ts, websocket.ts).
 *
 * @module
 */

import type { Hub } from "../hub/hub.ts";
import type { Clock } from "../observe/clock.ts";
import type { Logger } from "../observe/log.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { Connection } from "./connection.ts";
import type { LoginThrottle } from "./login_throttle.ts";
import type { WriteLinger } from "./write_linger.ts";

/** Per-connection limits. */
export interface ConnectionLimits {
  /** The longest line before its LF. */
  maxLineBytes: number;
  /** How long a connection may stay without a session. */
  loginTimeoutMs: number;
  /** Unwritten output beyond which the client is dropped as a slow consumer. */
  maxPendingBytes: number;
  /** Lines that may be sent back to back; 0 turns flood control off. */
  rateBurst: number;
  /** Lines a second that may be sent sustained. */
  ratePerSecond: number;
  /** Bytes of `3:` lines and `1`/`2:` replies back to back; 0 turns it off (default: limits.ts). */
  rateBurstBytes?: number;
  /** Bytes a second of those, sustained (default: limits.ts). */
  rateBytesPerSecond?: number;
  /** The largest read buffer: a busy connection's (reads start small and grow: see tcp.ts). */
  readBufferBytes: number;
  /** How long a closing connection may take its last lines (default: limits.ts). */
  closeFlushMs?: number;
}

/** What a connection shares with the rest of the server. */
export interface ConnectionContext {
  hub: Hub;
  limits: ConnectionLimits;
  throttle: LoginThrottle;
  log: Logger;
  /** Called once, when the connection has closed. */
  closed: (connection: Connection) => void;
  /** The server's counters (a connection without one counts into a private object). */
  metrics?: Metrics;
  /** Where the login clock and flood control read time (default: the system's). */
  clock?: Clock;
  /** When a busy server's writes wait to gather lines (default: never; write_linger.ts). */
  linger?: WriteLinger;
}

/** The carrier of a connection's lines: where output goes, and how to hang up. */
export interface Transport {
  /** The peer's address, for logs and login throttling. */
  readonly remoteAddress: string;
  /** `tcp`, `tls`, `ws` or `wss`, for logs. */
  readonly kind?: string;
  /** Bytes queued and not yet taken by the peer. */
  readonly pendingBytes: number;
  /**
   * Queues output (one line or several, ending in LF); false if it would pass the pending bound.
   * With `force` it is queued past the bound (the last line before a close: `7:slow`).
   */
  send(line: Uint8Array, force?: boolean): boolean;
  /** Resolves when what is queued has been written. */
  drained(): Promise<void>;
  /** Hangs up at once, dropping unwritten output. */
  close(): void;
}
