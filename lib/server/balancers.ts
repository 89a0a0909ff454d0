/**
 * Sockets from the load balancers listed in `--proxy-protocol`: each must start with a PROXY
 * header (v1 or v2) naming the client, and the client's address is then the connection's for
 * everything (the per-address cap, the login throttle, the hasher's fair queue, logs). On the TLS
 * ports the header comes before the TLS handshake, so with `--proxy-protocol` those ports accept
 * plain TCP and start TLS themselves (tls_socket.ts). On the WebSocket port a listed address may
 * instead be an HTTP proxy: a socket that does not start with a PROXY signature is read as HTTP,
 * and its client is the last hop of `X-Forwarded-For`. A listed socket with neither is closed,
 * logged and counted; sockets from any other address are served as before, headers and all.
 *
 * @module
 */

import type { Logger } from "../observe/log.ts";
import type { Metrics } from "../observe/metrics.ts";
import { AddressList } from "../transport/address_list.ts";
import {
  type ByteSocket,
  lastForwardedFor,
  PrefixedSocket,
  readBalancerPrefix,
} from "../transport/proxied_socket.ts";
import { serveTlsOver, type TlsPems } from "../transport/tls_socket.ts";
import { type ClientOf, closeQuietly, refuseWebSocket } from "../transport/websocket.ts";
import type { Admission } from "./admission.ts";
import { RateLimitedWarning } from "./admission.ts";
import { type PortTransport as Transport, refuseFull } from "./listen.ts";

/** Rejected balancer sockets are logged at most once per this long (with a count). */
const WARNING_INTERVAL_MS = 1000;

/** A socket ready to serve: its client's address, and for an HTTP proxy how to find it. */
export interface Opened {
  socket: ByteSocket;
  /** The client's address, counted in admission (released by whoever closes the socket). */
  address: string;
  /** Behind an HTTP proxy: names (and counts) the client from the request head. */
  clientOf?: ClientOf;
  /** For `clientOf`: the address it counted, or null while none (release that one). */
  named?: () => string | null;
}

/**
 * The balancers' door: which peers are balancers, and each one's socket turned into its client's.
 *
 * @example Usage
 * ```ts ignore
 * const config = { proxyProtocol: ["10.0.0.5"], headerTimeoutMs: 10_000 };
 * const gate = new BalancerGate(config, admission, metrics, log, null);
 * if (gate.listed(peer)) {
 *   const opened = await gate.open(conn, "tcp");
 *   if (opened !== null) serveTcp(opened.socket, context);
 * }
 * ```
 */
export class BalancerGate {
  readonly #list: AddressList;
  readonly #timeoutMs: number;
  readonly #admission: Admission;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #tls: TlsPems | null;
  readonly #rejections = new RateLimitedWarning(WARNING_INTERVAL_MS);
  /** Sockets still being read for their header (closed at shutdown). */
  readonly #pending = new Set<ByteSocket>();
  /** Shutting down: the headers cut short are not the balancers' fault. */
  #closing = false;

  /**
   * @param config `--proxy-protocol` and `--header-timeout-ms` (for the PROXY header, as for an
   *   HTTP head)
   * @param tls the TLS ports' certificate, when there are TLS ports
   */
  constructor(
    config: { proxyProtocol: readonly string[]; headerTimeoutMs: number },
    admission: Admission,
    metrics: Metrics,
    log: Logger,
    tls: TlsPems | null,
  ) {
    this.#list = AddressList.parse(config.proxyProtocol);
    this.#timeoutMs = config.headerTimeoutMs;
    [this.#admission, this.#metrics, this.#log, this.#tls] = [admission, metrics, log, tls];
  }

  /** Whether any balancer is listed (and so the TLS ports start TLS themselves). */
  get active(): boolean {
    return !this.#list.empty;
  }

  /** Whether `peer` is a listed balancer. */
  listed(peer: string): boolean {
    return this.#list.has(peer);
  }

  /** TLS over a plain socket on a TLS port (a direct client's, when the gate is active). */
  tlsOver(socket: ByteSocket): ByteSocket {
    return serveTlsOver(socket, this.#tls!);
  }

  /** Closes the sockets still sending their header. */
  closeAll(): void {
    this.#closing = true;
    for (const socket of this.#pending) closeQuietly(socket);
  }

  /**
   * A balancer's socket, counted in admission with {@linkcode Admission.admitUnnamed}: reads its
   * header and resolves to the client's socket, counted under the client's address; or null
   * when the socket was closed (no valid header, or the client's address is full), the count
   * released.
   */
  async open(conn: Deno.Conn, transport: Transport): Promise<Opened | null> {
    const [admission, metrics, timeoutMs] = [this.#admission, this.#metrics, this.#timeoutMs];
    const balancer = (conn.remoteAddr as Deno.NetAddr).hostname;
    const webSocket = transport === "ws" || transport === "wss";
    this.#pending.add(conn);
    const prefix = await readBalancerPrefix(conn, timeoutMs, webSocket);
    this.#pending.delete(conn);
    if (prefix.kind === "failed") {
      if (!this.#closing) this.#reject(balancer, transport, prefix.why);
      closeQuietly(conn);
      admission.release(null);
      return null;
    }
    const tls = (socket: ByteSocket) =>
      transport === "tls" || transport === "wss" ? this.tlsOver(socket) : socket;
    if (prefix.kind === "http") {
      const socket = tls(new PrefixedSocket(conn, prefix.rest, balancer, 0));
      return this.#forwarded(socket, balancer, transport);
    }
    const address = prefix.address ?? balancer; // LOCAL, UNKNOWN: the balancer's own
    const socket = tls(new PrefixedSocket(conn, prefix.rest, address, prefix.port));
    const refused = admission.name(address);
    if (refused !== null) {
      this.#full(address, transport);
      admission.release(null);
      if (webSocket) void refuseWebSocket(socket);
      else refuseFull(socket);
      return null;
    }
    metrics.proxiedConnections++;
    return { socket, address };
  }

  /** An HTTP proxy's socket: its client comes from `X-Forwarded-For` once the head is read. */
  #forwarded(socket: ByteSocket, balancer: string, transport: Transport): Opened {
    const [admission, metrics] = [this.#admission, this.#metrics];
    let named: string | null = null;
    const clientOf: ClientOf = (head) => {
      const address = lastForwardedFor(head.headers.get("x-forwarded-for"));
      if (address === null) {
        this.#reject(balancer, transport, "neither a PROXY header nor X-Forwarded-For");
        return null;
      }
      if (admission.name(address) !== null) {
        this.#full(address, transport);
        return null;
      }
      metrics.proxiedConnections++;
      return named = address;
    };
    return { socket, address: balancer, clientOf, named: () => named };
  }

  /** A client past its per-address cap: logged as admission's refusals are, rate-limited. */
  #full(address: string, transport: Transport): void {
    const suppressed = this.#rejections.due(performance.now(), `${transport} full`);
    if (suppressed !== null) {
      this.#log.warn("server-full", { address, transport, limit: "per-address", suppressed });
    }
  }

  #reject(balancer: string, transport: Transport, why: string): void {
    this.#metrics.proxyHeaderRejected++;
    const suppressed = this.#rejections.due(performance.now(), transport);
    if (suppressed !== null) {
      this.#log.warn("proxy-header-rejected", { balancer, transport, why, suppressed });
    }
  }
}
