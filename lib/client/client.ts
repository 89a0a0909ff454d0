/**
 * A typed Parley client, for games, bots and tests: connect (plain TCP or TLS), log in, list and
 * join rooms, send in the three modes, and read what the server pushes as typed events.
 *
 * Each connection is a {@linkcode Link} (link.ts). On connect the client asks for the v1.1
 * features `from`, `why` and `resume` (docs/protocol.md): messages carry their room and sender,
 * the server says why it ends a session (`reason` events), and each login brings a resume token.
 * With the `reconnect` option, a lost connection (or `7:shutdown`) is followed by new tries with
 * backoff and jitter (reconnect.ts): the client logs in again by token (else by its kept
 * password, or `onPassword`), rejoins its room, and says so with `reconnecting` and
 * `reconnected` events. It never fights a newer login: `7:replaced` or `7:removed` ends it
 * (an `ended` event, then the end of the stream).
 *
 * @example Log in, join, talk, listen
 * ```ts ignore
 * import { ParleyClient } from "@parley/server/client";
 *
 * const client = await ParleyClient.connect({ hostname: "chat.example.com", port: 7778, tls: true });
 * await client.login("alice", "wonderland");
 * const { members } = await client.join("lobby");
 * console.log("in the lobby:", members);
 * await client.say("hello, everyone else");
 * for await (const event of client) {
 *   if (event.type === "message") console.log(event.text);
 *   if (event.type === "presence") console.log(`${event.user} ${event.action}s ${event.room}`);
 * }
 * ```
 *
 * @module
 */

import { MAX_LINE_BYTES_CEILING } from "../protocol/limits.ts";
import { EventQueue } from "./event_queue.ts";
import {
  FEATURES_LINE,
  joinLine,
  loginLine,
  resumeLine,
  ROOMS_LINE,
  sayLine,
  tellLine,
} from "./commands.ts";
import {
  type JoinedEvent,
  ParleyError,
  type ParleyEvent,
  parseJoined,
  parseRooms,
} from "./events.ts";
import type { RoomInfo } from "./events.ts";
import { dial, type DialOptions, Link } from "./link.ts";
import { backoffDelay, type ReconnectOptions, Sleeper } from "./reconnect.ts";

// The event types, ParleyError and RoomInfo, as before, and the v1.1 events.
export type * from "./events.ts";
export { ParleyError } from "./events.ts";
export { backoffDelay, type ReconnectOptions } from "./reconnect.ts";

/** Where and how to connect. */
export interface ConnectOptions extends DialOptions {
  /** The server runs with `--stamp-sender`: read messages as `3:<sender>:<text>` (without `from`). */
  stampSender?: boolean;
  /**
   * Ask for the v1.1 features `from`, `why` and `resume` (default true); false speaks v1 only.
   * A v1 server refuses the ask, and the client carries on without them.
   */
  features?: boolean;
  /** Come back by itself after a lost connection (see {@linkcode ReconnectOptions}). */
  reconnect?: boolean | ReconnectOptions;
  /**
   * The longest line accepted from the server (default 16 MiB, the most any server's
   * `--max-line-bytes` allows); a longer one closes.
   */
  maxLineBytes?: number;
  /** Events held unread before the client gives up and closes (default 100,000). */
  maxBufferedEvents?: number;
}

/** The server's reasons after which the client must not log in again (never fight back). */
const FINAL_REASONS = new Set(["replaced", "removed"]);

/**
 * A connection to a Parley server. Make one with {@linkcode ParleyClient.connect}; iterate it
 * (or {@linkcode ParleyClient.events}) for events; {@linkcode ParleyClient.close} when done.
 *
 * @example A bot that answers direct messages, and comes back after a server restart
 * ```ts ignore
 * import { ParleyClient } from "@parley/server/client";
 * const bot = await ParleyClient.connect({ port: 7777, reconnect: true });
 * await bot.login("echo-bot", "secret");
 * for await (const event of bot) {
 *   if (event.type === "message" && event.direct) await bot.tell([event.sender!], "hi");
 *   if (event.type === "ended") console.log("stopped:", event.reason);
 * }
 * ```
 */
export class ParleyClient implements AsyncIterable<ParleyEvent> {
  readonly #options: ConnectOptions;
  readonly #reconnect: ReconnectOptions | null;
  readonly #events: EventQueue<ParleyEvent>;
  readonly #sleeper = new Sleeper();
  #link: Link;
  #closed = false;
  #username: string | null = null;
  #password: string | Uint8Array | null = null;
  #token: string | null = null;
  #room: { name: string; password: string | Uint8Array } | null = null;
  #comingBack: Promise<void> | null = null;
  #trying: Link | null = null;
  /** The session id of the last successful login, or `null`. */
  sessionId: number | null = null;

  private constructor(options: ConnectOptions) {
    this.#options = options;
    this.#reconnect = options.reconnect === true ? {} : options.reconnect || null;
    this.#events = new EventQueue(options.maxBufferedEvents ?? 100_000);
    this.#link = null as unknown as Link; // set by #open before the client is handed out
  }

  /**
   * Connects to a server (and asks for the v1.1 features unless `features: false`).
   *
   * @example Usage
   * ```ts ignore
   * const plain = await ParleyClient.connect({ hostname: "127.0.0.1", port: 7777 });
   * const tls = await ParleyClient.connect({ hostname: "localhost", port: 7778, tls: true });
   * ```
   */
  static async connect(options: ConnectOptions): Promise<ParleyClient> {
    const client = new ParleyClient(options);
    client.#link = await client.#open();
    return client;
  }

  /** Whether the client has stopped for good (closed, or ended). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a connection is up now (false while reconnecting). */
  get connected(): boolean {
    return !this.#closed && !this.#link.closed && this.#comingBack === null;
  }

  /** The v1.1 features the server turned on for the current connection. */
  get features(): ReadonlySet<string> {
    return this.#link.features;
  }

  /** The newest resume token (`6:`), or `null`; a page or app may keep it to resume later. */
  get token(): string | null {
    return this.#token;
  }

  /**
   * Logs in and resolves to the session id; rejects with a {@linkcode ParleyError} (reason
   * `logged-out`, or `busy` when the server could not check the password in time).
   *
   * @example Usage
   * ```ts ignore
   * const id = await client.login("alice", "wonderland"); // 1
   * ```
   */
  async login(username: string, password: string | Uint8Array): Promise<number> {
    const id = await this.#loggedIn(this.#link.request("0", loginLine(username, password)));
    this.#username = username;
    this.#password = this.#reconnect?.keepPassword === false ? null : password;
    return id;
  }

  /** Logs in with a resume token (`6:`) kept from an earlier session, like `login`. */
  async resume(username: string, token: string): Promise<number> {
    const id = await this.#loggedIn(this.#link.request("0", resumeLine(username, token)));
    this.#username = username;
    return id;
  }

  /** The rooms, sorted by name, each with its members. */
  async rooms(): Promise<RoomInfo[]> {
    return parseRooms(await this.#link.request("1", ROOMS_LINE));
  }

  /**
   * Joins (or creates) a room and resolves to its members; rejects with a
   * {@linkcode ParleyError} such as `room-password` or `bad-name`. A reconnecting client
   * rejoins the last room joined, with its password.
   *
   * @example Usage
   * ```ts ignore
   * const { members } = await client.join("poker-7", "s3cret");
   * ```
   */
  async join(room: string, password: string | Uint8Array = ""): Promise<JoinedEvent> {
    const joined = parseJoined(await this.#link.request("2", joinLine(room, password)));
    this.#room = { name: joined.room, password };
    return joined;
  }

  /**
   * Sends a message to the room: to the others (`3:1`), or with `echo` to everyone, this
   * client included (`3:0`). Failures (`not-in-room`) arrive as error events.
   *
   * @example Usage
   * ```ts ignore
   * await client.say("hi all");                 // 3:1:hi all
   * await client.say("hi all", { echo: true }); // 3:0:hi all, and it comes back
   * ```
   */
  say(text: string | Uint8Array, options: { echo?: boolean } = {}): Promise<void> {
    return this.#link.write(sayLine(text, options.echo ?? false));
  }

  /**
   * Sends a message to users wherever they are (`3:2`), e.g. `tell(["bob"], btoa("a:b"))`. The
   * text may not hold `:`; users not online come back as an error event, reason `not-online`.
   */
  tell(users: string[], text: string | Uint8Array): Promise<void> {
    return this.#link.write(tellLine(users, text));
  }

  /**
   * The events, in the order the server sent them. The stream ends when the client stops (the
   * connection closes, or with `reconnect`, after an `ended` event) and throws if it failed.
   * Iterating the client itself is the same.
   */
  events(): AsyncGenerator<ParleyEvent> {
    return this.#events.items();
  }

  [Symbol.asyncIterator](): AsyncGenerator<ParleyEvent> {
    return this.events();
  }

  /** The next event, or `undefined` if none comes within `timeoutMs` or the client stops. */
  nextEvent(timeoutMs = Infinity): Promise<ParleyEvent | undefined> {
    return this.#events.next(timeoutMs);
  }

  /** Closes the connection and stops reconnecting; waiting requests reject, the stream ends. */
  async close(): Promise<void> {
    this.#stop(null);
    await this.#link?.done;
    await this.#comingBack;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #loggedIn(reply: Promise<string>): Promise<number> { // `0:<id>` → the id
    this.sessionId = Number((await reply).slice(2));
    return this.sessionId;
  }

  /** Connects, wires a new link to this client, and asks for the features. */
  async #open(): Promise<Link> {
    const conn = await dial(this.#options);
    const link: Link = new Link(conn, {
      event: (event) => this.#onEvent(link, event),
      token: (token) => this.#token = token,
      closed: (error) => this.#onClosed(link, error),
    }, {
      stampSender: this.#options.stampSender ?? false,
      maxLineBytes: this.#options.maxLineBytes ?? MAX_LINE_BYTES_CEILING,
    });
    if (this.#options.features === false) return link;
    // Every Parley server answers (a v1 one with `9:?:malformed`); something else may never.
    const timer = setTimeout(() => link.close(new Error("no answer to 8: (not Parley?)")), 10_000);
    try {
      const reply = await link.request("8", FEATURES_LINE);
      link.features = new Set(reply.slice(2).split(",").filter((f) => f !== ""));
    } catch (error) {
      if (!(error instanceof ParleyError)) throw error; // a v1 server: `9:?:malformed`
    } finally {
      clearTimeout(timer);
    }
    return link;
  }

  #onEvent(link: Link, event: ParleyEvent): void {
    this.#emit(event);
    if (event.type !== "session-ended" || link !== this.#link) return;
    this.sessionId = null;
    if (this.#reconnect === null) return; // v1 behaviour: the connection stays, logged out
    if (event.reason === "shutdown") {
      link.close(); // a draining server: come back, here or elsewhere, after a random delay
    } else {
      this.#end(event.reason ?? "session-ended"); // replaced or removed: never fight back
    }
  }

  #onClosed(link: Link, error: Error | null): void {
    if (this.#closed || link !== this.#link) return;
    const reason = link.lastReason;
    if (this.#reconnect === null) return this.#stop(error);
    if (reason !== null && FINAL_REASONS.has(reason)) return this.#end(reason);
    this.#startComingBack();
  }

  #startComingBack(): void {
    if (this.#comingBack !== null) return;
    this.#comingBack = this.#comeBack().finally(() => {
      this.#comingBack = null;
      if (!this.#closed && this.#link.closed) this.#startComingBack(); // lost while coming back
    });
  }

  /** Tries, with backoff, until the client is logged in again and back in its room. */
  async #comeBack(): Promise<void> {
    const options = this.#reconnect ?? {};
    const sleep = options.sleep ?? ((ms: number) => this.#sleeper.wait(ms));
    for (let attempt = 1;; attempt++) {
      if (this.#closed) return;
      if (attempt > (options.maxAttempts ?? Infinity)) return this.#end("gave-up");
      const delayMs = backoffDelay(attempt, options);
      this.#emit({ type: "reconnecting", attempt, delayMs });
      await sleep(delayMs);
      if (this.#closed) return;
      let link: Link;
      try {
        link = this.#trying = await this.#open();
      } catch {
        continue; // nobody there yet
      }
      try {
        const resumed = await this.#restore(link);
        if (this.#closed) return link.close();
        this.#link = link;
        if (link.closed) continue; // lost again at once: the next try
        this.#emit({ type: "reconnected", resumed, sessionId: this.sessionId });
        return await this.#rejoin(link);
      } catch (error) {
        link.close();
        if (error instanceof ParleyError && error.reason !== "busy") {
          return this.#end(error.reason === "no-password" ? "no-password" : "login-refused");
        }
      }
    }
  }

  /** Logs in on `link` by token, else by password; true when the token worked. */
  async #restore(link: Link): Promise<boolean> {
    const username = this.#username;
    if (username === null) return false; // never logged in: the connection is all there was
    if (this.#token !== null && link.features.has("resume")) {
      const token = this.#token;
      this.#token = null; // single-use in effect: the reply brings a new one
      try {
        await this.#loggedIn(link.request("0", resumeLine(username, token)));
        return true;
      } catch (error) {
        if (!(error instanceof ParleyError)) throw error;
      }
    }
    const password = this.#password ?? await this.#reconnect?.onPassword?.();
    if (password === undefined || password === null) throw new ParleyError("0", "no-password");
    await this.#loggedIn(link.request("0", loginLine(username, password)));
    return false;
  }

  /** Joins the room the client was in; a refusal (its password changed) is an error event. */
  async #rejoin(link: Link): Promise<void> {
    const room = this.#room;
    if (room === null) return;
    try {
      await link.request("2", joinLine(room.name, room.password));
    } catch (error) {
      if (!(error instanceof ParleyError)) return; // lost again: the next try rejoins
      this.#room = null;
      this.#emit({ type: "error", code: "2", reason: error.reason, detail: room.name });
    }
  }

  /** Stops for good with `reason` (an `ended` event, then the end of the stream). */
  #end(reason: string): void {
    this.#emit({ type: "ended", reason });
    this.#stop(null);
  }

  #emit(event: ParleyEvent): void {
    if (this.#closed || this.#events.push(event)) return;
    // Nobody is reading: holding more would only grow memory until the process fails.
    this.#stop(new Error(`more than ${this.#events.capacity} events were left unread`));
  }

  #stop(error: Error | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sleeper.cancel();
    this.#link?.close(error);
    this.#trying?.close(error);
    this.#events.end(error);
  }
}
