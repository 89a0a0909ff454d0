/**
 * The WebSocket transport: the same protocol for browsers and game engines, through
 * `Deno.serve` and `Deno.upgradeWebSocket` on `--ws-port`, and (with `--web`) the web page at `/`.
 *
 * Framing: each text frame is one line, with no LF needed; a frame may also hold several
 * LF-separated lines (a CR just before an LF, or at the end of the frame, is dropped). Binary
 * frames are read the same way, as the bytes of lines. Each server line goes out as one text
 * frame without its LF; the rare line that is not valid UTF-8 (message text is opaque bytes)
 * goes out as a binary frame holding those exact bytes, since a text frame could not carry it.
 *
 * Limits: a frame longer than `--max-line-bytes` (one trailing LF not counted) gets `9:?:too-long`
 * and the connection is closed; a client whose `bufferedAmount` would pass `--max-pending-bytes`
 * is dropped as a slow consumer; frames waiting to be handled (while a login is checked) are
 * bounded by the same byte count. The login clock, flood control and login throttling are
 * {@linkcode Connection}'s, exactly as for TCP.
 *
 * @module
 */

import { encodeError } from "../protocol/codec.ts";
import { Connection, type ConnectionContext, type Transport } from "./connection.ts";
import { normalizeOrigin, originAllowed } from "../protocol/origin.ts";
import INDEX_HTML from "./web/index.html" with { type: "text" };
import APP_JS from "./web/app.js" with { type: "text" };
import STYLE_CSS from "./web/style.css" with { type: "text" };

/** Re-exported: callers that found them here still do. */
export { normalizeOrigin, originAllowed };

const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });
/** `9:?:server-full` as a frame. */
const SERVER_FULL = new TextDecoder().decode(encodeError("?", "server-full")).trimEnd();
/** How often `drained()` looks at `bufferedAmount`. */
const DRAIN_POLL_MS = 10;

/** What {@linkcode serveWebSocket} needs. */
export interface WebSocketServerOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on (0: any free port). */
  port: number;
  /** PEM certificate and key (the contents): serve wss instead of ws. */
  tls?: { cert: string; key: string };
  /** Allowed `Origin` values, already normalized (see {@linkcode normalizeOrigin}); empty: any. */
  origins: readonly string[];
  /** Serve the web page at `/`. */
  web: boolean;
  /** Whether the server stamps senders (`3:<sender>:<message>`); the page reads it. */
  stampSender: boolean;
  /** What every connection shares. */
  context: ConnectionContext;
  /** Whether one more connection may open (max connections, counted across all transports). */
  admit(): boolean;
  /** A connection opened; the server adds it to its set. */
  opened(connection: Connection): void;
}

/** A running WebSocket listener. */
export interface WebSocketServer {
  /** `ws`, or `wss` with TLS. */
  readonly transport: "ws" | "wss";
  /** The address it listens on. */
  readonly hostname: string;
  /** The port it listens on (the real one when asked for 0). */
  readonly port: number;
  /** Refuses new upgrades and page requests from now on (503); open connections carry on. */
  stopAccepting(): void;
  /** Closes the listener and whatever sockets are still open on it. */
  shutdown(): Promise<void>;
}

/** One entry of the inbound queue: a frame's bytes, or a frame that was too long. */
type Inbound = Uint8Array | "too-long";

/** The last output decoded for sending: a broadcast shares one buffer among all its recipients. */
let lastOutput: Uint8Array | null = null;
let lastFrames: (string | Uint8Array)[] = [];

/** One server line's bytes (without its LF) as a frame: text when UTF-8, else the exact bytes. */
function frameOf(body: Uint8Array): string | Uint8Array {
  try {
    return utf8.decode(body);
  } catch {
    return body;
  }
}

/**
 * Server output (one line, or a run of lines, each ending in LF) as frames, one per line.
 */
function framesOf(output: Uint8Array): (string | Uint8Array)[] {
  if (output === lastOutput) return lastFrames;
  const frames: (string | Uint8Array)[] = [];
  let start = 0;
  while (start < output.length) {
    let end = output.indexOf(LF, start);
    if (end === -1) end = output.length;
    frames.push(frameOf(output.subarray(start, end)));
    start = end + 1;
  }
  lastOutput = output;
  lastFrames = frames;
  return frames;
}

/** A frame's size as the line limit counts it: its bytes, one trailing LF not counted. */
function frameSize(bytes: Uint8Array): number {
  return bytes.length > 0 && bytes[bytes.length - 1] === LF ? bytes.length - 1 : bytes.length;
}

/** The lines of a frame: LF-separated, a CR before an LF or at the frame's end dropped. */
function* linesOf(frame: Uint8Array): Generator<Uint8Array> {
  let start = 0;
  while (start < frame.length) {
    let end = frame.indexOf(LF, start);
    const next = end === -1 ? frame.length : end + 1;
    if (end === -1) end = frame.length;
    yield frame.subarray(start, end > start && frame[end - 1] === CR ? end - 1 : end);
    start = next;
  }
}

/** Serves one upgraded socket: a {@linkcode Connection} once it opens. */
function serveSocket(
  socket: WebSocket,
  remoteAddress: string,
  options: WebSocketServerOptions,
): void {
  const { context } = options;
  const { maxLineBytes, maxPendingBytes } = context.limits;
  socket.binaryType = "arraybuffer";
  let connection: Connection | null = null;
  let hungUp = false;
  const inbound: Inbound[] = [];
  let inboundBytes = 0;
  let pumping = false;

  const hangUp = () => {
    if (hungUp) return;
    hungUp = true;
    inbound.length = 0;
    try {
      socket.close(1000);
    } catch { /* closed already */ }
  };

  const transport: Transport = {
    remoteAddress,
    get pendingBytes() {
      return socket.bufferedAmount;
    },
    send(output) {
      if (hungUp || socket.readyState !== WebSocket.OPEN) return false;
      if (socket.bufferedAmount + output.length > maxPendingBytes) return false;
      for (const frame of framesOf(output)) socket.send(frame);
      return true;
    },
    async drained() {
      while (!hungUp && socket.readyState === WebSocket.OPEN && socket.bufferedAmount > 0) {
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
    },
    close: hangUp,
  };

  // Lines are handled one at a time, in order, each waiting for the last (a login, a join).
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (inbound.length > 0 && connection !== null && !connection.isClosed) {
        const frame = inbound.shift()!;
        if (frame === "too-long") return await connection.lineTooLong();
        inboundBytes -= frame.length;
        for (const line of linesOf(frame)) {
          const pending = connection.handleLine(line);
          if (pending !== undefined) await pending;
          if (connection.isClosed) return;
        }
      }
    } catch (error) {
      context.log.error("server-error", { error: String(error) });
      connection?.close();
    } finally {
      pumping = false;
    }
  };

  socket.onopen = () => {
    if (!options.admit()) {
      context.log.warn("server-full", { address: remoteAddress, transport: "ws" });
      socket.send(SERVER_FULL);
      hangUp();
      return;
    }
    connection = new Connection(transport, context);
    options.opened(connection);
    connection.start();
  };

  socket.onmessage = (event: MessageEvent) => {
    if (connection === null || connection.isClosed || hungUp) return;
    const data = event.data;
    let bytes: Uint8Array | null = null;
    if (typeof data === "string") {
      // A UTF-16 length already past the limit (plus a trailing LF) is past it in UTF-8 too.
      if (data.length <= maxLineBytes + 1) bytes = encoder.encode(data);
    } else if (data instanceof ArrayBuffer) {
      bytes = new Uint8Array(data);
    } else {
      return; // Blob: not produced with binaryType "arraybuffer"
    }
    if (bytes === null || frameSize(bytes) > maxLineBytes) {
      inbound.push("too-long");
    } else {
      inboundBytes += bytes.length;
      if (inboundBytes > maxPendingBytes) {
        // Sent far ahead of what the server has handled (possible only while a login waits).
        context.log.warn("closing", { address: remoteAddress, why: "inbound backlog" });
        connection.close();
        return;
      }
      inbound.push(bytes);
    }
    void pump();
  };

  socket.onclose = () => {
    hungUp = true;
    inbound.length = 0;
    connection?.close();
  };
  socket.onerror = () => {}; // a close event follows
}

/** The page, with the server's stamp-sender setting filled in for the script to read. */
function pageResponse(path: string, stampSender: boolean, head: boolean): Response | null {
  const files: Record<string, [string, string]> = {
    "/": [
      INDEX_HTML.replace("__STAMP_SENDER__", String(stampSender)),
      "text/html; charset=utf-8",
    ],
    "/index.html": [
      INDEX_HTML.replace("__STAMP_SENDER__", String(stampSender)),
      "text/html; charset=utf-8",
    ],
    "/app.js": [APP_JS, "text/javascript; charset=utf-8"],
    "/style.css": [STYLE_CSS, "text/css; charset=utf-8"],
  };
  const file = files[path];
  if (file === undefined) return null;
  return new Response(head ? null : file[0], {
    headers: {
      "content-type": file[1],
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "content-security-policy":
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    },
  });
}

function text(status: number, body: string): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * Starts the WebSocket listener (and the page, with `web`). Each accepted socket becomes a
 * {@linkcode Connection} handed to `opened`.
 *
 * @example Usage
 * ```ts ignore
 * const ws = serveWebSocket({ hostname: "127.0.0.1", port: 0, origins: [], web: true, ... });
 * console.log(ws.port);
 * ws.stopAccepting();
 * await ws.shutdown();
 * ```
 */
export function serveWebSocket(options: WebSocketServerOptions): WebSocketServer {
  let accepting = true;
  const handler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response => {
    if (!accepting) return text(503, "shutting down");
    const url = new URL(request.url);
    const upgrade = request.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (!upgrade) {
      if (request.method !== "GET" && request.method !== "HEAD") return text(405, "GET only");
      if (options.web) {
        const page = pageResponse(url.pathname, options.stampSender, request.method === "HEAD");
        if (page !== null) return page;
      } else if (url.pathname === "/") {
        return text(426, "Parley speaks WebSocket here: connect with a WebSocket client");
      }
      return text(404, "not found");
    }
    if (url.pathname !== "/") return text(404, "WebSocket upgrades are served at /");
    const remoteAddress = info.remoteAddr.hostname; // read it now: it is gone after the upgrade
    const origin = request.headers.get("origin");
    if (!originAllowed(origin, options.origins, request.headers.get("host"), options.web)) {
      options.context.log.warn("origin-refused", {
        address: remoteAddress,
        origin: origin ?? "",
      });
      return text(403, "origin not allowed");
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request);
    } catch {
      return text(400, "bad WebSocket upgrade");
    }
    serveSocket(upgraded.socket, remoteAddress, options);
    return upgraded.response;
  };
  const log = options.context.log;
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    ...(options.tls ?? {}),
    onListen: () => {}, // the server logs its own "listening" line
    onError: (error) => {
      log.error("server-error", { transport: "ws", error: String(error) });
      return text(500, "server error");
    },
  }, handler);
  const address = server.addr;
  return {
    transport: options.tls ? "wss" : "ws",
    hostname: address.hostname,
    port: address.port,
    stopAccepting() {
      accepting = false;
    },
    async shutdown() {
      accepting = false;
      await server.shutdown();
    },
  };
}
