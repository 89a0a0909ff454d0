/**
 * The little HTTP/1.1 the WebSocket port speaks: reading one request head from a socket, within a
 * byte bound and a deadline, and encoding a response. No bodies are read and no connection is kept
 * alive: the port serves a WebSocket upgrade, or one small page file and then closes.
 *
 * @module
 */

import { DEFAULT_HEADER_TIMEOUT_MS } from "../protocol/limits.ts";

/** The most bytes a request head may take (request line, headers, blank line). */
export const MAX_HEAD_BYTES = 8 * 1024;
/** How long a client has to send its whole request head, by default (`--header-timeout-ms`). */
export const HEAD_TIMEOUT_MS = DEFAULT_HEADER_TIMEOUT_MS;

/** A request head. */
export interface RequestHead {
  /** `GET`, `HEAD`, ... as sent. */
  method: string;
  /** The target's path, without the query (`/` for `/?x=1`). */
  path: string;
  /** `1.0` or `1.1`. */
  version: string;
  /** Header values by lower-cased name; a repeated header's values joined with `, `. */
  headers: Map<string, string>;
  /** Bytes that came after the head in the same reads (a client's first frames, say). */
  rest: Uint8Array;
}

/**
 * Why no head was read: `closed` (the peer went away first), `timeout` (the deadline passed, and
 * the socket was closed to end the read), or an HTTP status to answer with: 400 for a malformed
 * head, 431 for one larger than the bound.
 */
export type HeadFailure = "closed" | "timeout" | 400 | 431;

/** The socket side {@linkcode readRequestHead} needs: a `Deno.Conn` fits. */
export interface HeadSource {
  read(buffer: Uint8Array): Promise<number | null>;
  close(): void;
}

const latin1 = new TextDecoder("latin1");
const LF = 0x0a;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// deno-lint-ignore no-control-regex
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Reads one request head from `conn`: at most `maxBytes`, within `timeoutMs` (on a timeout the
 * socket is closed, which is the only way to end a pending read).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRequestHead } from "./http1.ts";
 * const bytes = new TextEncoder().encode("GET /app.js?v=2 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n!");
 * let sent = false;
 * const conn = {
 *   read: (buffer: Uint8Array) => {
 *     if (sent) return Promise.resolve(null);
 *     sent = true;
 *     buffer.set(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 *   close: () => {},
 * };
 * const head = await readRequestHead(conn, { timeoutMs: 1000 });
 * assert.ok(typeof head === "object");
 * assert.equal(head.path, "/app.js");
 * assert.equal(head.headers.get("x-a"), "1, 2");
 * assert.deepEqual([...head.rest], [0x21]);
 * ```
 */
export async function readRequestHead(
  conn: HeadSource,
  options: { maxBytes?: number; timeoutMs?: number } = {},
): Promise<RequestHead | HeadFailure> {
  const maxBytes = options.maxBytes ?? MAX_HEAD_BYTES;
  const timeoutMs = Math.min(options.timeoutMs ?? HEAD_TIMEOUT_MS, 30_000);
  // Small first: most heads are a few hundred bytes. It grows (up to the bound) only when needed.
  let buffer = new Uint8Array(Math.min(maxBytes, 1024));
  let used = 0;
  const deadline = new ReadDeadline(conn, timeoutMs);
  try {
    for (;;) {
      if (used === buffer.length) {
        if (used >= maxBytes) return 431;
        const grown = new Uint8Array(Math.min(maxBytes, buffer.length * 4));
        grown.set(buffer);
        buffer = grown;
      }
      const n = await conn.read(buffer.subarray(used));
      if (n === null) return "closed";
      const end = headEnd(buffer, Math.max(0, used - 3), used + n);
      used += n;
      if (end !== -1) return parseHead(buffer.subarray(0, end), buffer.subarray(end, used));
    }
  } catch {
    return deadline.expired ? "timeout" : "closed";
  } finally {
    deadline.clear();
  }
}

/**
 * Closes a socket once `ms` have passed (the only way to end a pending read), unless cleared
 * first; `expired` says whether it did.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReadDeadline } from "./http1.ts";
 * let closed = false;
 * const deadline = new ReadDeadline({ close: () => closed = true }, 1);
 * await new Promise((resolve) => setTimeout(resolve, 20));
 * assert.ok(deadline.expired && closed);
 * deadline.clear();
 * ```
 */
export class ReadDeadline {
  expired = false;
  #timer: ReturnType<typeof setTimeout>;

  constructor(conn: { close(): void }, ms: number) {
    this.#timer = setTimeout(() => {
      this.expired = true;
      try {
        conn.close();
      } catch { /* closed already */ }
    }, ms);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** Where the head ends (just past its blank line), or -1: LF, an optional CR, LF. */
function headEnd(bytes: Uint8Array, from: number, to: number): number {
  for (let i = bytes.indexOf(LF, from); i !== -1 && i < to; i = bytes.indexOf(LF, i + 1)) {
    if (i + 1 < to && bytes[i + 1] === LF) return i + 2;
    if (i + 2 < to && bytes[i + 1] === 0x0d && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}

function parseHead(head: Uint8Array, rest: Uint8Array): RequestHead | 400 {
  const lines = latin1.decode(head).split("\n").map((line) => line.replace(/\r$/, ""));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const requestLine = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(1\.[01])$/.exec(lines[0] ?? "");
  if (requestLine === null) return 400;
  const path = pathOf(requestLine[2]);
  if (path === null) return 400;
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0) return 400; // also a folded line, which starts with a space
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || BAD_VALUE_CHAR.test(value)) return 400;
    const key = name.toLowerCase();
    const earlier = headers.get(key);
    headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  return { method: requestLine[1], path, version: requestLine[3], headers, rest };
}

/** The path of a request target (origin form, or absolute form from a proxy); null if neither. */
function pathOf(target: string): string | null {
  if (target.startsWith("/")) return target.replace(/[?#].*$/, "");
  if (!/^https?:\/\//i.test(target)) return null;
  try {
    return new URL(target).pathname;
  } catch {
    return null;
  }
}

const REASONS: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const encoder = new TextEncoder();

/**
 * A response's bytes: status line, `headers`, and `body` (with its `content-length`, unless the
 * status is 101). `headOnly` leaves the body out but keeps its length, as a HEAD request wants.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeResponse } from "./http1.ts";
 * const text = new TextDecoder().decode(encodeResponse(404, { "content-type": "text/plain" }, "no\n"));
 * assert.equal(text, "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nno\n");
 * ```
 */
export function encodeResponse(
  status: number,
  headers: Record<string, string>,
  body: Uint8Array | string = "",
  headOnly = false,
): Uint8Array {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  if (status !== 101) head += `content-length: ${bytes.length}\r\n`;
  const headBytes = encoder.encode(head + "\r\n");
  if (headOnly || bytes.length === 0) return headBytes;
  const out = new Uint8Array(headBytes.length + bytes.length);
  out.set(headBytes);
  out.set(bytes, headBytes.length);
  return out;
}
