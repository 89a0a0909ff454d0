/**
 * Reads the command line and the `PARLEY_*` environment into what to do: print help or the
 * version, run an admin command, or serve with a checked {@linkcode Config}. The flags
 * themselves are in flags.ts, `--help` and the version in help.ts.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { normalizeOrigin } from "../protocol/origin.ts";
import { isPostgresUrl } from "../store/database_url.ts";
import { parseBusUrl } from "../cluster/bus_url.ts";
import {
  ADMIN_COMMANDS,
  ADMIN_FLAGS,
  type AdminCommand,
  type Config,
  CONFIG_KEYS,
  envName,
  FLAGS,
  type RawValue,
  UsageError,
} from "./flags.ts";

export {
  ADMIN_FLAGS,
  type AdminCommand,
  type Config,
  envName,
  SERVER_FLAGS,
  type ServerFlag,
  UsageError,
} from "./flags.ts";
export { helpText, VERSION } from "./help.ts";

/** What the command line asks for. */
export type Invocation =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "serve"; config: Config }
  | { kind: "admin"; command: AdminCommand; name: string; config: Config };

/** parseArgs' values: every flag that was given. */
type GivenFlags = Record<string, RawValue | undefined>;

/**
 * The environment variables the flags read (`PARLEY_*`), and no others: the compiled binary is
 * granted env access to `PARLEY_*` only, which `Deno.env.toObject()` would exceed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parleyEnv } from "./config.ts";
 * const env = parleyEnv((name) => name === "PARLEY_PORT" ? "7000" : undefined);
 * assert.equal(env.PARLEY_PORT, "7000");
 * assert.equal(env.PARLEY_HOST, undefined);
 * assert.ok(Object.keys(env).every((name) => name.startsWith("PARLEY_")));
 * ```
 */
export function parleyEnv(
  get: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const key of CONFIG_KEYS) env[envName(FLAGS[key].flag)] = get(envName(FLAGS[key].flag));
  return env;
}

/** One setting: the flag if given, else its environment variable, else its default. */
function setting<K extends keyof Config>(
  key: K,
  given: GivenFlags,
  env: Record<string, string | undefined>,
): Config[K] {
  const spec = FLAGS[key];
  const fromFlag = given[spec.flag];
  if (fromFlag !== undefined) return spec.parse(fromFlag, `--${spec.flag}`);
  const fromEnv = env[envName(spec.flag)];
  if (fromEnv !== undefined) return spec.parse(fromEnv, envName(spec.flag));
  return spec.default;
}

/** Every setting, field by field (the type checks that none is missing). */
function readConfig(given: GivenFlags, env: Record<string, string | undefined>): Config {
  const read = <K extends keyof Config>(key: K) => setting(key, given, env);
  return {
    host: read("host"),
    port: read("port"),
    db: read("db"),
    stampSender: read("stampSender"),
    maxLineBytes: read("maxLineBytes"),
    loginTimeoutMs: read("loginTimeoutMs"),
    drainMs: read("drainMs"),
    resumeTtlS: read("resumeTtlS"),
    maxRooms: read("maxRooms"),
    maxRoomsPerUser: read("maxRoomsPerUser"),
    maxTargets: read("maxTargets"),
    maxConnections: read("maxConnections"),
    maxConnectionsPerAddress: read("maxConnectionsPerAddress"),
    headerTimeoutMs: read("headerTimeoutMs"),
    proxyProtocol: read("proxyProtocol"),
    maxPendingBytes: read("maxPendingBytes"),
    closeFlushMs: read("closeFlushMs"),
    writeLingerMs: read("writeLingerMs"),
    rateBurst: read("rateBurst"),
    ratePerSecond: read("ratePerSecond"),
    rateBurstBytes: read("rateBurstBytes"),
    rateBytesPerSecond: read("rateBytesPerSecond"),
    hashCost: read("hashCost"),
    maxHashQueue: read("maxHashQueue"),
    tlsCert: read("tlsCert"),
    tlsKey: read("tlsKey"),
    tlsPort: read("tlsPort"),
    logLevel: read("logLevel"),
    maxLoginFailures: read("maxLoginFailures"),
    wsPort: read("wsPort"),
    // --web-origin is one more allowed origin (docs/websocket.md, "Origins").
    wsOrigins: [...read("wsOrigins"), read("webOrigin")].filter((o) => o !== "").map(checkOrigin),
    web: read("web"),
    webOrigin: read("webOrigin"),
    logFormat: read("logFormat"),
    metricsPort: read("metricsPort"),
    metricsHost: read("metricsHost"),
    cluster: read("cluster"),
    clusterCa: read("clusterCa"),
    nodeId: read("nodeId"),
    nodeTtlMs: read("nodeTtlMs"),
  };
}

function checkOrigin(origin: string): string {
  const normalized = normalizeOrigin(origin);
  if (normalized === null) {
    throw new UsageError(
      `--ws-origin must be an origin such as https://game.example (got "${origin}")`,
    );
  }
  return normalized;
}

/** The rules between settings, which no single flag can check. */
function checkCombinations(config: Config): void {
  if (Boolean(config.tlsCert) !== Boolean(config.tlsKey)) {
    throw new UsageError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (config.port === -1 && !config.tlsCert && config.wsPort < 0) {
    throw new UsageError(
      "--port=-1 turns plain TCP off: give --tls-cert and --tls-key (or --ws-port) to serve",
    );
  }
  if (config.web && config.wsPort < 0) {
    throw new UsageError("--web serves the page on the WebSocket port: give --ws-port too");
  }
  if (config.cluster !== "") {
    try {
      parseBusUrl(config.cluster, config.clusterCa ? "" : undefined); // the CA is read at start
    } catch (error) {
      throw new UsageError(`--cluster: ${(error as Error).message} (got "${config.cluster}")`);
    }
  } else if (config.clusterCa) {
    throw new UsageError("--cluster-ca goes with --cluster rediss://…");
  }
  if (config.nodeId.length > 64 || /[\s\p{Cc}]/u.test(config.nodeId)) {
    throw new UsageError("--node-id must be at most 64 characters with no spaces or controls");
  }
}

/** Reads the flags with parseArgs; a flag it does not know is a {@linkcode UsageError}. */
function readFlags(args: string[]): GivenFlags {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
    version: { type: "boolean" },
  };
  for (const key of CONFIG_KEYS) {
    const { flag, kind } = FLAGS[key];
    options[flag] = kind === "list"
      ? { type: "string", multiple: true }
      : { type: kind === "boolean" ? "boolean" : "string" };
  }
  for (const command of ADMIN_COMMANDS) {
    options[command] = { type: ADMIN_FLAGS[command].takesName ? "string" : "boolean" };
  }
  // parseArgs reads `--port -1` as two flags ("ambiguous"): a number after a flag that takes a
  // value is that value, as `--port=-1` would be.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : "";
    if (options[name]?.type === "string" && /^-\d+$/.test(args[i + 1] ?? "")) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else joined.push(args[i]);
  }
  try {
    return parseArgs({ args: joined, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${message.split("\n")[0]} (see --help)`);
  }
}

/**
 * Reads the command line (and the environment) into an {@linkcode Invocation}. Flags win over
 * environment variables, which win over defaults. Throws {@linkcode UsageError} on anything bad.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseInvocation, UsageError } from "./config.ts";
 * const run = parseInvocation(["--port", "7000"], { PARLEY_MAX_ROOMS: "5" });
 * assert.equal(run.kind, "serve");
 * if (run.kind === "serve") {
 *   assert.equal(run.config.port, 7000);
 *   assert.equal(run.config.maxRooms, 5);
 * }
 * assert.throws(() => parseInvocation(["--port", "http"], {}), UsageError);
 * ```
 */
export function parseInvocation(
  args: string[],
  env: Record<string, string | undefined>,
): Invocation {
  const given = readFlags(args);
  if (given.help) return { kind: "help" };
  if (given.version) return { kind: "version" };

  const config = readConfig(given, env);
  checkCombinations(config);

  const commands = ADMIN_COMMANDS.filter((c) => given[c] !== undefined && given[c] !== false);
  if (commands.length > 1) {
    throw new UsageError(`give one admin command at a time (got --${commands.join(", --")})`);
  }
  if (commands.length === 1) {
    const command = commands[0];
    const value = given[command];
    const name = typeof value === "string" ? value : "";
    const spec = ADMIN_FLAGS[command];
    if (spec.takesName && name === "") {
      throw new UsageError(
        `--${command} needs a ${"arg" in spec ? spec.arg.toLowerCase() : "name"}`,
      );
    }
    return { kind: "admin", command, name, config };
  }
  if (config.cluster !== "" && !isPostgresUrl(config.db)) {
    throw new UsageError(
      `--cluster needs --db postgres://…: the nodes must share one store, and ${config.db} is a SQLite file`,
    );
  }
  return { kind: "serve", config };
}

/**
 * `host-pid`: unique among nodes on one host, and readable in logs (`--node-id`'s default).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultNodeId } from "./config.ts";
 * assert.ok(defaultNodeId().endsWith(`-${Deno.pid}`));
 * ```
 */
export function defaultNodeId(): string {
  let host = "node";
  try {
    host = Deno.hostname();
  } catch {
    // No --allow-sys: the kernel's name for the host is a file anyone may read.
    try {
      host = Deno.readTextFileSync("/proc/sys/kernel/hostname").trim() || host;
    } catch { /* keep "node" */ }
  }
  return `${host}-${Deno.pid}`;
}
