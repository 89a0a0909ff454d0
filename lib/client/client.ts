/**
 * A typed Parley client, for games, bots and tests: connect (plain TCP or TLS), log in, list and
 * join rooms, send in the three modes, and read what the server pushes as typed events.
 *
 * The protocol has no request ids, but the server answers each connection's commands in order,
 * so the client keeps a queue of the requests that wait for a reply (login, rooms, join) and
 * hands every other line to the event stream: messages, presence, errors of sends, and the end
 * of a session.
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
import { LINE_TOO_LONG, LineSplitter } from "../protocol/line_splitter.ts";
import { EventQueue } from "./event_queue.ts";
import { joinLine, loginLine, ROOMS_LINE, sayLine, tellLine } from "./commands.ts";
import {
  type JoinedEvent,
  ParleyError,
  type ParleyEvent,
  parseError,
  parseJoined,
  parseMessage,
  parsePresence,
  parseRooms,
  type RoomInfo,
} from "./events.ts";

export {
  type ErrorEvent,
  type JoinedEvent,
  type MessageEvent,
  ParleyError,
  type ParleyEvent,
  type PresenceEvent,
  type RoomInfo,
  type SessionEndedEvent,
} from "./events.ts";

const decoder = new TextDecoder();

/** Where and how to connect. */
export interface ConnectOptions {
  /** The server's host name or address (default `127.0.0.1`). */
  hostname?: string;
  /** The server's port. */
  port: number;
  /**
   * Connect with TLS. `true` trusts the system's roots; an object may add CA certificates (PEM)
   * and the name to check the certificate against.
   */
  tls?: boolean | { caCerts?: string[]; serverName?: string };
  /** The server runs with `--stamp-sender`: read messages as `3:<sender>:<text>`. */
  stampSender?: boolean;
  /**
   * The longest line accepted from the server (default 16 MiB, the most any server's
   * `--max-line-bytes` allows); a longer one closes.
   */
  maxLineBytes?: number;
  /** Events held unread before the client gives up and closes (default 100,000). */
  maxBufferedEvents?: number;
}

interface Pending {
  code: "0" | "1" | "2";
  resolve: (line: string) => void;
  reject: (error: Error) => void;
}

/**
 * A connection to a Parley server. Make one with {@linkcode ParleyClient.connect}; iterate it
 * (or {@linkcode ParleyClient.events}) for events; {@linkcode ParleyClient.close} when done.
 *
 * @example A bot that answers direct messages
 * ```ts ignore
 * import { ParleyClient } from "@parley/server/client";
 * const bot = await ParleyClient.connect({ port: 7777 });
 * await bot.login("echo-bot", "secret");
 * for await (const event of bot) {
 *   if (event.type === "message") await bot.tell(["alice"], `you said ${event.text}`);
 * }
 * ```
 */
export class ParleyClient implements AsyncIterable<ParleyEvent> {
  readonly #conn: Deno.Conn;
  readonly #stampSender: boolean;
  readonly #events: EventQueue<ParleyEvent>;
  #pending: Pending[] = [];
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #failure: Error | null = null;
  #reader: Promise<void>;
  /** The session id of the last successful login, or `null`. */
  sessionId: number | null = null;

  private constructor(conn: Deno.Conn, options: ConnectOptions) {
    this.#conn = conn;
    this.#stampSender = options.stampSender ?? false;
    this.#events = new EventQueue(options.maxBufferedEvents ?? 100_000);
    this.#reader = this.#read(options.maxLineBytes ?? MAX_LINE_BYTES_CEILING);
  }

  /**
   * Connects to a server.
   *
   * @example Usage
   * ```ts ignore
   * const plain = await ParleyClient.connect({ hostname: "127.0.0.1", port: 7777 });
   * const tls = await ParleyClient.connect({
   *   hostname: "localhost",
   *   port: 7778,
   *   tls: { caCerts: [await Deno.readTextFile("ca.pem")] },
   * });
   * ```
   */
  static async connect(options: ConnectOptions): Promise<ParleyClient> {
    const hostname = options.hostname ?? "127.0.0.1";
    let conn: Deno.Conn;
    if (options.tls) {
      const tls = options.tls === true ? {} : options.tls;
      const tlsConn = await Deno.connectTls({
        hostname: tls.serverName ?? hostname,
        port: options.port,
        caCerts: tls.caCerts,
      });
      try {
        await tlsConn.handshake(); // certificate problems fail here, not later
      } catch (error) {
        tlsConn.close();
        throw error;
      }
      conn = tlsConn;
    } else {
      const tcp = await Deno.connect({ hostname, port: options.port });
      tcp.setNoDelay(true);
      conn = tcp;
    }
    return new ParleyClient(conn, options);
  }

  /** Whether the connection has closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Logs in and resolves to the session id; rejects with a {@linkcode ParleyError} (reason
   * `logged-out`) when the server says no.
   *
   * @example Usage
   * ```ts ignore
   * const id = await client.login("alice", "wonderland"); // 1
   * ```
   */
  async login(username: string, password: string | Uint8Array): Promise<number> {
    const line = await this.#request("0", loginLine(username, password));
    this.sessionId = Number(line.slice(2));
    return this.sessionId;
  }

  /**
   * The rooms, sorted by name, each with its members.
   *
   * @example Usage
   * ```ts ignore
   * for (const room of await client.rooms()) console.log(room.name, room.members.length);
   * ```
   */
  async rooms(): Promise<RoomInfo[]> {
    return parseRooms(await this.#request("1", ROOMS_LINE));
  }

  /**
   * Joins (or creates) a room and resolves to its members; rejects with a
   * {@linkcode ParleyError} such as `room-password` or `bad-name`.
   *
   * @example Usage
   * ```ts ignore
   * const { members } = await client.join("poker-7", "s3cret");
   * ```
   */
  async join(room: string, password: string | Uint8Array = ""): Promise<JoinedEvent> {
    return parseJoined(await this.#request("2", joinLine(room, password)));
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
    return this.#write(sayLine(text, options.echo ?? false));
  }

  /**
   * Sends a message to users wherever they are (`3:2`). The text may not hold `:`; users who
   * are not online come back as an error event with reason `not-online`.
   *
   * @example Usage
   * ```ts ignore
   * await client.tell(["bob", "carol"], btoa("psst: meet at 5"));
   * ```
   */
  tell(users: string[], text: string | Uint8Array): Promise<void> {
    return this.#write(tellLine(users, text));
  }

  /**
   * The events, in the order the server sent them. The stream ends when the connection closes
   * and throws if it failed. Iterating the client itself is the same.
   */
  events(): AsyncGenerator<ParleyEvent> {
    return this.#events.items();
  }

  [Symbol.asyncIterator](): AsyncGenerator<ParleyEvent> {
    return this.events();
  }

  /**
   * The next event, or `undefined` if none comes within `timeoutMs` or the connection closes.
   *
   * @example Usage
   * ```ts ignore
   * const event = await client.nextEvent(1000);
   * ```
   */
  nextEvent(timeoutMs = Infinity): Promise<ParleyEvent | undefined> {
    return this.#events.next(timeoutMs);
  }

  /** Closes the connection; waiting requests reject, and the event stream ends. */
  async close(): Promise<void> {
    this.#shutdown(null);
    await this.#reader;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #request(code: Pending["code"], line: Uint8Array): Promise<string> {
    if (this.#closed) return Promise.reject(this.#failure ?? new Error("the connection is closed"));
    const reply = new Promise<string>((resolve, reject) => {
      this.#pending.push({ code, resolve, reject });
    });
    this.#write(line).catch(() => {});
    return reply;
  }

  #write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(this.#failure ?? new Error("the connection is closed"));
    const next = this.#writing.then(async () => {
      let written = 0;
      while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
    });
    this.#writing = next.catch((error) => this.#shutdown(error));
    return next;
  }

  async #read(maxLineBytes: number): Promise<void> {
    const splitter = new LineSplitter(maxLineBytes);
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        splitter.push(buffer.subarray(0, n));
        for (let line = splitter.next(); line !== null; line = splitter.next()) {
          if (line === LINE_TOO_LONG) throw new Error("the server sent a line that is too long");
          if (line.length > 0) this.#dispatch(line);
        }
      }
      this.#shutdown(null);
    } catch (error) {
      if (this.#closed) return; // close() cut the read short: not a failure
      this.#shutdown(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Hands a line to the request it answers, or to the event stream, or both (a `2:`). */
  #dispatch(line: Uint8Array): void {
    if (line[0] === 0x33 /* 3 */ && line[1] === 0x3a) {
      this.#emit(parseMessage(line.slice(2), this.#stampSender));
      return;
    }
    const text = decoder.decode(line);
    switch (text[0]) {
      case "0":
        this.#loginReply(text);
        return;
      case "1":
        this.#answer("1", text);
        return;
      case "2":
        this.#answer("2", text);
        this.#emit(parseJoined(text));
        return;
      case "4":
      case "5": {
        const presence = parsePresence(text);
        if (presence !== null) this.#emit(presence);
        return;
      }
      case "9": {
        const error = parseError(text);
        // An error answers the waiting request of the same code; `?` errors answer any request.
        const head = this.#pending[0];
        if (head !== undefined && (head.code === error.code || error.code === "?")) {
          this.#pending.shift();
          head.reject(new ParleyError(error.code, error.reason, error.detail));
          return;
        }
        this.#emit(error);
        return;
      }
      default:
        return; // a code this client does not know: ignored, as the protocol says
    }
  }

  /** Resolves the waiting request if it has `code`; a reply nobody asked for is dropped. */
  #answer(code: Pending["code"], line: string): void {
    const head = this.#pending[0];
    if (head?.code !== code) return;
    this.#pending.shift();
    head.resolve(line);
  }

  /** `0:<id>` answers a login; `0:-1` refuses one, or ends the session. */
  #loginReply(line: string): void {
    const head = this.#pending[0];
    if (head?.code === "0") {
      this.#pending.shift();
      if (line === "0:-1") head.reject(new ParleyError("0", "logged-out"));
      else head.resolve(line);
      return;
    }
    if (line !== "0:-1") return; // a reply nobody asked for: ignore
    this.sessionId = null;
    // A request that needs a session gets 0:-1 as its answer; either way the session is over.
    if (head !== undefined) {
      this.#pending.shift();
      head.reject(new ParleyError("0", "logged-out"));
    }
    this.#emit({ type: "session-ended" });
  }

  #emit(event: ParleyEvent): void {
    if (this.#closed || this.#events.push(event)) return;
    // Nobody is reading: holding more would only grow memory until the process fails.
    this.#shutdown(new Error(`more than ${this.#events.capacity} events were left unread`));
  }

  #shutdown(error: Error | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failure = error;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    const pending = this.#pending;
    this.#pending = [];
    for (const request of pending) {
      request.reject(error ?? new Error("the connection closed before the server answered"));
    }
    this.#events.end(error);
  }
}
