/**
 * Starting and stopping the servers under test: Parley (deno run main.ts) and the peers installed
 * with apt (nats-server, redis-server, ngircd, InspIRCd), each on 127.0.0.1 with a fresh port and
 * a config rendered from bench/peers/. Each is stopped by its PID. Also reads a process's CPU
 * time and memory from /proc.
 *
 * @module
 */

import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { taskV8Flags } from "../tests/helpers.ts";
import { PASSWORD, userName } from "./protocols.ts";
import type { Protocol } from "./protocols.ts";

/** The servers the benchmark knows. */
export type ServerName = "parley" | "inspircd" | "ngircd" | "nats" | "redis";

/** Every server, in the order tables show them. */
export const ALL_SERVERS: ServerName[] = ["parley", "inspircd", "ngircd", "nats", "redis"];

/** The protocol each server speaks. */
export const PROTOCOL_OF: Record<ServerName, Protocol> = {
  parley: "parley",
  inspircd: "irc",
  ngircd: "irc",
  nats: "nats",
  redis: "redis",
};

/** A running server. */
export interface RunningServer {
  name: ServerName;
  pid: number;
  /** The port the benchmark uses: the TLS port when started with `tls`. */
  port: number;
  /** SIGTERM by PID, then SIGKILL if it has not exited within a few seconds. */
  stop(): Promise<void>;
  /** What it printed, for error reports. */
  output(): string;
}

const HERE = new URL(".", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** The V8 flags the shipped binary has (deno.json's compile task): Parley runs with them here. */
export const SHIPPED_V8_FLAGS: string[] = taskV8Flags(
  Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
  "compile",
);
const encoder = new TextEncoder();

/** Where each peer's binary is. */
const BINARIES: Record<Exclude<ServerName, "parley">, string> = {
  inspircd: "/usr/sbin/inspircd",
  ngircd: "/usr/sbin/ngircd",
  nats: "/usr/sbin/nats-server",
  redis: "/usr/bin/redis-server",
};

/** Which of the peers are installed. */
export function installedPeers(): ServerName[] {
  return (Object.keys(BINARIES) as (keyof typeof BINARIES)[]).filter((name) => {
    try {
      return Deno.statSync(BINARIES[name]).isFile;
    } catch {
      return false;
    }
  });
}

/** A free loopback port (bound and released; the server binds it a moment later). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * A database with users u0…u(count-1), all with the benchmark password, made once and cached in
 * `cacheDir`. Each user gets its own salted hash at cost 2^10, as tests/helpers.ts seeds them.
 */
export async function seededDatabase(cacheDir: string, count: number): Promise<string> {
  const path = `${cacheDir}/users-${count}.db`;
  try {
    Deno.statSync(path + ".done");
    return path;
  } catch { /* not made yet */ }
  for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(path + suffix).catch(() => {});
  const store = openSqliteStore(path);
  const hasher = new PasswordHasher({ params: scryptParams(10), maxWaiting: 1 << 20 });
  const password = encoder.encode(PASSWORD);
  try {
    const batch = 64;
    for (let i = 0; i < count; i += batch) {
      const names = Array.from({ length: Math.min(batch, count - i) }, (_, k) => userName(i + k));
      const hashes = await Promise.all(names.map(() => hasher.hash(password)));
      for (let k = 0; k < names.length; k++) await store.addUser(names[k], hashes[k]);
    }
  } finally {
    await store.close();
  }
  Deno.writeTextFileSync(path + ".done", "");
  return path;
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  sink: { text: string },
  onText?: () => void,
) {
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      sink.text = (sink.text + chunk).slice(-20_000);
      onText?.();
    }
  } catch { /* closed */ }
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

function stopper(child: Deno.ChildProcess): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  return () => {
    stopping ??= (async () => {
      try {
        Deno.kill(child.pid, "SIGTERM");
      } catch { /* gone */ }
      const exited = child.status.then(() => true);
      const late = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000));
      if (!await Promise.race([exited, late])) {
        try {
          Deno.kill(child.pid, "SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
    })();
    return stopping;
  };
}

/** Options of {@linkcode startServer}. */
export interface StartOptions {
  /** A scratch directory for configs, pid files and the database copy. */
  dir: string;
  /** Parley: the seeded database to copy. */
  seededDb?: string;
  /** Parley: a database to use as it is (a postgres:// URL) instead of a copy of `seededDb`. */
  db?: string;
  /** Parley: extra flags. */
  parleyArgs?: string[];
  /** Parley: deno flags before `main.ts` (for example `--cpu-prof`). */
  denoFlags?: string[];
  /**
   * Serve TLS with this certificate and key (PEM files): the returned port is then the TLS
   * port. A peer gets its bench/peers/<name>-tls.conf appended to its config.
   */
  tls?: { certFile: string; keyFile: string };
}

/** Starts `name` and resolves once it accepts connections. */
export async function startServer(name: ServerName, options: StartOptions): Promise<RunningServer> {
  await Deno.mkdir(options.dir, { recursive: true });
  const out = { text: "" };
  let child: Deno.ChildProcess;
  let port: number;
  if (name === "parley") {
    const db = options.db ?? `${options.dir}/parley.db`;
    if (options.db === undefined && options.seededDb) await Deno.copyFile(options.seededDb, db);
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        ...SHIPPED_V8_FLAGS,
        ...(options.denoFlags ?? []),
        MAIN,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        db,
        "--rate-burst",
        "0",
        "--hash-cost",
        "10",
        "--max-connections",
        "20000",
        "--max-connections-per-address", // every generated client comes from 127.0.0.1
        "0",
        ...(options.tls
          ? [
            "--tls-cert",
            options.tls.certFile,
            "--tls-key",
            options.tls.keyFile,
            "--tls-port",
            "0",
          ]
          : []),
        ...(options.parleyArgs ?? []),
      ],
      cwd: options.dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const listening = Promise.withResolvers<number>();
    // A cluster node's lines carry node=<id> before the event's own fields.
    const listeningLine = options.tls
      ? /listening .*?transport=tls address=\S+:(\d+)/
      : /listening .*?transport=tcp address=\S+:(\d+)/;
    const check = () => {
      const m = out.text.match(listeningLine);
      if (m) listening.resolve(Number(m[1]));
    };
    void collect(child.stderr, out, check);
    void collect(child.stdout, out, check);
    child.status.then((s) => listening.reject(new Error(`parley exited ${s.code}: ${out.text}`)));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      port = await Promise.race([
        listening.promise,
        new Promise<number>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`parley did not start: ${out.text}`)), 20_000);
        }),
      ]);
    } catch (error) {
      await stopper(child)();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  } else {
    const plainPort = freePort();
    // With TLS, the plain port stays open but unused: the TLS lines add a port (or, for NATS,
    // move the one listener to it).
    port = options.tls ? freePort() : plainPort;
    const config = `${options.dir}/${configFile(name)}`;
    Deno.writeTextFileSync(config, peerConfig(name, options, plainPort, port));
    Deno.writeTextFileSync(`${options.dir}/motd.txt`, "Parley benchmark peer\n");
    const args: Record<typeof name, string[]> = {
      inspircd: ["--nofork", "--runasroot", "--config", config],
      ngircd: ["--nodaemon", "--config", config],
      nats: ["-c", config],
      redis: [config],
    };
    child = new Deno.Command(BINARIES[name], {
      args: args[name],
      cwd: options.dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    void collect(child.stderr, out);
    void collect(child.stdout, out);
    const deadline = performance.now() + 15_000;
    for (;;) {
      try {
        const probe = await Deno.connect({ hostname: "127.0.0.1", port });
        probe.close();
        break;
      } catch {
        if (!processAlive(child.pid) || performance.now() > deadline) {
          await stopper(child)();
          throw new Error(`${name} did not start: ${out.text}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
  return { name, pid: child.pid, port, stop: stopper(child), output: () => out.text };
}

function configFile(name: Exclude<ServerName, "parley">, suffix = ""): string {
  return `${name === "nats" ? "nats-server" : name}${suffix}.conf`;
}

/** A peer's config from bench/peers/: its template, and with TLS its TLS lines after. */
function peerConfig(
  name: Exclude<ServerName, "parley">,
  options: StartOptions,
  plainPort: number,
  tlsPort: number,
): string {
  let text = Deno.readTextFileSync(`${HERE}peers/${configFile(name)}`);
  if (options.tls) {
    text += "\n" + Deno.readTextFileSync(`${HERE}peers/${configFile(name, "-tls")}`)
      .replaceAll("{{TLS_PORT}}", String(tlsPort))
      .replaceAll("{{CERT}}", options.tls.certFile)
      .replaceAll("{{KEY}}", options.tls.keyFile);
  }
  return text.replaceAll("{{PORT}}", String(plainPort)).replaceAll("{{DIR}}", options.dir);
}

/**
 * Where the benchmark's processes run: the server on the first core, the load generators on the
 * others, so that neither takes the other's CPU (as the issues' reference runs were taken). Null
 * on a single core, or without `taskset` (util-linux).
 */
export function coreSplit(): { server: string; generators: string } | null {
  const cores = navigator.hardwareConcurrency;
  if (cores < 2) return null;
  try {
    new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync();
  } catch {
    return null;
  }
  return { server: "0", generators: cores === 2 ? "1" : `1-${cores - 1}` };
}

/**
 * Binds process `pid` and every thread it has to `cpus` (a taskset list such as "0" or "1-3");
 * threads it starts later inherit the binding. Throws, naming the pid, if taskset fails.
 */
export function pinProcess(pid: number, cpus: string): void {
  const out = new Deno.Command("taskset", {
    args: ["--all-tasks", "--cpu-list", "--pid", cpus, String(pid)],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!out.success) {
    throw new Error(`taskset could not pin pid ${pid}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** CPU seconds (user + system, all threads) that process `pid` has used. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** A field of /proc/PID/status in KiB: VmRSS (now) or VmHWM (peak). */
export function memoryKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine has spent busy (not idle, not waiting on I/O) since boot. */
export function machineBusySeconds(): number {
  try {
    const first = Deno.readTextFileSync("/proc/stat").split("\n")[0];
    const ticks = first.trim().split(/\s+/).slice(1).map(Number);
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - ticks[3] - ticks[4]) / 100;
  } catch {
    return NaN;
  }
}

/**
 * Each server's version (Parley: its Deno's), as the report names them; "not installed" or "?"
 * where it cannot be read.
 */
export function serverVersions(servers: ServerName[]): Record<string, string> {
  const run = (cmd: string, args: string[]) => {
    try {
      const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
      return (new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr))
        .split("\n").find((l) => l.trim() !== "")?.trim() ?? "?";
    } catch {
      return "not installed";
    }
  };
  const v: Record<string, string> = { parley: `deno ${Deno.version.deno}` };
  for (const s of servers) {
    if (s === "inspircd") v[s] = run("dpkg-query", ["-W", "-f=${Version}", "inspircd"]);
    if (s === "ngircd") v[s] = run("dpkg-query", ["-W", "-f=${Version}", "ngircd"]);
    if (s === "nats") v[s] = run("/usr/sbin/nats-server", ["--version"]);
    if (s === "redis") v[s] = run("/usr/bin/redis-server", ["--version"]);
  }
  return v;
}
