/**
 * One client connection: socket bytes → line splitter → codec → hub, and hub → outbound queue →
 * socket. It also enforces what is per connection: the line limit, the login timeout, flood
 * control, login throttling and the slow-consumer bound.
 *
 * @module
 */

import { encodeError, type ErrorCode, parseCommand } from "./codec.ts";
import type { Hub, Peer, SessionEndReason } from "./hub.ts";
import { LINE_TOO_LONG, LineSplitter } from "./line_splitter.ts";
import type { Logger } from "./log.ts";
import type { LoginThrottle } from "./login_throttle.ts";
import { OutboundQueue } from "./outbound.ts";

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
  /** Bytes read from the socket at a time. */
  readBufferBytes: number;
}

/** What a connection shares with the rest of the server. */
export interface ConnectionContext {
  hub: Hub;
  limits: ConnectionLimits;
  throttle: LoginThrottle;
  log: Logger;
  /** Called once, when the connection has closed. */
  closed: (connection: Connection) => void;
}

const TOO_LONG = encodeError("?", "too-long");
const RATE_LIMITED: Record<ErrorCode, Uint8Array> = {
  "0": encodeError("0", "rate-limited"),
  "1": encodeError("1", "rate-limited"),
  "2": encodeError("2", "rate-limited"),
  "3": encodeError("3", "rate-limited"),
  "?": encodeError("?", "rate-limited"),
};

/** The code a line would answer to, read without parsing it. */
function codeOf(line: Uint8Array): ErrorCode {
  const digit = line[0] - 0x30;
  if (digit >= 0 && digit <= 3 && (line.length === 1 || line[1] === 0x3a)) {
    return String(digit) as ErrorCode;
  }
  return "?";
}

/** How long a connection may take to write what is queued when it is closed on purpose. */
const FLUSH_ON_CLOSE_MS = 2000;

/**
 * A client connection, driven by {@linkcode Connection.serve}.
 *
 * @example Usage
 * ```ts ignore
 * const connection = new Connection(conn, "127.0.0.1", context);
 * await connection.serve(); // returns when the connection is gone
 * ```
 */
export class Connection implements Peer {
  readonly remoteAddress: string;
  #conn: Deno.Conn;
  #context: ConnectionContext;
  #queue: OutboundQueue;
  #splitter: LineSplitter;
  #closed = false;
  #loginTimer: ReturnType<typeof setTimeout> | undefined;
  #loginFailures = 0;
  #tokens: number;
  #strikes = 0;
  #refilledAt = performance.now();

  constructor(conn: Deno.Conn, remoteAddress: string, context: ConnectionContext) {
    this.#conn = conn;
    this.remoteAddress = remoteAddress;
    this.#context = context;
    this.#splitter = new LineSplitter(context.limits.maxLineBytes);
    this.#tokens = context.limits.rateBurst;
    this.#queue = new OutboundQueue(conn, context.limits.maxPendingBytes, () => this.close());
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Reads and handles lines until the peer goes away or the connection is closed. */
  async serve(): Promise<void> {
    const { hub } = this.#context;
    hub.connect(this);
    this.#armLoginTimer();
    const buffer = new Uint8Array(this.#context.limits.readBufferBytes);
    try {
      while (!this.#closed) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.#splitter.push(buffer.subarray(0, n));
        for (let line = this.#splitter.next(); line !== null; line = this.#splitter.next()) {
          if (line === LINE_TOO_LONG) {
            this.send(TOO_LONG);
            await this.closeAfterFlush("line too long");
            return;
          }
          if (line.length === 0) continue; // blank lines are ignored
          if (!this.#takeToken()) {
            this.send(RATE_LIMITED[codeOf(line)]);
            if (this.#strikes > this.#context.limits.rateBurst) {
              await this.closeAfterFlush("flooding");
              return;
            }
            continue;
          }
          const command = parseCommand(line)!;
          if (command.kind === "login" || command.kind === "bad-login") {
            const delay = this.#context.throttle.delayMs(this.remoteAddress, this.#loginFailures);
            if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
            if (this.#closed) return;
          }
          const pending = hub.handle(this, command);
          if (pending !== undefined) await pending;
          if (this.#closed) return;
        }
      }
    } catch (error) {
      // A reset or a read on a closed socket is how peers leave; anything else is worth a line.
      if (!this.#closed && !(error instanceof Deno.errors.ConnectionReset)) {
        this.#context.log.debug("read-error", {
          address: this.remoteAddress,
          error: String(error),
        });
      }
    } finally {
      this.close();
    }
  }

  /** Token bucket on lines; also counts strikes for lines refused, which decay at half the rate. */
  #takeToken(): boolean {
    const { rateBurst, ratePerSecond } = this.#context.limits;
    if (rateBurst === 0) return true;
    const now = performance.now();
    const elapsed = (now - this.#refilledAt) / 1000;
    this.#refilledAt = now;
    this.#tokens = Math.min(rateBurst, this.#tokens + elapsed * ratePerSecond);
    this.#strikes = Math.max(0, this.#strikes - elapsed * ratePerSecond / 2);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#strikes += 1;
    return false;
  }

  #armLoginTimer(): void {
    clearTimeout(this.#loginTimer);
    this.#loginTimer = setTimeout(() => {
      this.#context.log.debug("login-timeout", { address: this.remoteAddress });
      this.close();
    }, this.#context.limits.loginTimeoutMs);
  }

  /** Queues a line; a client whose unread output passes the bound is dropped. */
  send(line: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#queue.push(line)) {
      this.#context.log.warn("slow-consumer", {
        address: this.remoteAddress,
        pending: this.#queue.pendingBytes,
      });
      this.close();
    }
  }

  /** A session started: the login clock stops. */
  sessionStarted(): void {
    clearTimeout(this.#loginTimer);
    this.#loginTimer = undefined;
  }

  /** The session ended with the connection open: the login clock starts again. */
  sessionEnded(reason: SessionEndReason): void {
    if (this.#closed) return;
    if (reason === "login-failed") {
      this.#loginFailures++;
      const { throttle, log } = this.#context;
      throttle.recordFailure(this.remoteAddress);
      log.info("login-failed", { address: this.remoteAddress, failures: this.#loginFailures });
      if (this.#loginFailures >= throttle.maxFailuresPerConnection) {
        void this.closeAfterFlush("too many failed logins");
        return;
      }
    } else {
      this.#context.log.info("session-ended", { address: this.remoteAddress, reason });
    }
    this.#armLoginTimer();
  }

  /** Writes what is queued (waiting at most a couple of seconds), then closes. */
  async closeAfterFlush(why?: string): Promise<void> {
    if (why) this.#context.log.info("closing", { address: this.remoteAddress, why });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#queue.drained(),
      new Promise((resolve) => timer = setTimeout(resolve, FLUSH_ON_CLOSE_MS)),
    ]);
    clearTimeout(timer);
    this.close();
  }

  /** Closes at once, dropping unwritten output; the session ends and its room is told. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#loginTimer);
    this.#queue.close();
    try {
      this.#conn.close();
    } catch { /* already closed by the peer */ }
    // Leave the hub after the current turn: close() can be reached from inside a broadcast.
    queueMicrotask(() => {
      this.#context.hub.disconnect(this);
      this.#context.closed(this);
    });
  }
}
