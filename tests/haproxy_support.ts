/**
 * deploy/haproxy.cfg run for real, for tests/haproxy_test.ts and bench/failover.ts: the file
 * rendered with loopback addresses (and, where asked, other timers), HAProxy started on it, and
 * its admin socket read for each server's state and connections.
 *
 * @module
 */

import type { TestServer } from "./helpers.ts";

/** Where Debian's haproxy package puts the binary. */
export const HAPROXY = "/usr/sbin/haproxy";

/** The documented config. */
export const CONFIG = new URL("../deploy/haproxy.cfg", import.meta.url).pathname;

/** Whether HAProxy is installed. */
export const haproxyInstalled: boolean = (() => {
  try {
    return Deno.statSync(HAPROXY).isFile;
  } catch {
    return false;
  }
})();

/** Replaces `from` in `text`, failing if it is not there (the file changed shape). */
function swap(text: string, from: string | RegExp, to: string): string {
  const found = typeof from === "string" ? text.includes(from) : from.test(text);
  if (!found) throw new Error(`deploy/haproxy.cfg no longer has ${from}`);
  return text.replace(from, to);
}

/** What {@linkcode renderConfig} changes in the file. */
export interface RenderOptions {
  /** The frontend's port, on 127.0.0.1. */
  front: number;
  /** The nodes, in order (`n1`, `n2`, …); the file's servers past these are dropped. */
  nodes: { port: number; metricsPort: number }[];
  /** The admin socket's path. */
  socket: string;
  /** `maxconn` instead of the file's 60,000. */
  maxconn: number;
  /** The health checks' `inter` instead of 2s (e.g. `200ms`). */
  inter?: string;
  /** The `slowstart` instead of 30s. */
  slowstart?: string;
  /** The client, server and tunnel timeouts instead of 1h (e.g. `1500ms`). */
  idle?: string;
  /**
   * The address HAProxy connects to the nodes from (their `--proxy-protocol`), so a client on
   * 127.0.0.1 straight to a node is not taken for HAProxy.
   */
  source?: string;
}

/**
 * The deploy config with loopback addresses, an admin socket, and the changes asked for.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CONFIG, renderConfig } from "./haproxy_support.ts";
 * const text = renderConfig(Deno.readTextFileSync(CONFIG), {
 *   front: 7000,
 *   nodes: [{ port: 7001, metricsPort: 9001 }, { port: 7002, metricsPort: 9002 }],
 *   socket: "/tmp/admin.sock",
 *   maxconn: 100,
 *   inter: "500ms",
 * });
 * assert.match(text, /server n2 127\.0\.0\.1:7002 port 9002/);
 * assert.doesNotMatch(text, /server n3/);
 * assert.match(text, /inter 500ms fall 3/);
 * ```
 */
export function renderConfig(config: string, options: RenderOptions): string {
  let text = swap(config, /^(\s*)bind :7777$/m, `$1bind 127.0.0.1:${options.front}`);
  text = swap(
    text,
    /^(\s*)maxconn 60000$/m,
    `$1maxconn ${options.maxconn}\n$1stats socket ${options.socket} level admin`,
  );
  if (options.source !== undefined) {
    text = swap(
      text,
      /^(\s*)balance leastconn$/m,
      `$1balance leastconn\n$1source ${options.source}`,
    );
  }
  if (options.inter !== undefined) text = swap(text, "inter 2s", `inter ${options.inter}`);
  if (options.slowstart !== undefined) {
    text = swap(text, "slowstart 30s", `slowstart ${options.slowstart}`);
  }
  if (options.idle !== undefined) {
    for (const timeout of ["client", "server", "tunnel"]) {
      text = swap(text, `timeout ${timeout} 1h`, `timeout ${timeout} ${options.idle}`);
    }
  }
  for (let i = 0; new RegExp(`^\\s*server n${i + 1} `, "m").test(text); i++) {
    const node = options.nodes[i];
    const line = new RegExp(`^(\\s*server n${i + 1}) \\S+\\n`, "m");
    text = swap(
      text,
      line,
      node === undefined ? "" : `$1 127.0.0.1:${node.port} port ${node.metricsPort}\n`,
    );
  }
  return text;
}

/** A running HAProxy. */
export interface RunningHaproxy {
  /** Everything it has printed. */
  output(): string;
  /** SIGTERM, and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts HAProxy (`-db`, in the foreground) on the config file `path`.
 *
 * @example Usage
 * ```ts ignore
 * const haproxy = startHaproxy(`${dir}/haproxy.cfg`);
 * await haproxy.stop();
 * ```
 */
export function startHaproxy(path: string): RunningHaproxy {
  const child = new Deno.Command(HAPROXY, {
    args: ["-db", "-f", path],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      output = (output + chunk).slice(-1_000_000);
    }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  return {
    output: () => output,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
      await drained;
    },
  };
}

/** Runs one command on HAProxy's admin socket and returns the answer. */
export async function admin(socket: string, command: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(command + "\n"));
    return await new Response(conn.readable).text();
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed by the readable */ }
    throw error;
  }
}

/** A backend server's state in `show stat`. */
export interface ServerStat {
  status: string;
  scur: number;
}

/** Each server's status (`UP`, `DOWN`, …) and current connections, from `show stat`. */
export async function servers(socket: string): Promise<Map<string, ServerStat>> {
  const [header, ...rows] = (await admin(socket, "show stat")).trim().split("\n");
  const columns = header.replace(/^# /, "").split(",");
  const at = (name: string) => columns.indexOf(name);
  const out = new Map<string, ServerStat>();
  for (const row of rows) {
    const f = row.split(",");
    if (f[at("pxname")] !== "parley_nodes" || f[at("svname")] === "BACKEND") continue;
    out.set(f[at("svname")], { status: f[at("status")], scur: Number(f[at("scur")]) });
  }
  return out;
}

/** Waits until `ok` holds for the servers' stats, or fails with the last stats seen. */
export async function untilServers(
  socket: string,
  ok: (s: Map<string, ServerStat>) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = new Map<string, ServerStat>();
  while (Date.now() < deadline) {
    try {
      last = await servers(socket);
      if (ok(last)) return;
    } catch { /* the socket is not there yet */ }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`HAProxy: no ${what} within ${timeoutMs} ms: ${JSON.stringify([...last])}`);
}

/** The metrics port a server logged (`metrics-listening address=HOST:PORT`). */
export async function metricsPort(server: TestServer): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const match = /metrics-listening address=\S+:(\d+)/.exec(server.log());
    if (match) return Number(match[1]);
    if (Date.now() > deadline) throw new Error(`no metrics port in:\n${server.log()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
