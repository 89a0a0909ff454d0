/**
 * One client connection, whatever carries it (TCP, TLS, WebSocket): lines in → codec → hub, and
 * hub → the transport's outbound queue. It enforces what is per connection: the login timeout,
 * flood control, login throttling and the slow-consumer bound. Transports (tcp.ts) turn bytes
 * into lines and own the socket.
 *
 * @module
 */

import { type Command, encodeError, type ErrorCode, parseCommand } from "../protocol/codec.ts";
import type { Peer, SessionEndReason } from "../hub/hub.ts";
import { type Clock, nowOf, systemClock } from "../observe/clock.ts";
import { Metrics } from "../observe/metrics.ts";
import type { ConnectionContext, Transport } from "./connection_context.ts";
import { FloodControl } from "./flood.ts";
import { Features, whyLine } from "../protocol/v11.ts";
import { DEFAULT_CLOSE_FLUSH_MS } from "../protocol/limits.ts";
import { checksPassword, checksToken, codeOf, isLogin } from "./line_kinds.ts";

const TOO_LONG = encodeError("?", "too-long");
const RATE_LIMITED = Object.fromEntries(
  (["0", "1", "2", "3", "6", "8", "?"] as const).map((c) => [c, encodeError(c, "rate-limited")]),
) as Record<ErrorCode, Uint8Array>;

/**
 * Does nothing: the one shared stand-in for "no login clock" and "no turn held". Every idle
 * connection holds these fields; a closure of its own each would cost memory per connection.
 */
const NOTHING = (): void => {};

/**
 * A client connection. Its transport calls {@linkcode Connection.start} once, then
 * {@linkcode Connection.handleLine} for each line, awaiting the promise it may return before
 * the next line, and {@linkcode Connection.close} when the peer goes away.
 *
 * @example Usage
 * ```ts ignore
 * const connection = new Connection(transport, context);
 * connection.start();
 * const pending = connection.handleLine(new TextEncoder().encode("0:alice:secret"));
 * if (pending) await pending;
 * ```
 */
export class Connection implements Peer {
  #transport: Transport;
  #context: ConnectionContext;
  #closed = false;
  #closing = false;
  #clock: Clock;
  /** Stops the login clock (a no-op while it is not running). */
  #stopLoginClock: () => void = NOTHING;
  #loginFailures = 0;
  #flood: FloodControl;
  /** Bytes queued for this client so far: what a `1` or `2:` reply cost (see flood.ts). */
  #sentBytes = 0;
  /** The counters this connection increments (the server's, shared by every connection). */
  readonly metrics: Metrics;
  /** Resolves when the hub finishes the command it left pending (null: none is). */
  #commandDone: (() => void) | null = null;
  /** Ends the password check's turn at this address (login_throttle.ts; a no-op without one). */
  #endTurn: () => void = NOTHING;
  /** The session's user and id, for logs. */
  #user = "";
  #sessionId = 0;
  /** Why the connection is closing, for the log line of the session it ends. */
  #closeReason = "";
  /** Whether the connection has a session. */
  #loggedIn = false;
  /** Whether a login line is waiting for its turn or its check (the login clock waits too). */
  #checkingLogin = false;
  /** The login clock ran out while a login was being checked. */
  #loginClockDue = false;
  /** The v1.1 features this connection turned on (`8:`); the hub reads and answers them. */
  readonly features: Features = new Features();

  constructor(transport: Transport, context: ConnectionContext) {
    this.#transport = transport;
    this.#context = context;
    this.#clock = context.clock ?? systemClock;
    this.#flood = new FloodControl(context.limits, nowOf(this.#clock));
    this.metrics = context.metrics ?? new Metrics();
  }

  /** The peer's address. */
  get remoteAddress(): string {
    return this.#transport.remoteAddress;
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Joins the hub and starts the login clock. */
  start(): void {
    this.metrics.connectionsAccepted++;
    this.#context.hub.connect(this);
    this.#armLoginTimer();
  }

  /**
   * Handles one line (without its LF). Returns a promise when the line waits on something (a
   * login, a join, a throttle delay); the transport must await it before the next line, which
   * keeps each client's commands in order.
   */
  handleLine(line: Uint8Array): void | Promise<void> {
    // Blank lines are ignored; so is everything after the connection was told to close (a
    // shutdown, a too-long line, flooding): nothing may start a session while it flushes.
    if (this.#closed || this.#closing || line.length === 0) return;
    this.metrics.linesIn++;
    if (!this.#flood.admit(line)) {
      this.metrics.rateLimited++;
      this.send(RATE_LIMITED[codeOf(line)]);
      if (this.#flood.flooding) return this.closeAfterFlush("flooding");
      return;
    }
    const command = parseCommand(line)!;
    if (checksPassword(command)) return this.#inTurn(command);
    if (command.kind === "rooms" || command.kind === "join") {
      // The reply (a room list, a member list) costs its size in the byte bucket.
      const sentBefore = this.#sentBytes;
      const done = this.#toHub(command);
      this.#flood.charged(line, this.#sentBytes - sentBefore);
      return done;
    }
    return this.#toHub(command);
  }

  /**
   * A command that checks a password waits for its address's turn (the throttle's delay, and
   * a bound on the address's checks at once), and holds it until the hub has answered.
   */
  #inTurn(command: Command): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    let end = NOTHING;
    const login = isLogin(command);
    if (login) this.#checkingLogin = true;
    const finish = () => {
      end();
      // Not a new `() => {}`: made here it would keep this whole scope (the login line, its
      // password) alive for as long as the connection lives.
      this.#endTurn = NOTHING;
      if (login) this.#loginChecked();
      resolve();
    };
    end = this.#context.throttle.turn(this.remoteAddress, this.#loginFailures, () => {
      const pending = this.#closed ? undefined : this.#toHub(command);
      if (pending === undefined) finish();
      else void pending.then(finish);
    }, checksToken(command));
    this.#endTurn = finish;
    return promise;
  }

  /** Hands a command to the hub; a promise when the hub leaves it pending (a login, a join). */
  #toHub(command: Command): void | Promise<void> {
    if (this.#context.hub.handle(this, command)) return;
    return new Promise<void>((resolve) => this.#commandDone = resolve);
  }

  /** The hub finished the command it left pending: the next line may go. */
  commandDone(): void {
    const done = this.#commandDone;
    this.#commandDone = null;
    done?.();
  }

  /** The transport saw a line pass the limit: say so and hang up. */
  lineTooLong(): Promise<void> {
    this.send(TOO_LONG);
    return this.closeAfterFlush("line too long");
  }

  /** Stops the login clock, and lets go of its timer. */
  #stopLoginTimer(): void {
    this.#stopLoginClock();
    this.#stopLoginClock = NOTHING;
  }

  #armLoginTimer(): void {
    this.#stopLoginTimer();
    this.#loginClockDue = false;
    this.#stopLoginClock = this.#clock.after(this.#context.limits.loginTimeoutMs, () => {
      // The clock is for idle clients, not a busy server: a login being checked gets its answer.
      if (this.#checkingLogin) {
        this.#loginClockDue = true;
        return;
      }
      this.#context.log.debug("login-timeout", { address: this.remoteAddress });
      this.#closeWhy("idle");
    });
  }

  /** A login line is finished: if the clock ran out meanwhile and no session began, it restarts. */
  #loginChecked(): void {
    this.#checkingLogin = false;
    if (this.#loginClockDue && !this.#loggedIn && !this.#closed) this.#armLoginTimer();
  }

  /** Closes on the server's own account: `7:<reason>` first for a `why` client. */
  #closeWhy(reason: "idle" | "shutdown"): void {
    if (this.#closed || this.#closing) return;
    if (!this.features.why) return this.close();
    this.#transport.send(whyLine(reason), true);
    void this.closeAfterFlush(reason);
  }

  /**
   * The server is draining: a `why` client hears `7:shutdown`, the session ends as any other
   * does (`0:-1`, `5:` to its room here and on other nodes), and the connection closes once
   * its output is written.
   */
  drain(): Promise<void> {
    if (this.#closed || this.#closing) return Promise.resolve();
    if (this.features.why) this.send(whyLine("shutdown"));
    this.#context.hub.logout(this);
    return this.closeAfterFlush("shutdown");
  }

  /** Queues a line; a client whose unread output passes the bound is dropped. */
  send(line: Uint8Array): void {
    // After `7:slow` nothing more is queued, even once the client has read below the bound.
    if (this.#closed || this.#closeReason === "slow") return;
    const metrics = this.metrics;
    metrics.bytesOut += line.length;
    this.#sentBytes += line.length;
    if (!this.#transport.send(line)) {
      if (this.#closing && this.features.why) return; // closing anyway, and told why
      metrics.slowConsumerDisconnects++;
      this.#context.log.warn("slow-consumer", {
        address: this.remoteAddress,
        pending: this.#transport.pendingBytes,
      });
      if (!this.features.why) return this.close();
      // Past the bound on purpose: the one line that says why, then the close.
      this.#closing = true;
      this.#transport.send(whyLine("slow"), true);
      this.#closeReason = "slow";
      void this.closeAfterFlush();
    }
  }

  /** A session started: the login clock stops. */
  sessionStarted(username: string, sessionId = 0): void {
    this.#user = username;
    this.#sessionId = sessionId;
    this.#loggedIn = true;
    this.#stopLoginTimer();
    this.#logSession("login");
  }

  /** Who came or went, for the operator (never a password or a token). */
  #logSession(event: string, reason?: string): void {
    this.#context.log.info(event, {
      user: this.#user,
      address: this.remoteAddress,
      session: this.#sessionId,
      transport: this.#transport.kind ?? "tcp",
      ...(reason === undefined ? {} : { reason }),
    });
  }

  /** A join's room password was wrong: counted, throttled and logged as a failed login is. */
  roomPasswordFailed(room: string): void {
    if (this.#closed) return;
    const closing = this.#passwordFailed();
    this.#context.log.info("room-password-failed", {
      address: this.remoteAddress,
      user: this.#user,
      room,
      failures: this.#loginFailures,
    });
    if (closing) void this.closeAfterFlush("too many wrong passwords");
  }

  /** Counts a wrong password (a login's or a room's); true when the connection must close. */
  #passwordFailed(): boolean {
    this.#loginFailures++;
    const throttle = this.#context.throttle;
    throttle.recordFailure(this.remoteAddress);
    return this.#loginFailures >= throttle.maxFailuresPerConnection;
  }

  /** The session ended with the connection open: the login clock starts again. */
  sessionEnded(reason: SessionEndReason, username?: string): void {
    const wasIn = this.#loggedIn;
    this.#loggedIn = false;
    if (this.#closed) return;
    if (reason === "login-failed") {
      this.metrics.failedLogins++;
      const closing = this.#passwordFailed();
      this.#context.log.info("login-failed", {
        ...(username === undefined ? {} : { user: username }),
        address: this.remoteAddress,
        transport: this.#transport.kind ?? "tcp",
        failures: this.#loginFailures,
      });
      if (closing) {
        void this.closeAfterFlush("too many failed logins");
        return;
      }
    } else if (reason === "login-busy") {
      // Not checked: the hasher's queue was full. Not a wrong password, so not counted.
      this.#context.log.info("login-busy", { address: this.remoteAddress });
    } else if (wasIn) {
      this.#logSession("session-ended", reason);
    }
    this.#armLoginTimer();
  }

  /** Writes what is queued (waiting at most a couple of seconds), then closes. */
  async closeAfterFlush(why?: string): Promise<void> {
    this.#closing = true;
    if (why) this.#context.log.info("closing", { address: this.remoteAddress, why });
    this.#closeReason = why ?? this.#closeReason;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#transport.drained(),
      new Promise((resolve) =>
        timer = setTimeout(resolve, this.#context.limits.closeFlushMs ?? DEFAULT_CLOSE_FLUSH_MS)
      ),
    ]);
    clearTimeout(timer);
    this.close();
  }

  /** Closes at once, dropping unwritten output; the session ends and its room is told. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopLoginTimer();
    // A session that ends with its connection: a logout (the client hung up) or the server's close.
    if (this.#loggedIn) this.#logSession("logout", this.#closeReason || "connection closed");
    this.#transport.close();
    this.commandDone(); // a read loop waiting on the hub ends now: nothing more is read
    this.#endTurn(); // and one waiting for its address's turn gives it up
    // Leave the hub after the current turn: close() can be reached from inside a broadcast.
    queueMicrotask(() => {
      this.#context.hub.disconnect(this);
      this.#context.closed(this);
    });
  }
}
