/**
 * Opening the server's ports with errors that name their cause: the TLS file that cannot be read,
 * the flag and port in use (`--ws-port 8080`), or `--host` when the address is no good; accepting
 * on them, and the answer to a socket the server has no room for.
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { encodeError } from "../protocol/codec.ts";
import { describeError } from "../observe/log.ts";
import type { ByteSocket } from "../transport/proxied_socket.ts";
import { closeQuietly } from "../transport/websocket.ts";
import { RateLimitedWarning } from "./admission.ts";

/**
 * A TLS file's text; the error names the file.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readPem } from "./listen.ts";
 * assert.throws(() => readPem("/nonexistent/cert.pem", "certificate"), /TLS certificate \/nonexistent/);
 * ```
 */
export function readPem(path: string, what: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${describeError(error)}`);
  }
}

/** What bind errors mean: the port (or the address) is the cause, not the TLS files. */
function isBindError(error: unknown): boolean {
  return error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
    error instanceof Deno.errors.PermissionDenied ||
    (error instanceof Error && /lookup|resolve|name or service/i.test(error.message));
}

/**
 * Opens one listener; a failure names its flag and port (`--ws-port 8080`), or `--host` when the
 * address cannot be used, and blames the TLS files only when binding was not the problem.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { openNamed } from "./listen.ts";
 * const first = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = (first.addr as Deno.NetAddr).port;
 * const at = { flag: "ws-port", host: "127.0.0.1", port };
 * let message = "";
 * try {
 *   openNamed(at, () => Deno.listen({ hostname: "127.0.0.1", port }));
 * } catch (error) {
 *   message = (error as Error).message;
 * }
 * assert.equal(message, `--ws-port ${port}: that port is already in use on 127.0.0.1`);
 * first.close();
 * ```
 */
export function openNamed<T>(
  what: { flag: string; host: string; port: number; tlsFiles?: string },
  open: () => T,
): T {
  try {
    return open();
  } catch (error) {
    const reason = describeError(error);
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(`--${what.flag} ${what.port}: that port is already in use on ${what.host}`);
    }
    if (isBindError(error) || what.tlsFiles === undefined) {
      throw new Error(
        `cannot listen on --host ${what.host} --${what.flag} ${what.port}: ${reason}`,
      );
    }
    throw new Error(`cannot serve TLS with ${what.tlsFiles}: ${reason}`);
  }
}

/**
 * Checks that the PEMs make a TLS server, as `Deno.listenTls` does when it starts, for a port that
 * starts TLS itself after a balancer's PROXY header; the error names the files.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkPems } from "./listen.ts";
 * assert.throws(() => checkPems({ cert: "x", key: "y" }, "c.pem and k.pem"), /TLS with c.pem and k.pem/);
 * ```
 */
export function checkPems(pems: { cert: string; key: string }, tlsFiles: string): void {
  let matches: boolean;
  try {
    matches = new X509Certificate(pems.cert).checkPrivateKey(createPrivateKey(pems.key));
  } catch (error) {
    throw new Error(`cannot serve TLS with ${tlsFiles}: ${describeError(error)}`);
  }
  if (!matches) {
    throw new Error(`cannot serve TLS with ${tlsFiles}: the key is not the certificate's`);
  }
}

/** The client-facing ports' transports, in the order their addresses are logged. */
export type PortTransport = "tcp" | "tls" | "ws" | "wss";

/**
 * Opens the client ports (`--port`, `--tls-port` with TLS, `--ws-port`; a negative port is off),
 * each failure naming its flag, and returns them plain TCP first, as they are logged. With
 * `startedHere` a TLS port listens in plain TCP: the server starts TLS itself after a balancer's
 * PROXY header. `kept` gets each listener as it opens, so the caller can close those opened
 * before a failure.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { openPorts } from "./listen.ts";
 * const ports = { host: "127.0.0.1", port: 0, tlsPort: 0, wsPort: 0 };
 * const opened = openPorts(ports, null, () => {});
 * assert.deepEqual(opened.map(([, transport]) => transport), ["tcp", "ws"]);
 * for (const [listener] of opened) listener.close();
 * ```
 */
export function openPorts(
  ports: { host: string; port: number; tlsPort: number; wsPort: number },
  tls: { pems: { cert: string; key: string }; files: string; startedHere: boolean } | null,
  kept: (listener: Deno.Listener) => void,
): [Deno.Listener, PortTransport][] {
  const { host: hostname, port, tlsPort, wsPort } = ports;
  const tlsFiles = tls?.files;
  const listenTls = (port: number): Deno.Listener =>
    tls!.startedHere
      ? Deno.listen({ hostname, port })
      : Deno.listenTls({ hostname, port, ...tls!.pems });
  const opened: [Deno.Listener, PortTransport][] = [];
  const open = (
    flag: string,
    port: number,
    transport: PortTransport,
    listen: () => Deno.Listener,
  ) => {
    const listener = openNamed({ flag, host: hostname, port, tlsFiles }, listen);
    kept(listener);
    opened.push([listener, transport]);
  };
  if (tls !== null) open("tls-port", tlsPort, "tls", () => listenTls(tlsPort));
  if (port >= 0) open("port", port, "tcp", () => Deno.listen({ hostname, port }));
  if (wsPort >= 0) {
    if (tls === null) open("ws-port", wsPort, "ws", () => Deno.listen({ hostname, port: wsPort }));
    else open("ws-port", wsPort, "wss", () => listenTls(wsPort));
  }
  const order: PortTransport[] = ["tcp", "tls", "ws", "wss"];
  return opened.sort((a, b) => order.indexOf(a[1]) - order.indexOf(b[1]));
}

/** Accept errors that are one queued peer's, not the listener's: no backoff for them. */
const PEER_GONE = [Deno.errors.NotConnected, Deno.errors.ConnectionAborted];
/** After a failed accept (EMFILE, say) the loop waits this long, doubling up to the maximum. */
const ACCEPT_BACKOFF_MIN_MS = 100;
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** `accept-error` is warned at most once per this long (with a count of those suppressed). */
const ACCEPT_WARNING_INTERVAL_MS = 1000;

/**
 * Hands each connection `listener` accepts to `accept` until `stopping()` or the listener is
 * closed. A failed accept that is the listener's (out of descriptors, say) is warned about at
 * most once a second and backed off from, 100 ms doubling to 1 s, so the loop neither spins nor
 * floods the log; one that is a queued peer's own (it reset while waiting: a balancer giving up)
 * costs no wait.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { acceptEach } from "./listen.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = Promise.withResolvers<Deno.Conn>();
 * const loop = acceptEach(listener, {
 *   accept: accepted.resolve,
 *   stopping: () => false,
 *   warn: () => {},
 * });
 * const { port } = listener.addr as Deno.NetAddr;
 * const client = await Deno.connect({ hostname: "127.0.0.1", port });
 * const conn = await accepted.promise;
 * assert.equal((conn.remoteAddr as Deno.NetAddr).port, (client.localAddr as Deno.NetAddr).port);
 * conn.close();
 * client.close();
 * listener.close();
 * await loop; // ends once the listener is closed
 * ```
 */
export async function acceptEach(
  listener: Deno.Listener,
  on: {
    accept: (conn: Deno.Conn) => void;
    stopping: () => boolean;
    warn: (fields: { error: string; suppressed: number }) => void;
  },
): Promise<void> {
  let backoffMs = 0;
  const errors = new RateLimitedWarning(ACCEPT_WARNING_INTERVAL_MS);
  while (!on.stopping()) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (on.stopping() || error instanceof Deno.errors.BadResource) return;
      // A peer that reset while queued (a balancer giving up) fails only its own accept; a
      // backoff for it drained a backlog of them one a second (bench/failover.ts).
      if (PEER_GONE.some((kind) => error instanceof kind)) continue;
      const suppressed = errors.due(performance.now());
      if (suppressed !== null) on.warn({ error: String(error), suppressed });
      backoffMs = Math.min(ACCEPT_BACKOFF_MAX_MS, Math.max(ACCEPT_BACKOFF_MIN_MS, backoffMs * 2));
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      continue;
    }
    backoffMs = 0;
    on.accept(conn);
  }
}

const SERVER_FULL = encodeError("?", "server-full");

/** Tells a line client (TCP or TLS) the server has no room for it, then closes its socket. */
export function refuseFull(socket: ByteSocket): void {
  socket.write(SERVER_FULL).catch(() => {}).finally(() => closeQuietly(socket));
}
