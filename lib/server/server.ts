/**
 * The running server: opens the store, builds the hub, listens on TCP (and TLS), hands each
 * accepted socket to a {@linkcode Connection}, follows the admin CLI's changes, and shuts down
 * cleanly.
 *
 * @module
 */

import { Admission, RateLimitedWarning } from "./admission.ts";
import { BalancerGate, type Opened } from "./balancers.ts";
import { type Config, defaultNodeId } from "./config.ts";
import type { Connection } from "../transport/connection.ts";
import type { ConnectionContext } from "../transport/connection_context.ts";
import { redactUrl } from "../cluster/bus_url.ts";
import { ClusterLink } from "../cluster/link.ts";
import { Hub } from "../hub/hub.ts";
import { hubEdge } from "./hub_edge.ts";
import {
  acceptEach,
  checkPems,
  openNamed,
  openPorts,
  type PortTransport,
  readPem,
  refuseFull,
} from "./listen.ts";
import { ResumeTokens } from "./resume_tokens.ts";
import { StoreFollower } from "./store_follower.ts";
import { describeError, type Logger } from "../observe/log.ts";
import { LoginThrottle } from "../transport/login_throttle.ts";
import { Metrics, type MetricsServer, serveMetrics } from "../observe/metrics.ts";
import { PasswordHasher, scryptParams } from "./password.ts";
import { readiness } from "./readiness.ts";
import { openStore } from "../store/open_store.ts";
import type { Store } from "../store/store.ts";
import { serveTcp } from "../transport/tcp.ts";
import { WriteLinger } from "../transport/write_linger.ts";
import type { ByteSocket } from "../transport/proxied_socket.ts";
import {
  closeQuietly,
  refuseWebSocket,
  serveWebSocket,
  type WebSocketOptions,
} from "../transport/websocket.ts";

/** The largest read buffer, a busy connection's (an idle one reads into 512 bytes: see tcp.ts). */
const READ_BUFFER_BYTES = 16 * 1024;

/** Sockets being refused at once (while full) beyond which more are closed without an answer. */
const MAX_REFUSING = 64;
/** `accept-error` and `server-full` are logged at most once per this long (with a count). */
const WARNING_INTERVAL_MS = 1000;
/** The drain closes a batch of connections this often (so --drain-ms / this many batches). */
const DRAIN_STEP_MS = 100;

/** A listening address, as logged and as tests read it. */
export interface ListenAddress {
  transport: PortTransport;
  hostname: string;
  port: number;
}

/**
 * A Parley server.
 *
 * @example Usage
 * ```ts ignore
 * import { ParleyServer } from "./server.ts";
 * const server = await ParleyServer.start(config, log);
 * console.log(server.addresses); // [{ transport: "tcp", hostname: "0.0.0.0", port: 7777 }]
 * await server.shutdown();
 * ```
 */
export class ParleyServer {
  readonly hub: Hub;
  readonly addresses: ListenAddress[] = [];
  #store: Store;
  #log: Logger;
  #config: Config;
  #listeners: Deno.Listener[] = [];
  #connections = new Set<Connection>();
  #context: ConnectionContext;
  /** Holds a busy server's writes to gather lines (--write-linger-ms). */
  #linger: WriteLinger;
  /** Follows the admin CLI's changes, and records room use (once started). */
  #follower: StoreFollower | null = null;
  #stopping: Promise<void> | null = null;
  /** Set by {@linkcode ParleyServer.hurry}: the drain's spread is over. */
  #hurried = false;
  /** Ends the drain's current pause early. */
  #wake: () => void = () => {};
  /** The counters every connection increments; shown at /metrics when --metrics-port is set. */
  readonly metrics: Metrics = new Metrics();
  #metricsServer: MetricsServer | undefined;
  /** What the WebSocket port serves, with --ws-port. */
  #webSocketOptions: WebSocketOptions | undefined;
  /** WebSocket sockets still in their HTTP exchange (closed at shutdown). */
  #handshakes = new Set<ByteSocket>();
  /** The balancers of --proxy-protocol, and their sockets' headers. */
  #gate: BalancerGate | null = null;
  /** Every open socket, by address, against --max-connections and its per-address cap. */
  #admission: Admission;
  /** `server-full` warnings, by transport. */
  #refusals = new RateLimitedWarning(WARNING_INTERVAL_MS);
  #refusing = 0;
  /** What WebSocket connections share: closing one leaves the set; its socket may linger. */
  #wsContext: ConnectionContext;
  /** The link to the other nodes, with --cluster. */
  readonly cluster: ClusterLink | null;

  private constructor(config: Config, store: Store, hasher: PasswordHasher, log: Logger) {
    this.#config = config;
    this.#store = store;
    this.#log = log;
    this.cluster = config.cluster === "" ? null : new ClusterLink({
      url: config.cluster,
      caFile: config.clusterCa,
      nodeId: config.nodeId || defaultNodeId(),
      nodeTtlMs: config.nodeTtlMs,
      log,
    });
    this.hub = new Hub({
      work: hubEdge({
        store,
        passwords: hasher,
        claims: this.cluster ?? undefined,
        tokens: new ResumeTokens({ store, ttlMs: config.resumeTtlS * 1000 }),
        onError: (error) => log.error("server-error", { error: describeError(error) }),
      }),
      stampSender: config.stampSender,
      maxRooms: config.maxRooms,
      maxRoomsPerUser: config.maxRoomsPerUser,
      maxTargets: config.maxTargets,
      cluster: this.cluster ?? undefined,
    });
    this.#linger = new WriteLinger(config.writeLingerMs);
    this.#context = {
      hub: this.hub,
      limits: { ...config, readBufferBytes: READ_BUFFER_BYTES },
      throttle: new LoginThrottle({ maxFailuresPerConnection: config.maxLoginFailures }),
      log,
      closed: (connection) => {
        this.#connections.delete(connection);
        this.#admission.release(connection.remoteAddress); // a TCP/TLS socket closes with it
      },
      metrics: this.metrics,
      linger: this.#linger,
    };
    this.#wsContext = { ...this.#context, closed: (c) => this.#connections.delete(c) };
    this.#admission = new Admission(config.maxConnections, config.maxConnectionsPerAddress);
  }

  /** Opens the database and starts listening. Throws (naming the file) if the store cannot open. */
  static async start(config: Config, log: Logger): Promise<ParleyServer> {
    const store = await openStore(config.db);
    let server: ParleyServer | undefined;
    try {
      const hasher = new PasswordHasher({
        params: scryptParams(config.hashCost),
        maxWaiting: config.maxHashQueue,
      });
      await hasher.prepare();
      server = new ParleyServer(config, store, hasher, log);
      server.hub.loadRooms(await store.listRooms());
      server.#follower = await StoreFollower.start(store, server.hub, log);
      if (server.cluster !== null) {
        log.context = { node: server.cluster.nodeId };
        log.info("cluster", { bus: redactUrl(config.cluster), ttl_ms: config.nodeTtlMs });
        await server.cluster.start(server.hub.clusterEvents);
      }
      server.#listen();
      return server;
    } catch (error) {
      // Nothing may stay open (a TCP listener when the TLS one failed, say): the caller exits.
      for (const listener of server === undefined ? [] : server.#listeners) {
        try {
          listener.close();
        } catch { /* already closed */ }
      }
      if (server !== undefined) await server.#follower?.stop();
      await server?.cluster?.close();
      await store.close();
      throw error;
    }
  }

  /** How many connections are open. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Opens every port before serving on any, so a bad certificate or a port in use stops the start
   * with one line and no "listening" before it: TLS files first, then each port, then the logs.
   */
  #listen(): void {
    const { host, port, tlsCert, tlsKey, tlsPort, wsPort, metricsPort, metricsHost } = this.#config;
    const tls = tlsCert && tlsKey
      ? { cert: readPem(tlsCert, "certificate"), key: readPem(tlsKey, "key") }
      : null;
    const tlsFiles = `${tlsCert} and ${tlsKey}`;
    const gate = new BalancerGate(this.#config, this.#admission, this.metrics, this.#log, tls);
    this.#gate = gate;
    // With balancers, a TLS port reads a PROXY header before the handshake: it starts TLS itself.
    if (tls !== null && gate.active) checkPems(tls, tlsFiles);
    if (wsPort >= 0) {
      // WebSocket (and the page) on --ws-port: TLS only when the TLS flags are given.
      const { wsOrigins, web, stampSender } = this.#config;
      const headTimeoutMs = this.#config.headerTimeoutMs;
      this.#webSocketOptions = { origins: wsOrigins, web, stampSender, headTimeoutMs };
    }
    const ports = { host, port, tlsPort, wsPort };
    const tlsSetup = tls && { pems: tls, files: tlsFiles, startedHere: gate.active };
    // Each is kept as it opens, so start() closes it if a later one fails.
    const opened = openPorts(ports, tlsSetup, (listener) => this.#listeners.push(listener));
    if (metricsPort >= 0) {
      const at = { flag: "metrics-port", host: metricsHost, port: metricsPort };
      openNamed(at, () => this.#serveMetrics());
    }
    for (const [listener, transport] of opened) this.#serveListener(listener, transport);
  }

  #serveListener(listener: Deno.Listener, transport: ListenAddress["transport"]): void {
    const address = listener.addr as Deno.NetAddr;
    this.addresses.push({ transport, hostname: address.hostname, port: address.port });
    this.#log.info("listening", { transport, address: `${address.hostname}:${address.port}` });
    void acceptEach(listener, {
      accept: (conn) => this.#accept(conn, transport),
      stopping: () => this.#stopping !== null,
      warn: (fields) => this.#log.warn("accept-error", { transport, ...fields }),
    });
  }

  #accept(conn: Deno.Conn, transport: ListenAddress["transport"]): void {
    const address = (conn.remoteAddr as Deno.NetAddr).hostname;
    const webSocket = transport === "ws" || transport === "wss";
    const balancer = this.#gate!.listed(address);
    const refused = balancer ? this.#admission.admitUnnamed() : this.#admission.admit(address);
    const tls = transport === "tls" || transport === "wss";
    // A TLS port without Deno.listenTls (see #listen) starts TLS itself; a balancer's after its
    // header.
    const socket = tls && this.#gate!.active && !balancer ? this.#gate!.tlsOver(conn) : conn;
    if (refused !== null) {
      const suppressed = this.#refusals.due(performance.now(), transport);
      if (suppressed !== null) {
        const limit = refused === "server-full" ? "total" : "per-address";
        this.#log.warn("server-full", { address, transport, limit, suppressed });
      }
      if (balancer) closeQuietly(conn);
      else if (webSocket) this.#refuseWebSocket(socket);
      else refuseFull(socket);
      return;
    }
    if ("setNoDelay" in conn) {
      const tcp = conn as Deno.TcpConn;
      tcp.setNoDelay(true); // the outbound queue batches; do not wait for ACKs as well
      tcp.setKeepAlive(true); // find dead peers and end their sessions
    }
    if (balancer) {
      void this.#gate!.open(conn, transport).then((o) => o && this.#serveOpened(o, webSocket));
      return;
    }
    this.#serveOpened({ socket, address }, webSocket);
  }

  /** A socket admitted under its client's address (a balancer's: once its header named it). */
  #serveOpened(opened: Opened, webSocket: boolean): void {
    if (this.#stopping !== null) {
      this.#admission.release(opened.clientOf === undefined ? opened.address : null);
      return closeQuietly(opened.socket);
    }
    if (webSocket) this.#serveWebSocket(opened);
    else this.#connections.add(serveTcp(opened.socket, this.#context));
  }

  /** A WebSocket socket: a handshake until it upgrades (or is answered and closed). */
  #serveWebSocket({ socket: conn, address, clientOf, named }: Opened): void {
    this.#handshakes.add(conn);
    const socketClosed = () => this.#admission.release(named === undefined ? address : named());
    const options = this.#webSocketOptions!;
    serveWebSocket(conn, this.#wsContext, options, socketClosed, clientOf).then((connection) => {
      this.#handshakes.delete(conn);
      if (connection === null || connection.isClosed) return; // closed: it left the set already
      if (this.#stopping !== null) connection.close(); // upgraded while shutdown closed the rest
      else this.#connections.add(connection);
    });
  }

  /** One too many on the WebSocket port: answered, boundedly, with server-full. */
  #refuseWebSocket(conn: ByteSocket): void {
    if (this.#refusing >= MAX_REFUSING || this.#stopping !== null) return closeQuietly(conn);
    this.#refusing++;
    refuseWebSocket(conn).finally(() => this.#refusing--);
  }

  #serveMetrics(): void {
    const { metricsHost, metricsPort } = this.#config;
    this.#metricsServer = serveMetrics(
      { hostname: metricsHost, port: metricsPort },
      this.metrics,
      () => ({
        connections: this.#connections.size,
        sessions: this.hub.sessionCount,
        rooms: this.hub.roomCount,
        deliveries: this.hub.deliveries,
        cluster: this.cluster === null ? undefined : {
          node: this.cluster.nodeId,
          up: this.cluster.up,
          state: this.cluster.state,
          silentMs: this.cluster.silentMs,
          remoteSessions: this.hub.remoteSessionCount,
          ...this.cluster.stats,
        },
      }),
      this.#log,
      readiness({
        draining: () => this.#stopping !== null,
        busState: () => this.cluster?.state ?? null,
        probeStore: () => this.#store.lastChange(),
      }),
    );
  }

  /**
   * Stops accepting, then drains: the connections close a batch at a time, spread over
   * --drain-ms, each told `7:shutdown` (with `why`) and `0:-1`, its session ending as any other
   * does (its room hears `5:`, here and on other nodes), so a node behind a balancer hands its
   * users over gradually and they do not all reconnect at once (`/readyz` says `draining` all
   * along). Then it leaves the cluster and closes the database. Safe to call more than once; {@linkcode ParleyServer.hurry} ends the
   * spread.
   */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const listener of this.#listeners) {
        try {
          listener.close();
        } catch { /* already closed */ }
      }
      for (const conn of this.#handshakes) closeQuietly(conn);
      this.#gate?.closeAll();
      await this.#follower?.stop(); // records room use before the drain empties the rooms
      const drained = await this.#drain();
      this.hub.logoutAll(); // anyone the drain did not see (a WebSocket upgraded meanwhile)
      await this.cluster?.close(); // the others drop this node's sessions now, not after the TTL
      const connections = [...this.#connections];
      await Promise.all(connections.map((c) => c.closeAfterFlush()));
      await new Promise((resolve) => setTimeout(resolve, 0)); // let hub.disconnect microtasks run
      await this.#metricsServer?.shutdown(); // until now /readyz said "draining"
      this.#linger.flush(); // no timer left behind
      await this.#store.close();
      this.#log.info("stopped", { connections: drained + connections.length });
    })();
    return this.#stopping;
  }

  /** Stop at once (a second signal): the drain's remaining connections close now. */
  hurry(): void {
    this.#hurried = true;
    this.#wake();
    for (const connection of this.#connections) connection.close();
  }

  /** Closes the connections a batch at a time over --drain-ms; resolves to how many. */
  async #drain(): Promise<number> {
    const connections = [...this.#connections];
    const spreadMs = this.#config.drainMs;
    const batches = Math.max(1, Math.min(connections.length, Math.ceil(spreadMs / DRAIN_STEP_MS)));
    const size = Math.ceil(connections.length / batches);
    this.#log.info("draining", { connections: connections.length, ms: spreadMs });
    const closing: Promise<void>[] = [];
    for (let i = 0; i < connections.length; i += size) {
      if (i > 0 && !this.#hurried) {
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, spreadMs / batches);
          this.#wake = () => (clearTimeout(timer), wake());
        });
      }
      for (const connection of connections.slice(i, i + size)) closing.push(connection.drain());
    }
    if (this.#hurried) { for (const connection of connections) connection.close(); }
    await Promise.all(closing);
    return connections.length;
  }
}
