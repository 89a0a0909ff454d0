/**
 * A throwaway Redis for tests and the cluster benchmark: `redis-server` on a free loopback port
 * with persistence off (a restart starts empty, as a lost bus would), its log captured, stopped
 * by its PID and awaited. It speaks to Redis with a few lines of RESP of its own rather than a
 * client library, so the stage a test sets does not depend on the client the code under test
 * uses.
 *
 * @example Usage
 * ```ts ignore
 * import { startRedis } from "./redis_support.ts";
 * const redis = await startRedis();
 * try {
 *   await redis.command("SET", "k", "v"); // "OK"
 *   await redis.restart(); // same port, empty
 * } finally {
 *   await redis.stop();
 * }
 * ```
 *
 * @module
 */

import { bytes, freePort } from "./helpers.ts";

export { freePort };

/** Where Debian's redis-server package puts the server. */
export const REDIS_SERVER = "/usr/bin/redis-server";

/** How long start-up may take before it counts as failed. */
const READY_TIMEOUT_MS = 15_000;
/** How long a SIGTERM may take before the process is killed. */
const STOP_GRACE_MS = 5_000;
/** How long one command may take. */
const COMMAND_TIMEOUT_MS = 10_000;

/** A reply: simple and bulk strings as text, integers as numbers, nil as null, arrays nested. */
export type RespValue = string | number | null | RespValue[];

/** A running throwaway Redis; {@linkcode TestRedis.stop} must be called. */
export interface TestRedis {
  /** `redis://127.0.0.1:PORT`, what `--cluster` takes. */
  readonly url: string;
  /** The loopback port; the same after {@linkcode TestRedis.restart}. */
  readonly port: number;
  /** The server process's id (a new one after a restart; -1 while stopped). */
  readonly pid: number;
  /**
   * Stops the server by its PID and waits for the exit: SIGTERM (a clean shutdown, nothing
   * saved) by default, `SIGKILL` for a crash. Safe to call when already stopped.
   */
  stop(signal?: Deno.Signal): Promise<void>;
  /** Starts it again on the same port (stopping it first if it runs), empty, and waits for PING. */
  restart(): Promise<void>;
  /** `INFO section` (default: the default sections), as Redis prints it. */
  info(section?: string): Promise<string>;
  /** Runs one command on a new connection; a Redis error reply throws. */
  command(...args: (string | number)[]): Promise<RespValue>;
  /** Everything the current and earlier processes have logged. */
  log(): string;
}

/** Options of {@linkcode startRedis}. */
export interface StartRedisOptions {
  /** The port (default: a free one). */
  port?: number;
  /** More `--name value` configuration for redis-server. */
  args?: string[];
  /** The address to bind and reach it on (default 127.0.0.1). */
  host?: string;
  /** A command the server runs under, such as `["ip", "netns", "exec", NS]`. */
  wrap?: string[];
  /**
   * A configuration file's text, written into the server's directory and given first (a
   * sentinel needs one it can rewrite: pass `--sentinel` in `args` too).
   */
  config?: string;
}

/**
 * Starts a throwaway `redis-server` and resolves once it answers PING. Without `options.port`, a
 * port taken by someone else between the pick and the bind is retried with another.
 *
 * @example Usage
 * ```ts ignore
 * const redis = await startRedis();
 * console.log(await redis.info("stats"));
 * await redis.stop();
 * ```
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  const dir = await Deno.makeTempDir({ prefix: "parley-redis-" });
  const logs = { text: "" };
  let server: RunningRedis | undefined;
  let port = options.port ?? freePort();
  const at: RedisPlace = { host: options.host ?? "127.0.0.1", wrap: options.wrap ?? [] };
  try {
    for (let attempt = 1;; attempt++) {
      try {
        server = await runRedis(port, dir, options, logs, at);
        break;
      } catch (error) {
        const taken = /address already in use/i.test(String(error));
        if (!taken || options.port !== undefined || attempt >= 5) throw error;
        port = freePort();
      }
    }
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }

  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    const running = server;
    server = undefined;
    await running?.stop(signal);
  };
  return {
    url: `redis://${at.host}:${port}`,
    port,
    get pid() {
      return server?.pid ?? -1;
    },
    async stop(signal?: Deno.Signal) {
      await stop(signal);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    async restart() {
      await stop();
      await Deno.mkdir(dir, { recursive: true }); // stop() may have removed it
      server = await runRedis(port, dir, options, logs, at);
    },
    async info(section?: string) {
      const reply = await respCommand(
        port,
        section === undefined ? ["INFO"] : ["INFO", section],
        COMMAND_TIMEOUT_MS,
        at.host,
      );
      if (typeof reply !== "string") throw new Error(`INFO replied ${JSON.stringify(reply)}`);
      return reply;
    },
    command: (...args) => respCommand(port, args, COMMAND_TIMEOUT_MS, at.host),
    log: () => logs.text,
  };
}

/**
 * A number from `INFO` output, such as `total_commands_processed` of `INFO stats`.
 *
 * @example Usage
 * ```ts
 * import { infoField } from "./redis_support.ts";
 * infoField("# Stats\r\ntotal_commands_processed:42\r\n", "total_commands_processed"); // 42
 * ```
 */
export function infoField(info: string, field: string): number {
  const match = new RegExp(`^${field}:([-\\d.]+)\\r?$`, "m").exec(info);
  if (match === null) throw new Error(`INFO has no ${field}`);
  return Number(match[1]);
}

/** Where a server runs: the address it binds, and the command it runs under. */
interface RedisPlace {
  host: string;
  wrap: string[];
}

interface RunningRedis {
  pid: number;
  stop(signal: Deno.Signal): Promise<void>;
}

/** Starts redis-server on `port` and waits until it answers PING. */
async function runRedis(
  port: number,
  dir: string,
  options: StartRedisOptions,
  logs: { text: string },
  at: RedisPlace,
): Promise<RunningRedis> {
  const config = options.config === undefined ? [] : [`${dir}/redis.conf`];
  if (options.config !== undefined) await Deno.writeTextFile(config[0], options.config);
  const [program, ...prefix] = [...at.wrap, REDIS_SERVER];
  const child = new Deno.Command(program, {
    args: [
      ...prefix,
      ...config,
      "--port",
      String(port),
      "--bind",
      at.host,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--logfile",
      "", // stdout, which is captured
      "--dir",
      dir, // nothing should be written, but if it were, not into the caller's directory
      ...options.args ?? [],
    ],
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        logs.text = (logs.text + chunk).slice(-64_000);
      }
    } catch { /* closed */ }
  };
  const drained = Promise.all([read(child.stdout), read(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let stopping: Promise<void> | null = null;
  const stop = (signal: Deno.Signal) => {
    stopping ??= (async () => {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), STOP_GRACE_MS);
      });
      if (await Promise.race([status, late]) === "late") {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
      }
      clearTimeout(timer);
      await status;
      await drained;
    })();
    return stopping;
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      await drained;
      throw new Error(`redis-server exited before answering PING:\n${logs.text.slice(-2000)}`);
    }
    try {
      if (await respCommand(port, ["PING"], 1000, at.host) === "PONG") break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await stop("SIGKILL");
      throw new Error(`redis-server did not answer PING in ${READY_TIMEOUT_MS} ms:\n${logs.text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { pid: child.pid, stop };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `args` as a RESP array of bulk strings. */
function encodeCommand(args: (string | number)[]): Uint8Array {
  const parts = args.map((a) => encoder.encode(String(a)));
  return bytes(
    `*${parts.length}\r\n`,
    ...parts.flatMap((part) => [`$${part.length}\r\n`, part, "\r\n"]),
  );
}

/** An error reply, kept apart from a string reply until the whole reply is read. */
class RespError extends Error {}

/**
 * Parses one reply from `buf` at `at`: the value and where the next begins, or null when `buf`
 * holds only part of it.
 */
function parseReply(buf: Uint8Array, at: number): [RespValue | RespError, number] | null {
  const crlf = buf.indexOf(0x0d, at);
  if (crlf === -1 || crlf + 1 >= buf.length) return null;
  const type = String.fromCharCode(buf[at]);
  const line = decoder.decode(buf.subarray(at + 1, crlf));
  const next = crlf + 2;
  switch (type) {
    case "+":
      return [line, next];
    case "-":
      return [new RespError(line), next];
    case ":":
      return [Number(line), next];
    case "$": {
      const length = Number(line);
      if (length < 0) return [null, next];
      if (buf.length < next + length + 2) return null;
      return [decoder.decode(buf.subarray(next, next + length)), next + length + 2];
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: RespValue[] = [];
      let cursor = next;
      let error: RespError | null = null;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, cursor);
        if (item === null) return null;
        if (item[0] instanceof RespError) error ??= item[0];
        else items.push(item[0]);
        cursor = item[1];
      }
      return [error ?? items, cursor];
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(decoder.decode(buf.subarray(at)))}`);
  }
}

/**
 * Sends one command to the Redis on `hostname`:`port` (default 127.0.0.1) over a new connection
 * and returns its reply; an error reply throws.
 *
 * @example Usage
 * ```ts ignore
 * import { respCommand } from "./redis_support.ts";
 * await respCommand(6379, ["PUBLISH", "chan", "hi"]); // subscribers reached
 * ```
 */
export async function respCommand(
  port: number,
  args: (string | number)[],
  timeoutMs = COMMAND_TIMEOUT_MS,
  hostname = "127.0.0.1",
): Promise<RespValue> {
  const conn = await Deno.connect({ hostname, port });
  // A server that never answers must not hang the test: closing the socket ends the read.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    const request = encodeCommand(args);
    let written = 0;
    while (written < request.length) written += await conn.write(request.subarray(written));
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    for (;;) {
      const parsed = buf.length > 0 ? parseReply(buf, 0) : null;
      if (parsed !== null) {
        if (parsed[0] instanceof RespError) throw new Error(`redis: ${parsed[0].message}`);
        return parsed[0];
      }
      const n = await conn.read(chunk).catch(() => null);
      if (n === null) {
        throw new Error(
          timedOut ? `redis: no reply to ${args[0]} in ${timeoutMs} ms` : "redis closed",
        );
      }
      const grown = new Uint8Array(buf.length + n);
      grown.set(buf);
      grown.set(chunk.subarray(0, n), buf.length);
      buf = grown;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}
