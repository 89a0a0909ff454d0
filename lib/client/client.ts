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

import { LINE_TOO_LONG, LineSplitter } from "../protocol/line_splitter.ts";

const encoder = new TextEncoder();
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
  /** The longest line accepted from the server (default 16 MiB); a longer one closes. */
  maxLineBytes?: number;
  /** Events held unread before the client gives up and closes (default 100,000). */
  maxBufferedEvents?: number;
}

/** A message for this client (`3:`). */
export interface MessageEvent {
  type: "message";
  /** The message as text (invalid UTF-8 replaced). */
  text: string;
  /** The message's bytes as the sender sent them. */
  bytes: Uint8Array;
  /** The sender, when the server stamps senders (and `stampSender` is set). */
  sender?: string;
}

/** This client joined a room (`2:`, the reply to {@linkcode ParleyClient.join}). */
export interface JoinedEvent {
  type: "joined";
  room: string;
  /** Everyone in the room now, this client included, sorted. */
  members: string[];
}

/** Someone joined (`4:`) or left (`5:`) this client's room. */
export interface PresenceEvent {
  type: "presence";
  action: "join" | "leave";
  room: string;
  user: string;
}

/** A command failed (`9:`) and no request was waiting for the answer (a send, usually). */
export interface ErrorEvent {
  type: "error";
  /** The failed command's code (`0` to `3`), or `?`. */
  code: string;
  /** Why, e.g. `not-online`, `not-in-room`, `rate-limited`. */
  reason: string;
  /** More, e.g. the users who got nothing. */
  detail?: string;
}

/** The server ended this session (`0:-1`): the user logged in elsewhere, or was removed. */
export interface SessionEndedEvent {
  type: "session-ended";
}

/** Everything the event stream yields. */
export type ParleyEvent =
  | MessageEvent
  | JoinedEvent
  | PresenceEvent
  | ErrorEvent
  | SessionEndedEvent;

/** A room in the room list. */
export interface RoomInfo {
  name: string;
  /** Who is in it now, sorted. */
  members: string[];
}

/** A request the server refused (`9:` or `0:-1`). */
export class ParleyError extends Error {
  /** The code of the failed command, `?`, or `0` with reason `logged-out` for `0:-1`. */
  readonly code: string;
  readonly reason: string;
  readonly detail?: string;
  constructor(code: string, reason: string, detail?: string) {
    super(`${code}:${reason}${detail === undefined ? "" : `:${detail}`}`);
    this.name = "ParleyError";
    this.code = code;
    this.reason = reason;
    this.detail = detail;
  }
}

interface Pending {
  code: "0" | "1" | "2";
  resolve: (line: string) => void;
  reject: (error: Error) => void;
}

function checkBody(text: string | Uint8Array, allowColon: boolean): Uint8Array {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  if (bytes.includes(0x0a)) throw new TypeError("a message cannot contain a line feed");
  if (!allowColon && bytes.includes(0x3a)) {
    throw new TypeError("a direct message cannot contain ':' (encode it, e.g. as base64)");
  }
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
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
  readonly #maxBufferedEvents: number;
  #pending: Pending[] = [];
  #events: ParleyEvent[] = [];
  #waiting: (() => void) | null = null;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #failure: Error | null = null;
  #reader: Promise<void>;
  /** The session id of the last successful login, or `null`. */
  sessionId: number | null = null;

  private constructor(conn: Deno.Conn, options: ConnectOptions) {
    this.#conn = conn;
    this.#stampSender = options.stampSender ?? false;
    this.#maxBufferedEvents = options.maxBufferedEvents ?? 100_000;
    this.#reader = this.#read(options.maxLineBytes ?? 16 << 20);
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
      conn = await Deno.connectTls({
        hostname: tls.serverName ?? hostname,
        port: options.port,
        caCerts: tls.caCerts,
      });
      try {
        await (conn as Deno.TlsConn).handshake(); // certificate problems fail here, not later
      } catch (error) {
        conn.close();
        throw error;
      }
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
    const pw = typeof password === "string" ? encoder.encode(password) : password;
    const line = await this.#request("0", concat(encoder.encode(`0:${username}:`), pw));
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
    const line = await this.#request("1", encoder.encode("1"));
    if (line === "1:") return [];
    return line.slice(2).split(":").map((field) => {
      const [name, ...members] = field.split(",");
      return { name, members };
    });
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
    const pw = typeof password === "string" ? encoder.encode(password) : password;
    const head = encoder.encode(`2:${room}`);
    const line = await this.#request(
      "2",
      pw.length === 0 ? head : concat(head, encoder.encode(":"), pw),
    );
    return this.#parseJoined(line);
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
    const prefix = encoder.encode(options.echo ? "3:0:" : "3:1:");
    return this.#write(concat(prefix, checkBody(text, true), encoder.encode("\n")));
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
    if (users.length === 0) throw new TypeError("tell needs at least one user");
    for (const user of users) {
      if (user === "" || /[:\n]/.test(user)) throw new TypeError(`not a username: "${user}"`);
    }
    const head = encoder.encode(`3:2:${users.join(":")}:`);
    return this.#write(concat(head, checkBody(text, false), encoder.encode("\n")));
  }

  /**
   * The events, in the order the server sent them. The stream ends when the connection closes
   * and throws if it failed. Iterating the client itself is the same.
   */
  async *events(): AsyncGenerator<ParleyEvent> {
    for (;;) {
      const event = this.#events.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      if (this.#closed) {
        if (this.#failure) throw this.#failure;
        return;
      }
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
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
  async nextEvent(timeoutMs = Infinity): Promise<ParleyEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#events.length === 0 && !this.#closed) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiting = resolve;
        if (Number.isFinite(left)) timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#events.shift();
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
    this.#write(concat(line, encoder.encode("\n"))).catch(() => {});
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
      this.#shutdown(this.#closed ? null : error as Error);
    }
  }

  #dispatch(line: Uint8Array): void {
    const code = line[0];
    if (code === 0x33 /* 3 */ && line[1] === 0x3a) {
      let bytes = line.slice(2);
      let sender: string | undefined;
      if (this.#stampSender) {
        const colon = bytes.indexOf(0x3a);
        if (colon !== -1) {
          sender = decoder.decode(bytes.subarray(0, colon));
          bytes = bytes.slice(colon + 1);
        }
      }
      this.#emit({ type: "message", text: decoder.decode(bytes), bytes, sender });
      return;
    }
    const text = decoder.decode(line);
    const head = this.#pending[0];
    switch (text[0]) {
      case "0": {
        if (head?.code === "0") {
          this.#pending.shift();
          if (text === "0:-1") head.reject(new ParleyError("0", "logged-out"));
          else head.resolve(text);
          return;
        }
        if (text !== "0:-1") return; // a reply nobody asked for: ignore
        this.sessionId = null;
        // A request that needs a session gets 0:-1 as its answer; either way the session is over.
        if (head !== undefined) {
          this.#pending.shift();
          head.reject(new ParleyError("0", "logged-out"));
        }
        this.#emit({ type: "session-ended" });
        return;
      }
      case "1":
        if (head?.code === "1") {
          this.#pending.shift();
          head.resolve(text);
        }
        return;
      case "2": {
        const joined = this.#parseJoined(text);
        if (head?.code === "2") {
          this.#pending.shift();
          head.resolve(text);
        }
        this.#emit(joined);
        return;
      }
      case "4":
      case "5": {
        const at = text.indexOf(":", 2);
        if (at === -1) return;
        this.#emit({
          type: "presence",
          action: text[0] === "4" ? "join" : "leave",
          room: text.slice(2, at),
          user: text.slice(at + 1),
        });
        return;
      }
      case "9": {
        const [, errorCode = "?", reason = "", ...rest] = text.split(":");
        const detail = rest.length > 0 ? rest.join(":") : undefined;
        // An error answers the waiting request of the same code; `?` errors answer any request.
        if (head !== undefined && (head.code === errorCode || errorCode === "?")) {
          this.#pending.shift();
          head.reject(new ParleyError(errorCode, reason, detail));
          return;
        }
        this.#emit({ type: "error", code: errorCode, reason, detail });
        return;
      }
      default:
        return; // a code this client does not know: ignored, as the protocol says
    }
  }

  #parseJoined(text: string): JoinedEvent {
    const at = text.lastIndexOf(":");
    const members = text.slice(at + 1);
    return {
      type: "joined",
      room: text.slice(2, at),
      members: members === "" ? [] : members.split(","),
    };
  }

  #emit(event: ParleyEvent): void {
    if (this.#events.length >= this.#maxBufferedEvents) {
      this.#shutdown(new Error(`more than ${this.#maxBufferedEvents} events were left unread`));
      return;
    }
    this.#events.push(event);
    this.#wake();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
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
    this.#wake();
  }
}
