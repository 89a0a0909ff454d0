/**
 * One connection of a {@linkcode ParleyClient} (client.ts): the socket, the queue of requests
 * waiting for their reply, and the reading of each line into a reply, an event, or a token. A
 * client that reconnects makes a new link for each connection; the link never reconnects itself.
 *
 * The protocol has no request ids, but the server answers each connection's commands in order,
 * so the requests that wait for a reply (login, rooms, join, features) queue here and every other
 * line goes to the link's owner as an event.
 *
 * @module
 */

import { LINE_TOO_LONG, LineSplitter } from "../protocol/line_splitter.ts";
import { ParleyError, type ParleyEvent, parseError, parseJoined, parsePresence } from "./events.ts";
import { parseMessage } from "./events.ts";

const decoder = new TextDecoder();

/** Where a link connects. */
export interface DialOptions {
  hostname?: string;
  port: number;
  tls?: boolean | { caCerts?: string[]; serverName?: string };
}

/** What a link tells its owner. */
export interface LinkHandlers {
  /** A line that is not the answer to a request (or, for `2:`, is both). */
  event(event: ParleyEvent): void;
  /** A `6:<token>`: a resume token for the session just started. */
  token(token: string): void;
  /** The connection ended: `null` when the server closed it, else what failed. */
  closed(error: Error | null): void;
}

/** The codes of the lines that answer a request. */
export type RequestCode = "0" | "1" | "2" | "8";

interface Pending {
  code: RequestCode;
  resolve: (line: string) => void;
  reject: (error: Error) => void;
}

/**
 * Opens a plain TCP or TLS connection (the TLS handshake done, so certificate problems fail here).
 *
 * @example Usage
 * ```ts ignore
 * const conn = await dial({ hostname: "127.0.0.1", port: 7777 });
 * ```
 */
export async function dial(options: DialOptions): Promise<Deno.Conn> {
  const hostname = options.hostname ?? "127.0.0.1";
  if (!options.tls) {
    const tcp = await Deno.connect({ hostname, port: options.port });
    tcp.setNoDelay(true);
    return tcp;
  }
  const tls = options.tls === true ? {} : options.tls;
  const conn = await Deno.connectTls({
    hostname: tls.serverName ?? hostname,
    port: options.port,
    caCerts: tls.caCerts,
  });
  try {
    await conn.handshake();
  } catch (error) {
    conn.close();
    throw explainTlsError(error);
  }
  return conn;
}

/**
 * A TLS refusal said as what to do: rustls' `CaUsedAsEndEntity` (a self-signed certificate made
 * with OpenSSL 3's default `CA:TRUE`) and `UnknownIssuer` (a CA this client does not trust).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { explainTlsError } from "./link.ts";
 * const raw = new Error("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))");
 * assert.match(explainTlsError(raw).message, /basicConstraints=critical,CA:FALSE/);
 * assert.match(explainTlsError(new Error("invalid peer certificate: UnknownIssuer")).message, /--ca/);
 * ```
 */
export function explainTlsError(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes("CaUsedAsEndEntity")) {
    return new Error(
      "the server's certificate is a CA certificate (CA:TRUE), which TLS refuses as a server's " +
        "own: make it with -addext basicConstraints=critical,CA:FALSE (docs/deploy.md shows how)",
      { cause: error },
    );
  }
  if (message.includes("UnknownIssuer")) {
    return new Error(
      "the server's certificate is not signed by a CA this client trusts: give that CA's PEM (for " +
        "a self-signed certificate, the certificate itself) with --ca FILE (caCerts in the library)",
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(message);
}

/**
 * One connection: write lines, wait for replies, hand everything else to the owner.
 *
 * @example Usage
 * ```ts ignore
 * const link = new Link(await dial({ port: 7777 }), handlers, { stampSender: false });
 * const reply = await link.request("1", ROOMS_LINE); // "1:lobby,alice"
 * ```
 */
export class Link {
  readonly #conn: Deno.Conn;
  readonly #handlers: LinkHandlers;
  readonly #stampSender: boolean;
  #pending: Pending[] = [];
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #failure: Error | null = null;
  /** The features the server turned on for this connection (from its `8:` reply). */
  features: Set<string> = new Set();
  /** The last `7:<reason>` heard, which explains the `0:-1` or the close after it. */
  lastReason: string | null = null;
  /** Resolves once the reading has stopped. */
  readonly done: Promise<void>;

  constructor(
    conn: Deno.Conn,
    handlers: LinkHandlers,
    options: { stampSender: boolean; maxLineBytes: number },
  ) {
    this.#conn = conn;
    this.#handlers = handlers;
    this.#stampSender = options.stampSender;
    this.done = this.#read(options.maxLineBytes);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends `line` and resolves to the reply with `code` (or rejects with a ParleyError). */
  request(code: RequestCode, line: Uint8Array): Promise<string> {
    if (this.#closed) return Promise.reject(this.#failure ?? new Error("the connection is closed"));
    const reply = new Promise<string>((resolve, reject) => {
      this.#pending.push({ code, resolve, reject });
    });
    this.write(line).catch(() => {});
    return reply;
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(this.#failure ?? new Error("the connection is closed"));
    const next = this.#writing.then(async () => {
      let written = 0;
      while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
    });
    this.#writing = next.catch((error) => this.close(error));
    return next;
  }

  /** Closes the connection: waiting requests reject, and the owner hears `closed(error)`. */
  close(error: Error | null = null): void {
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
    this.#handlers.closed(error);
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
          if (line.length > 0 && !this.#closed) this.#dispatch(line);
        }
      }
      this.close(null);
    } catch (error) {
      if (this.#closed) return; // close() cut the read short: not a failure
      this.close(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Hands a line to the request it answers, or to the owner, or both (a `2:`). */
  #dispatch(line: Uint8Array): void {
    if (line[0] === 0x33 /* 3 */ && line[1] === 0x3a) {
      const from = this.features.has("from");
      this.#handlers.event(parseMessage(line.slice(2), this.#stampSender, from));
      return;
    }
    const text = decoder.decode(line);
    switch (text[0]) {
      case "0":
        return this.#loginReply(text);
      case "1":
      case "8":
        return this.#answer(text[0], text);
      case "2":
        this.#answer("2", text);
        return this.#handlers.event(parseJoined(text));
      case "4":
      case "5": {
        const presence = parsePresence(text);
        if (presence !== null) this.#handlers.event(presence);
        return;
      }
      case "6":
        if (text[1] === ":") this.#handlers.token(text.slice(2));
        return;
      case "7":
        this.lastReason = text.slice(2);
        // `7:busy` explains the `0:-1` answering a login: that login rejects with it instead.
        if (this.lastReason !== "busy" || this.#pending[0]?.code !== "0") {
          this.#handlers.event({ type: "reason", reason: this.lastReason });
        }
        return;
      case "9": {
        const error = parseError(text);
        // An error answers the waiting request of the same code; `?` errors answer any request.
        const head = this.#pending[0];
        if (head !== undefined && (head.code === error.code || error.code === "?")) {
          this.#pending.shift();
          head.reject(new ParleyError(error.code, error.reason, error.detail));
          return;
        }
        return this.#handlers.event(error);
      }
      default:
        return; // a code this client does not know: ignored, as the protocol says
    }
  }

  /** Resolves the waiting request if it has `code`; a reply nobody asked for is dropped. */
  #answer(code: RequestCode, line: string): void {
    const head = this.#pending[0];
    if (head?.code !== code) return;
    this.#pending.shift();
    head.resolve(line);
  }

  /** `0:<id>` answers a login; `0:-1` refuses one, or ends the session. */
  #loginReply(line: string): void {
    const head = this.#pending[0];
    const reason = this.lastReason;
    this.lastReason = null;
    if (head?.code === "0") {
      this.#pending.shift();
      if (line !== "0:-1") head.resolve(line);
      else head.reject(new ParleyError("0", reason === "busy" ? "busy" : "logged-out"));
      return;
    }
    if (line !== "0:-1") return; // a reply nobody asked for: ignore
    // A request that needs a session gets 0:-1 as its answer; either way the session is over.
    if (head !== undefined) {
      this.#pending.shift();
      head.reject(new ParleyError("0", "logged-out"));
    }
    this.#handlers.event(
      reason === null ? { type: "session-ended" } : { type: "session-ended", reason },
    );
  }
}
