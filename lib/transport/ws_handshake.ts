/**
 * The WebSocket port's HTTP side: each accepted socket's request head is read (bounded, with a
 * deadline), then answered with a page file, an error or a refusal and closed, or accepted with
 * its 101 (RFC 6455 §4.2), after which websocket.ts carries its frames.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { encodeError } from "../protocol/codec.ts";
import { originAllowed } from "../protocol/origin.ts";
import type { Logger } from "../observe/log.ts";
import { encodeResponse, readRequestHead, type RequestHead } from "./http1.ts";
import { pageFile } from "./web_page.ts";
import { encodeClose, encodeLines } from "./ws_frames.ts";
import type { ByteSocket } from "./proxied_socket.ts";

/** How long an answered or refused socket may linger for the peer to read the answer. */
const LINGER_MS = 1000;
/** How long a client refused as one too many has to send its request head. */
const REFUSAL_HEAD_TIMEOUT_MS = 2000;

const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** `9:?:server-full` as a frame, then the close. */
const SERVER_FULL_FRAMES = concat(encodeLines(encodeError("?", "server-full")), encodeClose(1000));

/** What the WebSocket port serves besides upgrades, and whom it lets upgrade. */
export interface WebSocketOptions {
  /** Allowed `Origin` values, already normalized (see `normalizeOrigin`); empty: any. */
  origins: readonly string[];
  /** Serve the web page at `/`. */
  web: boolean;
  /** Whether the server stamps senders (`3:<sender>:<message>`); the page reads it. */
  stampSender: boolean;
  /** How long a client has to send its request head (default: http1.ts's, 10 s). */
  headTimeoutMs?: number;
}

/**
 * Who the client of a request is, from its head (an HTTP proxy's `X-Forwarded-For`): its
 * address, or null to close the socket unanswered.
 */
export type ClientOf = (head: RequestHead) => string | null;

/**
 * Reads a socket's request head and answers it: a page, an error (the socket is then closed and
 * the result is `null`), or the 101 of a good upgrade, resolving to the bytes that came after the
 * head (the client's first frames) and the client's address (the socket's peer, or what
 * `clientOf` says). Rejects only if writing the 101 fails.
 *
 * @example Usage
 * ```ts ignore
 * const upgraded = await acceptUpgrade(conn, { origins: [], web: false, stampSender: false }, log);
 * if (upgraded !== null) startFrames(conn, upgraded.rest);
 * ```
 */
export async function acceptUpgrade(
  conn: ByteSocket,
  options: WebSocketOptions,
  log: Logger,
  clientOf?: ClientOf,
): Promise<{ rest: Uint8Array; address: string } | null> {
  const head = await readRequestHead(conn, { timeoutMs: options.headTimeoutMs });
  if (typeof head !== "object") {
    if (typeof head === "number") await sendAndLinger(conn, text(head, "bad request head"));
    else closeQuietly(conn);
    return null;
  }
  const remoteAddress = clientOf === undefined
    ? (conn.remoteAddr as Deno.NetAddr).hostname
    : clientOf(head);
  if (remoteAddress === null) {
    closeQuietly(conn);
    return null;
  }
  const route = routeRequest(head, options, remoteAddress, log);
  if ("answer" in route) {
    await sendAndLinger(conn, route.answer);
    return null;
  }
  await writeAll(conn, route.upgrade);
  return { rest: head.rest, address: remoteAddress };
}

/**
 * Answers a socket accepted while the server is full: an upgrade gets its 101 and then the frame
 * `9:?:server-full` and a close; anything else an HTTP 503. The socket is closed either way.
 */
export async function refuseWebSocket(conn: ByteSocket): Promise<void> {
  const head = await readRequestHead(conn, { timeoutMs: REFUSAL_HEAD_TIMEOUT_MS });
  if (typeof head !== "object") return closeQuietly(conn);
  const accept = upgradeResponse(head);
  if (accept === null) return await sendAndLinger(conn, text(503, "9:?:server-full"));
  await sendAndLinger(conn, concat(accept, SERVER_FULL_FRAMES));
}

/** What to do with a request: send a page or an error and close, or send the 101 and upgrade. */
function routeRequest(
  head: RequestHead,
  options: WebSocketOptions,
  remoteAddress: string,
  log: Logger,
): { answer: Uint8Array } | { upgrade: Uint8Array } {
  const { method, path, headers } = head;
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    if (method !== "GET" && method !== "HEAD") return answer(405, "GET only");
    if (options.web) {
      const file = pageFile(path, options.stampSender);
      if (file !== null) {
        const headers = { ...file.headers, connection: "close" };
        return { answer: encodeResponse(200, headers, file.body, method === "HEAD") };
      }
    } else if (path === "/") {
      const why = "Parley speaks WebSocket here: connect with a WebSocket client";
      return { answer: text(426, why, { upgrade: "websocket" }, method === "HEAD") };
    }
    return { answer: text(404, "not found", {}, method === "HEAD") };
  }
  if (path !== "/") return answer(404, "WebSocket upgrades are served at /");
  const origin = headers.get("origin") ?? null;
  if (!originAllowed(origin, options.origins)) { // never the Host header: DNS rebinding forges it
    log.warn("origin-refused", { address: remoteAddress, origin: origin ?? "" });
    return answer(403, "origin not allowed");
  }
  const accept = upgradeResponse(head);
  return accept === null ? answer(400, "bad WebSocket upgrade") : { upgrade: accept };
}

/** The 101 that accepts a well-formed upgrade (RFC 6455 §4.2), or null for a bad one. */
function upgradeResponse(head: RequestHead): Uint8Array | null {
  const { headers } = head;
  const key = headers.get("sec-websocket-key") ?? "";
  const wellFormed = head.method === "GET" && head.version === "1.1" &&
    hasToken(headers.get("upgrade"), "websocket") &&
    hasToken(headers.get("connection"), "upgrade") &&
    headers.get("sec-websocket-version") === "13" &&
    /^[A-Za-z0-9+/]{22}==$/.test(key); // 16 bytes in base64
  if (!wellFormed) return null;
  const accept = createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
  return encodeResponse(101, {
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-accept": accept,
  });
}

/** Whether a comma-separated header value holds `token` (case-insensitive). */
function hasToken(value: string | undefined, token: string): boolean {
  return value !== undefined && value.split(",").some((t) => t.trim().toLowerCase() === token);
}

/** A short plain-text answer (`headOnly`: its head alone, for a HEAD request). */
function text(
  status: number,
  body: string,
  headers: Record<string, string> = {},
  headOnly = false,
): Uint8Array {
  return encodeResponse(
    status,
    {
      "content-type": "text/plain; charset=utf-8",
      connection: "close",
      ...headers,
    },
    body + "\n",
    headOnly,
  );
}

function answer(status: number, body: string): { answer: Uint8Array } {
  return { answer: text(status, body) };
}

/**
 * Writes `bytes`, then waits (a little) for the peer to close first, so that closing with its
 * unread bytes pending does not reset the connection before it has read the answer.
 */
async function sendAndLinger(conn: ByteSocket, bytes: Uint8Array): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), LINGER_MS);
  try {
    await writeAll(conn, bytes);
    const sink = new Uint8Array(1024);
    while (await conn.read(sink) !== null) { /* whatever it still sends is not read */ }
  } catch {
    /* reset, or closed by the timer */
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

export async function writeAll(conn: ByteSocket, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

export function closeQuietly(conn: ByteSocket): void {
  try {
    conn.close();
  } catch { /* closed already */ }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
