/**
 * The server's flags: one table that gives each {@linkcode Config} field its flag, its default,
 * its bounds and its `--help` line, so parsing, defaults and `--help` never disagree. Each flag
 * also reads `PARLEY_<FLAG>` from the environment.
 *
 * @module
 */

import {
  DEFAULT_CLOSE_FLUSH_MS,
  DEFAULT_DRAIN_MS,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_LOGIN_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_MAX_HASH_QUEUE,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_MAX_LOGIN_FAILURES,
  DEFAULT_MAX_PENDING_BYTES,
  DEFAULT_MAX_ROOMS,
  DEFAULT_MAX_ROOMS_PER_USER,
  DEFAULT_MAX_TARGETS,
  DEFAULT_RATE_BURST,
  DEFAULT_RATE_BURST_BYTES,
  DEFAULT_RATE_BYTES_PER_SECOND,
  DEFAULT_RATE_PER_SECOND,
  DEFAULT_RESUME_TTL_S,
  FREE_LOGIN_FAILURES,
  MAX_LINE_BYTES_CEILING,
} from "../protocol/limits.ts";
import type { LogFormat, LogLevel } from "../observe/log.ts";
import { DEFAULT_WRITE_LINGER_MS } from "../transport/write_linger.ts";
import {
  addresses,
  choice,
  type Flag,
  integer,
  list,
  origin,
  type RawValue,
  text,
  toggle,
  UsageError,
} from "./flag_kinds.ts";

export { type Flag, type RawValue, UsageError };
import { DEFAULT_SCRYPT } from "./password.ts";

/** Everything the server and the admin commands are configured with. */
export interface Config {
  host: string;
  port: number;
  db: string;
  stampSender: boolean;
  maxLineBytes: number;
  loginTimeoutMs: number;
  drainMs: number;
  resumeTtlS: number;
  maxRooms: number;
  maxRoomsPerUser: number;
  maxTargets: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  headerTimeoutMs: number;
  /** The balancers' addresses and blocks (`--proxy-protocol`): their sockets start with PROXY. */
  proxyProtocol: string[];
  maxPendingBytes: number;
  closeFlushMs: number;
  writeLingerMs: number;
  rateBurst: number;
  ratePerSecond: number;
  rateBurstBytes: number;
  rateBytesPerSecond: number;
  hashCost: number;
  maxHashQueue: number;
  tlsCert: string;
  tlsKey: string;
  tlsPort: number;
  logLevel: LogLevel;
  maxLoginFailures: number;
  wsPort: number;
  wsOrigins: string[];
  web: boolean;
  /** The page's public origin (`--web-origin`), or ""; config.ts adds it to `wsOrigins`. */
  webOrigin: string;
  logFormat: LogFormat;
  metricsPort: number;
  metricsHost: string;
  cluster: string;
  clusterCa: string;
  nodeId: string;
  nodeTtlMs: number;
}

const PORT_MAX = 65535;

/**
 * Every {@linkcode Config} field's flag, in `--help` order. The type makes the table complete:
 * a field without a flag, or a flag of the wrong kind, does not compile.
 */
export const FLAGS: { readonly [K in keyof Config]: Flag<Config[K]> } = {
  host: text("host", "0.0.0.0", "address to listen on"),
  port: integer(
    "port",
    7777,
    -1,
    PORT_MAX,
    "plain TCP port (0: any free port; --port=-1: no plain TCP, only TLS or WebSocket)",
  ),
  db: text(
    "db",
    "parley.db",
    "SQLite database file, or a postgres://user:pass@host:port/dbname URL",
  ),
  stampSender: toggle("stamp-sender", "deliver messages as 3:<sender>:<message>"),
  maxLineBytes: integer(
    "max-line-bytes",
    DEFAULT_MAX_LINE_BYTES,
    64,
    MAX_LINE_BYTES_CEILING,
    "longest line a client may send",
  ),
  loginTimeoutMs: integer(
    "login-timeout-ms",
    DEFAULT_LOGIN_TIMEOUT_MS,
    1,
    86_400_000,
    "close connections that are not logged in after this long",
  ),
  drainMs: integer(
    "drain-ms",
    DEFAULT_DRAIN_MS,
    0,
    3_600_000,
    "on SIGTERM, close connections spread over this long (a second signal stops at once)",
  ),
  resumeTtlS: integer(
    "resume-ttl-s",
    DEFAULT_RESUME_TTL_S,
    1,
    365 * 86_400,
    "how long a resume token (6:<user>:<token>) stays good, in seconds",
  ),
  maxRooms: integer("max-rooms", DEFAULT_MAX_ROOMS, 0, 10_000_000, "most rooms there may be"),
  maxRoomsPerUser: integer(
    "max-rooms-per-user",
    DEFAULT_MAX_ROOMS_PER_USER,
    1,
    10_000_000,
    "most rooms one user may create; the next gets 9:2:room-limit",
  ),
  maxTargets: integer(
    "max-targets",
    DEFAULT_MAX_TARGETS,
    1,
    100_000,
    "most distinct users one 3:2 may name",
  ),
  maxConnections: integer(
    "max-connections",
    DEFAULT_MAX_CONNECTIONS,
    1,
    10_000_000,
    "most open connections; the next gets 9:?:server-full",
  ),
  maxConnectionsPerAddress: integer(
    "max-connections-per-address",
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    0,
    10_000_000,
    "most connections from one address (IPv6: one /64), at most 90% of --max-connections " +
      "(0: no cap, e.g. behind a proxy)",
  ),
  headerTimeoutMs: integer(
    "header-timeout-ms",
    DEFAULT_HEADER_TIMEOUT_MS,
    100,
    30_000,
    "time a client on --ws-port has to send its whole HTTP request head (and a balancer its PROXY header)",
  ),
  proxyProtocol: addresses(
    "proxy-protocol",
    "balancers' addresses or CIDR blocks, comma-separated: their connections start with a PROXY header (v1 or v2) naming the client (docs/cluster.md)",
  ),
  maxPendingBytes: integer(
    "max-pending-bytes",
    DEFAULT_MAX_PENDING_BYTES,
    1024,
    1 << 30,
    "output a client may leave unread before it is dropped",
  ),
  closeFlushMs: integer(
    "close-flush-ms",
    DEFAULT_CLOSE_FLUSH_MS,
    0,
    600_000,
    "how long a connection being closed (7:slow, a drain, an error) may take its last lines",
  ),
  writeLingerMs: integer(
    "write-linger-ms",
    DEFAULT_WRITE_LINGER_MS,
    0,
    1000,
    "while the server is busy, how long a client's lines may gather before a write (0: never)",
  ),
  rateBurst: integer(
    "rate-burst",
    DEFAULT_RATE_BURST,
    0,
    100_000_000,
    "lines a client may send back to back (0: no flood control)",
  ),
  ratePerSecond: integer(
    "rate-per-second",
    DEFAULT_RATE_PER_SECOND,
    1,
    100_000_000,
    "lines a second a client may send sustained",
  ),
  rateBurstBytes: integer(
    "rate-burst-bytes",
    DEFAULT_RATE_BURST_BYTES,
    0,
    1 << 30,
    "bytes of 3: lines and of 1/2: replies a client may spend back to back (0: no byte limit)",
  ),
  rateBytesPerSecond: integer(
    "rate-bytes-per-second",
    DEFAULT_RATE_BYTES_PER_SECOND,
    1024,
    1 << 30,
    "bytes a second of those a client may spend sustained",
  ),
  maxLoginFailures: integer(
    "max-login-failures",
    DEFAULT_MAX_LOGIN_FAILURES,
    1,
    1000,
    `failed logins after which a connection is closed (replies slow down after ${FREE_LOGIN_FAILURES})`,
  ),
  maxHashQueue: integer(
    "max-hash-queue",
    DEFAULT_MAX_HASH_QUEUE,
    1,
    1_000_000,
    "password checks that may wait for the hasher; past them a login gets 7:busy",
  ),
  hashCost: integer(
    "hash-cost",
    DEFAULT_SCRYPT.logN,
    1,
    24,
    "scrypt cost of new password hashes, as log2 N",
  ),
  tlsCert: text("tls-cert", "", "TLS certificate (PEM)"),
  tlsKey: text("tls-key", "", "TLS private key (PEM)"),
  tlsPort: integer(
    "tls-port",
    7778,
    0,
    PORT_MAX,
    "TLS port, used when --tls-cert and --tls-key are given",
  ),
  logLevel: choice(
    "log-level",
    "info",
    ["debug", "info", "warn", "error"],
    "least severe log line written",
  ),
  wsPort: integer(
    "ws-port",
    -1,
    -1,
    PORT_MAX,
    "WebSocket port, wss with the TLS flags (-1: off; 0: any free port)",
  ),
  wsOrigins: list(
    "ws-origin",
    "an Origin allowed on --ws-port (repeatable; env: comma-separated); none given: any origin is allowed",
  ),
  web: toggle("web", "serve the web client page at / on --ws-port"),
  webOrigin: origin(
    "web-origin",
    "the page's public origin (https://chat.example), allowed like a --ws-origin; the Host " +
      "header is never trusted for this",
  ),
  logFormat: choice(
    "log-format",
    "text",
    ["text", "json"],
    "log lines as key=value text or as JSON objects",
  ),
  metricsPort: integer(
    "metrics-port",
    -1,
    -1,
    PORT_MAX,
    "serve /metrics and /healthz over HTTP on this port (-1: off; 0: any free port)",
  ),
  metricsHost: text("metrics-host", "127.0.0.1", "address the metrics endpoint listens on"),
  cluster: text(
    "cluster",
    "",
    "join the cluster whose bus is this Redis: redis://host:port[/db], rediss:// (TLS) or " +
      "redis-sentinel://host:port[,host:port...]/MASTER_NAME; needs a postgres --db",
  ),
  clusterCa: text(
    "cluster-ca",
    "",
    "PEM file of the CAs a rediss:// bus's certificate must chain to (default: the system's)",
  ),
  nodeId: {
    ...text("node-id", "", "this node's name in the cluster, logs and metrics"),
    shownDefault: "host name and pid (host-pid)",
  },
  nodeTtlMs: integer(
    "node-ttl-ms",
    10_000,
    500,
    3_600_000,
    "how long a silent cluster node keeps its users before the others drop them",
  ),
};

function isConfigKey(name: string): name is keyof Config {
  return Object.hasOwn(FLAGS, name);
}

/** The {@linkcode Config} fields, in `--help` order. */
export const CONFIG_KEYS: readonly (keyof Config)[] = Object.keys(FLAGS).filter(isConfigKey);

/** A flag as `--help` and the tests see it: which field it sets, and its default. */
export interface ServerFlag {
  key: keyof Config;
  flag: string;
  kind: Flag<unknown>["kind"];
  default: Config[keyof Config];
  help: string;
  shownDefault?: string;
}

/** The server flags, in `--help` order. */
export const SERVER_FLAGS: readonly ServerFlag[] = CONFIG_KEYS.map((key) => {
  const { flag, kind, help, shownDefault } = FLAGS[key];
  return { key, flag, kind, default: FLAGS[key].default, help, shownDefault };
});

/** The admin commands: each runs against the database and exits. */
export const ADMIN_FLAGS = {
  "add-user": { takesName: true, help: "add a user (password from stdin or a prompt)" },
  "remove-user": { takesName: true, help: "remove a user (logs it out of a running server)" },
  "set-password": { takesName: true, help: "change a user's password" },
  "list-users": { takesName: false, help: "print every username, one a line" },
  "list-rooms": { takesName: false, help: "print every room, one a line" },
  "remove-room": { takesName: true, help: "remove a room" },
  "remove-rooms-by": {
    takesName: true,
    arg: "USER",
    help: "remove every room USER made (anyone in them is moved out)",
  },
  "remove-idle-rooms": {
    takesName: true,
    arg: "DURATION",
    help: "remove the rooms nobody used for DURATION (e.g. 30d, 12h; at least 1h)",
  },
  backup: {
    takesName: true,
    arg: "FILE",
    help: "write a consistent copy of the database to FILE (safe while the server runs)",
  },
} as const;

/** An admin command's name. */
export type AdminCommand = keyof typeof ADMIN_FLAGS;

function isAdminCommand(name: string): name is AdminCommand {
  return Object.hasOwn(ADMIN_FLAGS, name);
}

/** The admin commands' names, in `--help` order. */
export const ADMIN_COMMANDS: readonly AdminCommand[] = Object.keys(ADMIN_FLAGS).filter(
  isAdminCommand,
);

/**
 * The environment variable that sets `flag`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { envName } from "./flags.ts";
 * assert.equal(envName("max-rooms"), "PARLEY_MAX_ROOMS");
 * ```
 */
export function envName(flag: string): string {
  return "PARLEY_" + flag.toUpperCase().replaceAll("-", "_");
}
