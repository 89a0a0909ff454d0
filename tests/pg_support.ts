/**
 * A throwaway PostgreSQL for tests: `initdb` into a temporary directory (in /dev/shm when there is
 * room: in memory), `postgres` on a free loopback port with durability switched off (the data is
 * thrown away anyway), one fresh database per test, and a stop that ends the process by its PID
 * and removes the directory.
 *
 * PostgreSQL refuses to run as root, so as root both programs run as the `postgres` OS user (which
 * Debian's package creates) and the directory is handed to it; otherwise they run as we are.
 *
 * @example Usage
 * ```ts ignore
 * import { startPostgres } from "./pg_support.ts";
 * const pg = await startPostgres();
 * try {
 *   const url = await pg.createDatabase(); // postgres://postgres@127.0.0.1:PORT/test_1
 * } finally {
 *   await pg.stop();
 * }
 * ```
 *
 * @module
 */

import { freePort } from "./helpers.ts";

/** A running throwaway PostgreSQL; {@linkcode TestPostgres.stop} must be called. */
export interface TestPostgres {
  /** The loopback port it listens on (the same after {@linkcode TestPostgres.resume}). */
  readonly port: number;
  /** The server process's id (a new one after {@linkcode TestPostgres.resume}). */
  readonly pid: number;
  /** The URL of database `db` (default `postgres`, the one initdb makes). */
  url(db?: string): string;
  /** Creates a new empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server as an outage would (fast shutdown), keeping its data directory. */
  pause(): Promise<void>;
  /** Starts the server again on the same port and data directory, and waits until it is ready. */
  resume(): Promise<void>;
  /**
   * Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the server and every backend it forked: a server
   * that accepts connections and then never answers, as a hung host or a partition looks.
   */
  freeze(frozen: boolean): void;
  /** Stops the server if it runs and removes every file it had. Safe to call more than once. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startPostgres}. */
export interface StartPostgresOptions {
  /** Addresses to listen on besides 127.0.0.1 (they must exist when it starts). */
  listen?: string[];
  /** Networks (CIDR) whose connections are trusted besides loopback's. */
  trust?: string[];
}

/** How long start-up (initdb excluded) may take before the test gives up. */
const READY_TIMEOUT_MS = 20_000;

/** Where `name` (initdb, postgres) is: Debian's newest /usr/lib/postgresql/N/bin, else PATH. */
function pgBinary(name: string): string {
  let newest = -1;
  try {
    for (const entry of Deno.readDirSync("/usr/lib/postgresql")) {
      const version = Number(entry.name);
      if (Number.isFinite(version) && version > newest) newest = version;
    }
  } catch { /* not Debian's layout: fall back to PATH */ }
  return newest < 0 ? name : `/usr/lib/postgresql/${newest}/bin/${name}`;
}

/** The uid and gid of OS user `name`, from /etc/passwd. */
function osUser(name: string): { uid: number; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const fields = line.split(":");
    if (fields[0] === name) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error(`no OS user ${name}: PostgreSQL cannot run as root (install postgresql)`);
}

/** Room enough in /dev/shm for a cluster and its test databases (some containers give 64 MiB). */
const SHM_NEEDED_KIB = 1024 * 1024;

/**
 * /dev/shm when it is a roomy tmpfs, else undefined (the usual temporary directory). Data on disk
 * makes each CREATE DATABASE take about 250 ms here even without fsync; in memory, about 40.
 */
async function memoryTempDir(): Promise<string | undefined> {
  try {
    const { code, stdout } = await new Deno.Command("df", {
      args: ["-Pk", "/dev/shm"],
      stdout: "piped",
      stderr: "null",
    }).output();
    // "Filesystem 1024-blocks Used Available Capacity Mounted on", then one line of numbers.
    const available = Number(
      new TextDecoder().decode(stdout).trim().split("\n").at(-1)?.split(/\s+/)[3],
    );
    return code === 0 && available >= SHM_NEEDED_KIB ? "/dev/shm" : undefined;
  } catch {
    return undefined; // no df, or no /dev/shm
  }
}

/** `program args` as the postgres user when we are root, as ourselves otherwise. */
function command(program: string, args: string[], cwd: string, asRoot: boolean): Deno.Command {
  const [cmd, cmdArgs] = asRoot
    ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", program, ...args]]
    : [program, args];
  return new Deno.Command(cmd, {
    args: cmdArgs,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // LC_ALL=C: a predictable locale whatever the machine's, and no locale warnings from initdb.
    env: { LC_ALL: "C", LANG: "C" },
  });
}

/**
 * Starts a throwaway PostgreSQL (about a second: initdb without fsync, then the server) and
 * resolves once it accepts connections.
 *
 * @example Usage
 * ```ts ignore
 * const pg = await startPostgres();
 * await pg.stop();
 * ```
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<TestPostgres> {
  const asRoot = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "parley-pg-", dir: await memoryTempDir() });
  const data = `${dir}/data`;
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    if (asRoot) {
      const { uid, gid } = osUser("postgres");
      await Deno.chown(dir, uid, gid);
    }
    const init = await command(
      pgBinary("initdb"),
      ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--no-instructions"],
      dir,
      asRoot,
    ).output();
    if (init.code !== 0) {
      throw new Error(`initdb failed: ${new TextDecoder().decode(init.stderr)}`);
    }
    const trusted = (options.trust ?? []).map((net) => `host all all ${net} trust\n`).join("");
    if (trusted !== "") await Deno.writeTextFile(`${data}/pg_hba.conf`, trusted, { append: true });
  } catch (error) {
    await removeDir();
    throw error;
  }

  const port = freePort();
  let server: RunningServer | undefined;
  let databases = 0;
  const start = async () => {
    server = await runServer(data, dir, port, asRoot, options.listen ?? []);
  };
  try {
    await start();
  } catch (error) {
    await removeDir();
    throw error;
  }

  const url = (db = "postgres") => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let stopping: Promise<void> | null = null;
  return {
    port,
    get pid() {
      return server?.pid ?? -1;
    },
    url,
    async createDatabase() {
      const name = `test_${++databases}`;
      await psql(url(), `CREATE DATABASE ${name}`);
      return url(name);
    },
    freeze(frozen: boolean) {
      if (server === undefined) return;
      for (const pid of [server.pid, ...childrenOf(server.pid)]) {
        try {
          Deno.kill(pid, frozen ? "SIGSTOP" : "SIGCONT");
        } catch { /* a backend that has just exited */ }
      }
    },
    async pause() {
      await server?.stop();
      server = undefined;
    },
    async resume() {
      if (server === undefined) await start();
    },
    stop() {
      stopping ??= (async () => {
        await server?.stop();
        server = undefined;
        await removeDir();
      })();
      return stopping;
    },
  };
}

interface RunningServer {
  pid: number;
  stop(): Promise<void>;
}

/** Starts `postgres` on `port` and waits for its "ready to accept connections" line. */
async function runServer(
  data: string,
  dir: string,
  port: number,
  asRoot: boolean,
  listen: string[],
): Promise<RunningServer> {
  const child = command(
    pgBinary("postgres"),
    [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir, // the Unix socket goes here, not in /var/run/postgresql (which may not exist)
      "-c",
      `listen_addresses=${["127.0.0.1", ...listen].join(",")}`,
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=100",
    ],
    dir,
    asRoot,
  ).spawn();

  let log = "";
  const ready = Promise.withResolvers<void>();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      if (log.includes("ready to accept connections")) ready.resolve();
    }
  };
  const drained = Promise.all([read(child.stdout), read(child.stderr)]);
  const exited = child.status.then((status) => {
    ready.reject(new Error(`postgres exited (${status.code}) before it was ready:\n${log}`));
    return status;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`postgres was not ready in ${READY_TIMEOUT_MS} ms:\n${log}`)),
      READY_TIMEOUT_MS,
    );
  });
  const stop = async () => {
    try {
      // SIGINT is PostgreSQL's "fast" shutdown: clients are cut off, as in an outage.
      child.kill("SIGINT");
    } catch { /* already exited */ }
    await exited;
    await drained;
  };
  try {
    await Promise.race([ready.promise, timeout]);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { pid: child.pid, stop };
}

/** The processes whose parent is `pid` (PostgreSQL's backends and helpers), from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // "pid (comm) state ppid ...": comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return children;
}

/** Runs one SQL statement through psql (no client library involved: this sets the stage). */
async function psql(url: string, sql: string): Promise<void> {
  const result = await new Deno.Command(pgBinary("psql"), {
    args: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (result.code !== 0) {
    throw new Error(`psql ${sql}: ${new TextDecoder().decode(result.stderr)}`);
  }
}
