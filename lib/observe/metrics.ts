/**
 * Counters for operators, and the small HTTP endpoint that shows them.
 *
 * Counting is plain number fields on one {@linkcode Metrics} object that the connection context
 * carries: an increment is a property write, with no allocation, no map lookup and no I/O. The
 * gauges (connections, sessions, rooms) are read from the server and the hub only when someone
 * scrapes `/metrics`. The event loop lag monitor runs only while the endpoint is on.
 *
 * @module
 */

import { describeError, type Logger } from "./log.ts";

/**
 * The server's counters. Every field only grows (Prometheus counters), except the lag figures.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Metrics } from "./metrics.ts";
 * const metrics = new Metrics();
 * metrics.linesIn++;
 * assert.equal(metrics.linesIn, 1);
 * ```
 */
export class Metrics {
  /** Connections accepted (over any transport). */
  connectionsAccepted = 0;
  /** Protocol lines received (blank lines not counted). */
  linesIn = 0;
  /** Bytes read from clients. */
  bytesIn = 0;
  /** Bytes queued for clients. */
  bytesOut = 0;
  /** Clients dropped because their unread output passed --max-pending-bytes. */
  slowConsumerDisconnects = 0;
  /** Failed `0:` lines (unknown user, wrong password, malformed). */
  failedLogins = 0;
  /** Lines refused by flood control (`9:<code>:rate-limited`). */
  rateLimited = 0;
  /** Balancers' connections whose PROXY header (or X-Forwarded-For) named the client. */
  proxiedConnections = 0;
  /** Balancers' connections closed for want of a valid PROXY header (or X-Forwarded-For). */
  proxyHeaderRejected = 0;
  /** The last measured event loop lag, in milliseconds. */
  lagMs = 0;
  /** The largest lag measured since the previous scrape, in milliseconds. */
  lagMaxMs = 0;
}

/** The gauges read at scrape time. */
export interface MetricsGauges {
  connections: number;
  sessions: number;
  rooms: number;
  /** Messages (`3:` lines) handed to recipients, one per recipient: a counter the hub keeps. */
  deliveries: number;
  /** The cluster link, when the node is in a cluster. */
  cluster?: ClusterGauges;
}

/** What a cluster node adds to its metrics: who it is, its bus, and what crossed the bus. */
export interface ClusterGauges {
  /** The node id (`--node-id`). */
  node: string;
  /** Whether the bus is connected and synchronised. */
  up: boolean;
  /** `up`, `syncing` (connected, presence not yet resynchronised) or `down`. */
  state: "down" | "syncing" | "up";
  /** Milliseconds since the bus last delivered a message or answered a heartbeat. */
  silentMs: number;
  /** Sessions this node sees on other nodes. */
  remoteSessions: number;
  /** Commands sent to Redis (PUBLISH and scripts). */
  commands: number;
  /** Delivery bytes published. */
  bytesOut: number;
  /** Messages received from the bus. */
  messagesIn: number;
  /** Bytes received from the bus. */
  bytesIn: number;
  /** Deliveries dropped while the bus was down or stalled. */
  dropped: number;
}

const HELP: [keyof Metrics, string, string][] = [
  ["connectionsAccepted", "parley_connections_accepted_total", "Connections accepted."],
  ["linesIn", "parley_lines_in_total", "Protocol lines received from clients."],
  ["bytesIn", "parley_bytes_in_total", "Bytes read from clients."],
  ["bytesOut", "parley_bytes_out_total", "Bytes queued for clients."],
  [
    "slowConsumerDisconnects",
    "parley_slow_consumer_disconnects_total",
    "Clients dropped for not reading their output.",
  ],
  ["failedLogins", "parley_failed_logins_total", "Failed logins."],
  ["rateLimited", "parley_rate_limited_total", "Lines refused by flood control."],
  [
    "proxiedConnections",
    "parley_proxied_connections_total",
    "Connections from a --proxy-protocol balancer that named their client.",
  ],
  [
    "proxyHeaderRejected",
    "parley_proxy_header_rejected_total",
    "Connections from a --proxy-protocol balancer closed without a valid header.",
  ],
];

/**
 * Renders the counters and gauges as Prometheus text (exposition format 0.0.4). Reading resets
 * the lag maximum, so each scrape sees the worst lag since the one before.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Metrics, renderMetrics } from "./metrics.ts";
 * const text = renderMetrics(new Metrics(), {
 *   connections: 0,
 *   sessions: 3,
 *   rooms: 0,
 *   deliveries: 0,
 * });
 * assert.match(text, /^parley_sessions 3$/m);
 * ```
 */
export function renderMetrics(metrics: Metrics, gauges: MetricsGauges): string {
  const out: string[] = [];
  const gauge = (name: string, help: string, value: number) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
  };
  gauge("parley_connections", "Open connections.", gauges.connections);
  gauge("parley_sessions", "Logged-in sessions.", gauges.sessions);
  gauge("parley_rooms", "Rooms.", gauges.rooms);
  const counter = (name: string, help: string, value: number) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
  };
  for (const [key, name, help] of HELP) counter(name, help, metrics[key]);
  counter("parley_deliveries_total", "Messages (3:) handed to recipients.", gauges.deliveries);
  gauge("parley_event_loop_lag_seconds", "Last measured event loop lag.", metrics.lagMs / 1000);
  gauge(
    "parley_event_loop_lag_max_seconds",
    "Largest event loop lag since the previous scrape.",
    metrics.lagMaxMs / 1000,
  );
  metrics.lagMaxMs = metrics.lagMs;
  const cluster = gauges.cluster;
  if (cluster !== undefined) {
    const node = cluster.node.replaceAll("\\", "\\\\").replaceAll('"', '\\"');
    out.push(
      "# HELP parley_node_info This node's id in the cluster.",
      "# TYPE parley_node_info gauge",
      `parley_node_info{node="${node}"} 1`,
    );
    gauge("parley_bus_up", "1 when the cluster bus is connected and synchronised.", +cluster.up);
    out.push(
      "# HELP parley_bus_state The bus's state: 1 for the current one of down, syncing, up.",
      "# TYPE parley_bus_state gauge",
      ...["down", "syncing", "up"].map((s) =>
        `parley_bus_state{state="${s}"} ${+(s === cluster.state)}`
      ),
    );
    gauge(
      "parley_bus_last_message_age_seconds",
      "Seconds since the bus last delivered a message or answered a heartbeat.",
      Math.round(cluster.silentMs) / 1000,
    );
    gauge("parley_remote_sessions", "Sessions seen on other nodes.", cluster.remoteSessions);
    counter("parley_bus_commands_total", "Commands sent to the bus.", cluster.commands);
    counter("parley_bus_bytes_out_total", "Delivery bytes published.", cluster.bytesOut);
    counter("parley_bus_messages_in_total", "Messages received from the bus.", cluster.messagesIn);
    counter("parley_bus_bytes_in_total", "Bytes received from the bus.", cluster.bytesIn);
    counter(
      "parley_bus_dropped_total",
      "Deliveries dropped: bus down or stalled.",
      cluster.dropped,
    );
  }
  return out.join("\n") + "\n";
}

/** How often the lag monitor wakes up. */
const LAG_INTERVAL_MS = 500;

/** A running metrics endpoint. */
export interface MetricsServer {
  /** Where it listens. */
  readonly hostname: string;
  readonly port: number;
  /** Stops the endpoint and the lag monitor. */
  shutdown(): Promise<void>;
}

/**
 * Whether the node should get new clients: null when ready, else why not (`draining`, `bus
 * down`, …). Asked on every `GET /readyz`.
 */
export type Readiness = () => Promise<string | null>;

/**
 * Serves `GET /metrics` (Prometheus text), `GET /healthz` (`ok` while the process serves) and
 * `GET /readyz` (200 `ready`, or 503 and why not, as `ready` says) on `hostname:port`, and
 * starts the event loop lag monitor. Port 0 picks a free port; the address is logged as
 * `metrics-listening address=HOST:PORT`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Logger } from "./log.ts";
 * import { Metrics, serveMetrics } from "./metrics.ts";
 * const gauges = () => ({ connections: 2, sessions: 1, rooms: 1, deliveries: 5 });
 * const log = new Logger("warn");
 * const endpoint = serveMetrics({ hostname: "127.0.0.1", port: 0 }, new Metrics(), gauges, log);
 * const base = `http://127.0.0.1:${endpoint.port}`;
 * assert.match(await (await fetch(`${base}/metrics`)).text(), /^parley_connections 2$/m);
 * assert.equal(await (await fetch(`${base}/healthz`)).text(), "ok\n");
 * assert.equal((await fetch(`${base}/readyz`)).status, 200);
 * await endpoint.shutdown();
 * ```
 */
export function serveMetrics(
  options: { hostname: string; port: number },
  metrics: Metrics,
  gauges: () => MetricsGauges,
  log: Logger,
  ready: Readiness = () => Promise.resolve(null),
): MetricsServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => {},
    handler: async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method !== "GET" && request.method !== "HEAD") {
        return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
      }
      if (path === "/metrics") {
        return new Response(renderMetrics(metrics, gauges()), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      if (path === "/healthz") return new Response("ok\n");
      if (path === "/readyz") {
        const why = await ready().catch((error) => `not answering: ${describeError(error)}`);
        return why === null
          ? new Response("ready\n")
          : new Response(`not ready: ${why}\n`, { status: 503 });
      }
      return new Response("not found\n", { status: 404 });
    },
  });
  // The lag timer starts once the port is open: a port in use leaves nothing running.
  let expected = performance.now() + LAG_INTERVAL_MS;
  const lagTimer = setInterval(() => {
    const now = performance.now();
    const lag = Math.max(0, now - expected);
    metrics.lagMs = lag;
    if (lag > metrics.lagMaxMs) metrics.lagMaxMs = lag;
    expected = now + LAG_INTERVAL_MS;
  }, LAG_INTERVAL_MS);
  const address = server.addr as Deno.NetAddr;
  log.info("metrics-listening", { address: `${address.hostname}:${address.port}` });
  return {
    hostname: address.hostname,
    port: address.port,
    async shutdown() {
      clearInterval(lagTimer);
      await server.shutdown();
    },
  };
}
