/**
 * Command-line flags and their environment variables: one table that drives parsing, defaults
 * and `--help`, so the three never disagree.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { isPostgresUrl } from "../store/open_store.ts";
import { normalizeOrigin } from "../protocol/origin.ts";

/** Parley's version, printed by `--version`. */
export const VERSION = "0.1.0";

/** Everything the server and the admin commands are configured with. */
export interface Config {
  host: string;
  port: number;
  db: string;
  stampSender: boolean;
  maxLineBytes: number;
  loginTimeoutMs: number;
  maxRooms: number;
  maxTargets: number;
  maxConnections: number;
  maxPendingBytes: number;
  rateBurst: number;
  ratePerSecond: number;
  hashCost: number;
  tlsCert: string;
  tlsKey: string;
  tlsPort: number;
  logLevel: string;
  maxLoginFailures: number;
  wsPort: number;
  wsOrigins: string[];
  web: boolean;
  logFormat: string;
  metricsPort: number;
  metricsHost: string;
  cluster: string;
  nodeId: string;
  nodeTtlMs: number;
}

/** `list`: a repeatable flag (`--ws-origin A --ws-origin B`), or a comma-separated variable. */
type Kind = "string" | "integer" | "boolean" | "list";

interface ServerFlag {
  flag: string;
  key: keyof Config;
  kind: Kind;
  default: string | number | boolean | readonly string[];
  help: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

/** The server flags, in --help order. Each also reads PARLEY_<FLAG> from the environment. */
export const SERVER_FLAGS: readonly ServerFlag[] = [
  { flag: "host", key: "host", kind: "string", default: "0.0.0.0", help: "address to listen on" },
  {
    flag: "port",
    key: "port",
    kind: "integer",
    default: 7777,
    min: -1,
    max: 65535,
    help: "plain TCP port (0: any free port; --port=-1: no plain TCP, only TLS or WebSocket)",
  },
  {
    flag: "db",
    key: "db",
    kind: "string",
    default: "parley.db",
    help: "SQLite database file, or a postgres://user:pass@host:port/dbname URL",
  },
  {
    flag: "stamp-sender",
    key: "stampSender",
    kind: "boolean",
    default: false,
    help: "deliver messages as 3:<sender>:<message>",
  },
  {
    flag: "max-line-bytes",
    key: "maxLineBytes",
    kind: "integer",
    default: 65536,
    min: 64,
    max: 16 << 20,
    help: "longest line a client may send",
  },
  {
    flag: "login-timeout-ms",
    key: "loginTimeoutMs",
    kind: "integer",
    default: 30000,
    min: 1,
    max: 86_400_000,
    help: "close connections that are not logged in after this long",
  },
  {
    flag: "max-rooms",
    key: "maxRooms",
    kind: "integer",
    default: 10000,
    min: 0,
    max: 10_000_000,
    help: "most rooms there may be",
  },
  {
    flag: "max-targets",
    key: "maxTargets",
    kind: "integer",
    default: 100,
    min: 1,
    max: 100_000,
    help: "most distinct users one 3:2 may name",
  },
  {
    flag: "max-connections",
    key: "maxConnections",
    kind: "integer",
    default: 10000,
    min: 1,
    max: 10_000_000,
    help: "most open connections; the next gets 9:?:server-full",
  },
  {
    flag: "max-pending-bytes",
    key: "maxPendingBytes",
    kind: "integer",
    default: 4 << 20,
    min: 1024,
    max: 1 << 30,
    help: "output a client may leave unread before it is dropped",
  },
  {
    flag: "rate-burst",
    key: "rateBurst",
    kind: "integer",
    default: 2000,
    min: 0,
    max: 100_000_000,
    help: "lines a client may send back to back (0: no flood control)",
  },
  {
    flag: "rate-per-second",
    key: "ratePerSecond",
    kind: "integer",
    default: 500,
    min: 1,
    max: 100_000_000,
    help: "lines a second a client may send sustained",
  },
  {
    flag: "max-login-failures",
    key: "maxLoginFailures",
    kind: "integer",
    default: 10,
    min: 1,
    max: 1000,
    help: "failed logins after which a connection is closed (replies slow down after 3)",
  },
  {
    flag: "hash-cost",
    key: "hashCost",
    kind: "integer",
    default: 15,
    min: 1,
    max: 24,
    help: "scrypt cost of new password hashes, as log2 N",
  },
  { flag: "tls-cert", key: "tlsCert", kind: "string", default: "", help: "TLS certificate (PEM)" },
  { flag: "tls-key", key: "tlsKey", kind: "string", default: "", help: "TLS private key (PEM)" },
  {
    flag: "tls-port",
    key: "tlsPort",
    kind: "integer",
    default: 7778,
    min: 0,
    max: 65535,
    help: "TLS port, used when --tls-cert and --tls-key are given",
  },
  {
    flag: "log-level",
    key: "logLevel",
    kind: "string",
    default: "info",
    choices: ["debug", "info", "warn", "error"],
    help: "least severe log line written",
  },
  {
    flag: "ws-port",
    key: "wsPort",
    kind: "integer",
    default: -1,
    min: -1,
    max: 65535,
    help: "WebSocket port, wss with the TLS flags (-1: off; 0: any free port)",
  },
  {
    flag: "ws-origin",
    key: "wsOrigins",
    kind: "list",
    default: [],
    help:
      "an Origin allowed on --ws-port (repeatable; env: comma-separated); none given: any origin is allowed",
  },
  {
    flag: "web",
    key: "web",
    kind: "boolean",
    default: false,
    help: "serve the web client page at / on --ws-port",
  },
  {
    flag: "log-format",
    key: "logFormat",
    kind: "string",
    default: "text",
    choices: ["text", "json"],
    help: "log lines as key=value text or as JSON objects",
  },
  {
    flag: "metrics-port",
    key: "metricsPort",
    kind: "integer",
    default: -1,
    min: -1,
    max: 65535,
    help: "serve /metrics and /healthz over HTTP on this port (-1: off; 0: any free port)",
  },
  {
    flag: "metrics-host",
    key: "metricsHost",
    kind: "string",
    default: "127.0.0.1",
    help: "address the metrics endpoint listens on",
  },
  {
    flag: "cluster",
    key: "cluster",
    kind: "string",
    default: "",
    help:
      "join the cluster whose bus is this Redis (redis://host:port[/db]); needs a postgres --db",
  },
  {
    flag: "node-id",
    key: "nodeId",
    kind: "string",
    default: "",
    help: "this node's name in the cluster, logs and metrics (default: host name and pid)",
  },
  {
    flag: "node-ttl-ms",
    key: "nodeTtlMs",
    kind: "integer",
    default: 10000,
    min: 500,
    max: 3_600_000,
    help: "how long a silent cluster node keeps its users before the others drop them",
  },
];

/** The admin commands: each runs against the database and exits. */
export const ADMIN_FLAGS = {
  "add-user": { takesName: true, help: "add a user (password from stdin or a prompt)" },
  "remove-user": { takesName: true, help: "remove a user (logs it out of a running server)" },
  "set-password": { takesName: true, help: "change a user's password" },
  "list-users": { takesName: false, help: "print every username, one a line" },
  "list-rooms": { takesName: false, help: "print every room, one a line" },
  "remove-room": { takesName: true, help: "remove a room" },
  backup: {
    takesName: true,
    arg: "FILE",
    help: "write a consistent copy of the database to FILE (safe while the server runs)",
  },
} as const;

/** An admin command's name. */
export type AdminCommand = keyof typeof ADMIN_FLAGS;

/** What the command line asks for. */
export type Invocation =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "serve"; config: Config }
  | { kind: "admin"; command: AdminCommand; name: string; config: Config };

/** A bad flag or value; `main.ts` prints its message and exits non-zero. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The environment variable that sets `flag`: `max-rooms` reads `PARLEY_MAX_ROOMS`. */
export function envName(flag: string): string {
  return "PARLEY_" + flag.toUpperCase().replaceAll("-", "_");
}

/**
 * The environment variables the flags read (`PARLEY_*`), and no others: the compiled binary is
 * granted env access to `PARLEY_*` only, which `Deno.env.toObject()` would exceed.
 *
 * @example Usage
 * ```ts ignore
 * const run = parseInvocation(Deno.args, parleyEnv());
 * ```
 */
export function parleyEnv(
  get: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const spec of SERVER_FLAGS) env[envName(spec.flag)] = get(envName(spec.flag));
  return env;
}

function convert(
  spec: ServerFlag,
  raw: string | boolean | (string | boolean)[],
  source: string,
): string | number | boolean | string[] {
  if (spec.kind === "list") {
    // A flag gives one value per use; a variable gives a comma-separated list.
    const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(",");
    return items.map((item) => item.trim()).filter((item) => item !== "");
  }
  if (Array.isArray(raw)) raw = raw[raw.length - 1];
  if (spec.kind === "boolean") {
    if (typeof raw === "boolean") return raw;
    const word = raw.trim().toLowerCase();
    if (["1", "true", "yes", "on"].includes(word)) return true;
    if (["0", "false", "no", "off", ""].includes(word)) return false;
    throw new UsageError(`${source} must be true or false (got "${raw}")`);
  }
  const text = String(raw);
  if (spec.kind === "string") {
    if (spec.choices && !spec.choices.includes(text)) {
      throw new UsageError(`${source} must be one of ${spec.choices.join(", ")} (got "${text}")`);
    }
    return text;
  }
  const value = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < spec.min! || value > spec.max!) {
    throw new UsageError(
      `${source} must be a whole number from ${spec.min} to ${spec.max} (got "${text}")`,
    );
  }
  return value;
}

/**
 * Reads the command line (and the environment) into an {@linkcode Invocation}. Flags win over
 * environment variables, which win over defaults. Throws {@linkcode UsageError} on anything bad.
 *
 * @example Usage
 * ```ts
 * import { parseInvocation } from "./config.ts";
 * const run = parseInvocation(["--port", "7000"], {});
 * if (run.kind === "serve") console.log(run.config.port); // 7000
 * ```
 */
export function parseInvocation(
  args: string[],
  env: Record<string, string | undefined>,
): Invocation {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
    version: { type: "boolean" },
  };
  for (const spec of SERVER_FLAGS) {
    options[spec.flag] = spec.kind === "list"
      ? { type: "string", multiple: true }
      : { type: spec.kind === "boolean" ? "boolean" : "string" };
  }
  for (const [flag, spec] of Object.entries(ADMIN_FLAGS)) {
    options[flag] = { type: spec.takesName ? "string" : "boolean" };
  }
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${message.split("\n")[0]} (see --help)`);
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const config = {} as Record<string, unknown>;
  for (const spec of SERVER_FLAGS) {
    const fromFlag = values[spec.flag];
    const fromEnv = env[envName(spec.flag)];
    config[spec.key] = fromFlag !== undefined
      ? convert(spec, fromFlag, `--${spec.flag}`)
      : fromEnv !== undefined
      ? convert(spec, fromEnv, envName(spec.flag))
      : spec.default;
  }
  if (Boolean(config.tlsCert) !== Boolean(config.tlsKey)) {
    throw new UsageError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (config.port === -1 && !config.tlsCert && (config.wsPort as number) < 0) {
    throw new UsageError(
      "--port=-1 turns plain TCP off: give --tls-cert and --tls-key (or --ws-port) to serve",
    );
  }
  config.wsOrigins = (config.wsOrigins as string[]).map((origin) => {
    const normalized = normalizeOrigin(origin);
    if (normalized === null) {
      throw new UsageError(
        `--ws-origin must be an origin such as https://game.example (got "${origin}")`,
      );
    }
    return normalized;
  });
  if (config.web && (config.wsPort as number) < 0) {
    throw new UsageError("--web serves the page on the WebSocket port: give --ws-port too");
  }

  if (
    config.cluster !== "" && !/^rediss?:\/\/[^/\s]+(\/\d+)?\/?$/i.test(config.cluster as string)
  ) {
    throw new UsageError(
      `--cluster must be a Redis URL such as redis://127.0.0.1:6379 (got "${config.cluster}")`,
    );
  }
  if ((config.nodeId as string).length > 64 || /[\s\p{Cc}]/u.test(config.nodeId as string)) {
    throw new UsageError("--node-id must be at most 64 characters with no spaces or controls");
  }

  const commands = (Object.keys(ADMIN_FLAGS) as AdminCommand[]).filter((c) =>
    values[c] !== undefined && values[c] !== false
  );
  if (commands.length > 1) {
    throw new UsageError(`give one admin command at a time (got --${commands.join(", --")})`);
  }
  if (commands.length === 1) {
    const command = commands[0];
    const name = typeof values[command] === "string" ? values[command] as string : "";
    if (ADMIN_FLAGS[command].takesName && name === "") {
      const what = "arg" in ADMIN_FLAGS[command] ? "file" : "name";
      throw new UsageError(`--${command} needs a ${what}`);
    }
    return { kind: "admin", command, name, config: config as unknown as Config };
  }
  if (config.cluster !== "" && !isPostgresUrl(config.db as string)) {
    throw new UsageError(
      `--cluster needs --db postgres://…: the nodes must share one store, and ${config.db} is a SQLite file`,
    );
  }
  return { kind: "serve", config: config as unknown as Config };
}

/** The text of `--help`: every flag with its default and its environment variable. */
export function helpText(): string {
  const lines = [
    `Parley ${VERSION}: a text-protocol chat and lobby server.`,
    "",
    "Usage:",
    "  parley [flags]                          run the server",
    "  parley --db FILE --add-user NAME        an admin command (see below), then exit",
    "  parley chat HOST:PORT --user NAME       the terminal client (parley chat --help)",
    "",
    "Server flags (each also read from the environment variable shown):",
  ];
  for (const spec of SERVER_FLAGS) {
    const arg = spec.kind === "boolean" ? "" : spec.kind === "integer" ? " N" : " VALUE";
    const shown = spec.default === "" || (Array.isArray(spec.default) && !spec.default.length)
      ? "none"
      : String(spec.default);
    lines.push(`  --${spec.flag}${arg}`.padEnd(26) + `${spec.help}`);
    lines.push(" ".repeat(26) + `default: ${shown}; env: ${envName(spec.flag)}`);
  }
  lines.push("", "Admin commands (run against --db, then exit):");
  for (const [flag, spec] of Object.entries(ADMIN_FLAGS)) {
    const arg = "arg" in spec ? ` ${spec.arg}` : spec.takesName ? " NAME" : "";
    lines.push(`  --${flag}${arg}`.padEnd(26) + spec.help);
  }
  lines.push("", "Other:", "  --help".padEnd(26) + "print this and exit");
  lines.push("  --version".padEnd(26) + "print the version and exit");
  return lines.join("\n");
}
