/**
 * A socket from a load balancer: its PROXY header is read (within a deadline, bounded by the
 * parser), and what comes after it is served as if it were the client's own socket, with the
 * client's address. {@linkcode ByteSocket} is the little of a `Deno.Conn` the transports use, so
 * such a socket (or a TLS one made over it: tls_socket.ts) goes where a `Deno.Conn` went.
 *
 * @module
 */

import {
  formatAddress,
  looksLikeProxyHeader,
  parseAddress,
  ProxyHeaderParser,
} from "./proxy_header.ts";
import { ReadDeadline } from "./http1.ts";

/** What the transports need of a socket: a `Deno.Conn` fits. */
export interface ByteSocket {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  readonly remoteAddr: Deno.Addr;
  /** True over TLS when the socket is not a `Deno.TlsConn` (TLS served after a PROXY header). */
  readonly secure?: boolean;
}

/** Whether `socket` is TLS: a `Deno.TlsConn` (it has a handshake) or one that says so. */
export function isSecure(socket: ByteSocket): boolean {
  return "handshake" in socket || socket.secure === true;
}

/** The header's reads: one PROXY header is far smaller than this. */
const READ_BYTES = 512;

/**
 * What came first on a balancer's socket: a PROXY header (`address`: the client's, or null to keep
 * the balancer's own, for LOCAL and UNKNOWN), no PROXY signature at all (`http`, only when the
 * caller allows it: the first bytes are kept in `rest`), or why the socket cannot be served.
 */
export type BalancerPrefix =
  | { kind: "proxy"; version: 1 | 2; address: string | null; port: number; rest: Uint8Array }
  | { kind: "http"; rest: Uint8Array }
  | { kind: "failed"; why: string };

/**
 * Reads the PROXY header that starts `conn`, within `timeoutMs` (on a timeout the socket is
 * closed, the only way to end a pending read). With `allowHttp`, a socket whose first bytes are
 * not a PROXY signature is `http` (an HTTP proxy's request, for the WebSocket port).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBalancerPrefix } from "./proxied_socket.ts";
 * const bytes = new TextEncoder().encode("PROXY TCP6 2001:db8::7 ::1 40000 7777\r\n0:bob:pw\n");
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
 * const prefix = await readBalancerPrefix(conn, 1000, false);
 * assert.ok(prefix.kind === "proxy");
 * assert.equal(prefix.address, "2001:db8::7");
 * assert.equal(new TextDecoder().decode(prefix.rest), "0:bob:pw\n");
 * ```
 */
export async function readBalancerPrefix(
  conn: Pick<ByteSocket, "read" | "close">,
  timeoutMs: number,
  allowHttp: boolean,
): Promise<BalancerPrefix> {
  const parser = new ProxyHeaderParser();
  const deadline = new ReadDeadline(conn, timeoutMs);
  try {
    for (let first = true;; first = false) {
      const buffer = new Uint8Array(READ_BYTES);
      const n = await conn.read(buffer);
      if (n === null) return { kind: "failed", why: "closed before a PROXY header" };
      const chunk = buffer.subarray(0, n);
      if (first && allowHttp && !looksLikeProxyHeader(chunk)) return { kind: "http", rest: chunk };
      const result = parser.push(chunk);
      if (result === null) continue;
      if ("error" in result) return { kind: "failed", why: result.error };
      return { kind: "proxy", ...result };
    }
  } catch {
    return { kind: "failed", why: deadline.expired ? "no PROXY header in time" : "reset" };
  } finally {
    deadline.clear();
  }
}

/**
 * A socket whose first reads return bytes already read from it (those after the header), and
 * whose peer is the client the header named.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { PrefixedSocket } from "./proxied_socket.ts";
 * const inner = {
 *   read: () => Promise.resolve(null),
 *   write: (b: Uint8Array) => Promise.resolve(b.length),
 *   close: () => {},
 *   remoteAddr: { transport: "tcp" as const, hostname: "10.0.0.1", port: 1 },
 * };
 * const socket = new PrefixedSocket(inner, new Uint8Array([1, 2, 3]), "192.0.2.9", 5);
 * const buffer = new Uint8Array(2);
 * assert.equal(await socket.read(buffer), 2);
 * assert.equal(await socket.read(buffer), 1);
 * assert.equal(await socket.read(buffer), null);
 * assert.equal((socket.remoteAddr as Deno.NetAddr).hostname, "192.0.2.9");
 * ```
 */
export class PrefixedSocket implements ByteSocket {
  readonly remoteAddr: Deno.NetAddr;
  #inner: ByteSocket;
  #first: Uint8Array;

  constructor(inner: ByteSocket, first: Uint8Array, hostname: string, port: number) {
    this.#inner = inner;
    this.#first = first.slice(); // its own copy: `first` is a view of a reused read buffer
    this.remoteAddr = { transport: "tcp", hostname, port };
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#first.length === 0) return this.#inner.read(buffer);
    const n = Math.min(buffer.length, this.#first.length);
    buffer.set(this.#first.subarray(0, n));
    this.#first = this.#first.subarray(n);
    return Promise.resolve(n);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#inner.write(bytes);
  }

  close(): void {
    this.#inner.close();
  }
}

/**
 * The client an HTTP proxy names: the last hop of `X-Forwarded-For` (the address the proxy itself
 * saw; hops before it are whatever the client claimed), normalized, or null if there is none or
 * it is not an IP address. A port (`192.0.2.1:4000`, `[2001:db8::1]:4000`) is dropped.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { lastForwardedFor } from "./proxied_socket.ts";
 * assert.equal(lastForwardedFor("6.6.6.6, 192.0.2.1"), "192.0.2.1");
 * assert.equal(lastForwardedFor("[2001:DB8:0::1]:443"), "2001:db8::1");
 * assert.equal(lastForwardedFor("unknown"), null);
 * assert.equal(lastForwardedFor(undefined), null);
 * ```
 */
export function lastForwardedFor(header: string | undefined): string | null {
  if (header === undefined) return null;
  let hop = header.slice(header.lastIndexOf(",") + 1).trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed !== null) hop = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(hop)) hop = hop.slice(0, hop.indexOf(":"));
  return normalizeAddress(hop);
}

/**
 * An IP address in text, normalized as {@linkcode formatAddress} writes it, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeAddress } from "./proxied_socket.ts";
 * assert.equal(normalizeAddress("2001:0DB8::0:1"), "2001:db8::1");
 * assert.equal(normalizeAddress("10.1.2.3"), "10.1.2.3");
 * assert.equal(normalizeAddress("10.1.2"), null);
 * ```
 */
export function normalizeAddress(text: string): string | null {
  const bytes = parseAddress(text);
  return bytes === null ? null : formatAddress(bytes);
}
