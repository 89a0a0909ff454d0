/**
 * A throwaway Parley cluster for tests: one Redis (the bus), one PostgreSQL (the shared store),
 * and N nodes started as `main.ts --cluster … --node-id … --node-ttl-ms … --db postgres://…`.
 * {@linkcode withCluster} runs a test body against it and always stops every client, node and
 * server it started, whether the body passed or threw; in between a test can kill a node, start
 * it again, and take Redis or PostgreSQL away and back. After it come the helpers the cluster
 * test files share: waiting for a join, a room list or a logout to reach a node, logging in
 * while a node refuses, and the skip when redis-server is missing.
 *
 * @example Usage
 * ```ts ignore
 * import { withCluster } from "./cluster_support.ts";
 * await withCluster({ nodes: 2 }, async (c) => {
 *   const alice = await c.login(0, "alice");
 *   const bob = await c.login(1, "bob");
 *   await alice.send("3:2:bob:hi");
 *   await bob.expect("3:hi");
 * });
 * ```
 *
 * @module
 */

import {
  seedUsers,
  type StartOptions,
  startServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";
import { sessionId, sleep, USERS } from "./e2e_support.ts";
import { startPostgres, type StartPostgresOptions, type TestPostgres } from "./pg_support.ts";
import {
  REDIS_SERVER,
  startRedis,
  type StartRedisOptions,
  type TestRedis,
} from "./redis_support.ts";

/**
 * The node TTL tests use unless they say otherwise: short, so a killed node's users are dropped
 * within a test's patience, and still several heartbeats long.
 */
export const TEST_NODE_TTL_MS = 2000;

/** Options of {@linkcode startNode}. */
export interface NodeOptions {
  /** The bus, `redis://127.0.0.1:PORT`. */
  redis: string;
  /** The shared store, `postgres://…`. */
  db: string;
  /** `--node-id`. */
  nodeId: string;
  /** `--node-ttl-ms` (default {@linkcode TEST_NODE_TTL_MS}). */
  nodeTtlMs?: number;
  /** The port to listen on (default: any free one). */
  port?: number;
  /** More flags. */
  args?: string[];
  /** Environment variables. */
  env?: Record<string, string>;
  /** A command the node runs under, such as `["ip", "netns", "exec", NS]`. */
  wrap?: string[];
}

/**
 * Starts one cluster node and waits until it listens: tests/helpers.ts's
 * {@linkcode startServer} with the cluster flags. Stop it with `stop()` (`stop("SIGKILL")` for a
 * crash).
 *
 * @example Usage
 * ```ts ignore
 * const node = await startNode({ redis: redis.url, db: await pg.createDatabase(), nodeId: "a" });
 * await node.stop();
 * ```
 */
export function startNode(options: NodeOptions): Promise<TestServer> {
  const start: StartOptions = {
    db: options.db,
    env: options.env,
    wrap: options.wrap,
    args: [
      "--cluster",
      options.redis,
      "--node-id",
      options.nodeId,
      "--node-ttl-ms",
      String(options.nodeTtlMs ?? TEST_NODE_TTL_MS),
      // helpers passes --port 0 first; a later --port wins.
      ...(options.port === undefined ? [] : ["--port", String(options.port)]),
      ...(options.args ?? []),
    ],
  };
  return startServer(start);
}

/** Options of {@linkcode Cluster.start} and {@linkcode withCluster}. */
export interface ClusterOptions {
  /** How many nodes to start (default 2); they are `n1`, `n2`, … and indexed from 0. */
  nodes?: number;
  /** Users to add before the nodes start (default: tests/e2e_support.ts's `USERS`). */
  users?: Record<string, string>;
  /** `--node-ttl-ms` of every node (default {@linkcode TEST_NODE_TTL_MS}). */
  nodeTtlMs?: number;
  /** More flags for every node. */
  args?: string[];
  /** Environment variables of every node. */
  env?: Record<string, string>;
  /** Where the parts run, when not all on this machine's loopback (default: loopback). */
  placement?: ClusterPlacement;
  /**
   * The nodes' `--cluster` URL (a Sentinel set's, say) instead of a Redis of the cluster's own;
   * whoever gives it starts and stops what it names. A promise is awaited while PostgreSQL
   * starts.
   */
  bus?: string | Promise<string>;
}

/**
 * Where Redis, PostgreSQL and each node run and are reached, for a cluster spread over network
 * namespaces (tests/netns_support.ts makes one).
 */
export interface ClusterPlacement {
  /** Redis's address and the command it runs under. */
  redis: StartRedisOptions;
  /** The `--cluster` URL of node `i`. */
  redisUrl(i: number): string;
  /** The extra addresses PostgreSQL listens on and the networks it trusts. */
  postgres: StartPostgresOptions;
  /** The command node `i` runs under. */
  nodeWrap(i: number): string[];
  /** The address node `i` listens on, where clients reach it. */
  nodeHost(i: number): string;
  /** The address node `i` reaches PostgreSQL at. */
  dbHost(i: number): string;
}

/** A client a test opened, and the node it was opened on. */
interface Opened {
  node: number;
  client: TestClient;
}

/**
 * Redis, PostgreSQL and the nodes of one test, and the clients it opened. Every method that
 * starts something records it, so {@linkcode Cluster.close} stops it all.
 */
export class Cluster {
  /** The cluster's own Redis, null with {@linkcode ClusterOptions.bus}. */
  readonly #redis: TestRedis | null;
  /** The PostgreSQL server. */
  readonly postgres: TestPostgres;
  /** The one database every node uses. */
  readonly db: string;
  readonly #options: ClusterOptions;
  /** Node i, or null while it is down. */
  readonly #nodes: (TestServer | null)[] = [];
  /** The port node i listened on last, reused when it starts again. */
  readonly #ports: number[] = [];
  readonly #clients: Opened[] = [];

  private constructor(
    redis: TestRedis | null,
    postgres: TestPostgres,
    db: string,
    options: ClusterOptions,
  ) {
    this.#redis = redis;
    this.postgres = postgres;
    this.db = db;
    this.#options = options;
  }

  /** Starts Redis, PostgreSQL (with one fresh database, seeded) and the nodes. */
  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    const [redis, postgres, bus] = await Promise.allSettled([
      options.bus === undefined ? startRedis(options.placement?.redis) : null,
      startPostgres(options.placement?.postgres),
      options.bus,
    ]);
    if (
      redis.status === "rejected" || postgres.status === "rejected" || bus.status === "rejected"
    ) {
      await Promise.allSettled([
        redis.status === "fulfilled" && redis.value?.stop(),
        postgres.status === "fulfilled" && postgres.value.stop(),
      ]);
      throw [redis, postgres, bus].find((r) => r.status === "rejected")!.reason;
    }
    return await Cluster.#startNodes(redis.value, postgres.value, { ...options, bus: bus.value });
  }

  /** Seeds the database and starts the nodes on the servers {@linkcode Cluster.start} started. */
  static async #startNodes(
    redis: TestRedis | null,
    postgres: TestPostgres,
    options: ClusterOptions,
  ): Promise<Cluster> {
    let cluster: Cluster | undefined;
    try {
      const db = await postgres.createDatabase();
      await seedUsers(db, options.users ?? { ...USERS });
      cluster = new Cluster(redis, postgres, db, options);
      // One after another: each node's start-up (migrations are done once, by the first) is
      // then the same every run, and a failure names the node that failed.
      for (let i = 0; i < (options.nodes ?? 2); i++) await cluster.addNode();
      return cluster;
    } catch (error) {
      if (cluster !== undefined) await cluster.close();
      else await Promise.all([redis?.stop(), postgres.stop()]);
      throw error;
    }
  }

  /** The bus: the cluster's own Redis (throws with {@linkcode ClusterOptions.bus}). */
  get redis(): TestRedis {
    if (this.#redis === null) throw new Error("this cluster's bus is not its own Redis");
    return this.#redis;
  }

  /** `--node-id` of node `i`. */
  nodeId(i: number): string {
    return `n${i + 1}`;
  }

  /** How many nodes the cluster has had (running or not). */
  get size(): number {
    return this.#nodes.length;
  }

  /** Node `i`; throws while it is down. */
  node(i: number): TestServer {
    const node = this.#nodes[i];
    if (node === undefined) throw new Error(`no node ${i} (the cluster has ${this.size})`);
    if (node === null) throw new Error(`node ${i} (${this.nodeId(i)}) is down`);
    return node;
  }

  /** Node `i`'s TCP port (the same across its restarts). */
  port(i: number): number {
    return this.node(i).port;
  }

  /** Starts one more node (the next index) and returns its index. */
  async addNode(): Promise<number> {
    const i = this.#nodes.length;
    this.#nodes.push(null);
    await this.startNode(i);
    return i;
  }

  /**
   * Starts node `i` again, with its node id and on its port (a client reconnecting, or a load
   * balancer, finds it where it was). Does nothing if it runs.
   */
  async startNode(i: number): Promise<TestServer> {
    const running = this.#nodes[i];
    if (running) return running;
    const place = this.#options.placement;
    const node = await startNode({
      redis: place?.redisUrl(i) ?? this.#redis?.url ?? String(this.#options.bus),
      db: place ? this.db.replace("@127.0.0.1:", `@${place.dbHost(i)}:`) : this.db,
      nodeId: this.nodeId(i),
      nodeTtlMs: this.#options.nodeTtlMs,
      port: this.#ports[i],
      args: [...place ? ["--host", place.nodeHost(i)] : [], ...this.#options.args ?? []],
      env: this.#options.env,
      wrap: place?.nodeWrap(i),
    });
    this.#nodes[i] = node;
    this.#ports[i] = node.port;
    return node;
  }

  /**
   * Stops node `i` and waits for its exit: SIGTERM is a clean shutdown (it tells the others),
   * SIGKILL a crash (the others notice after the TTL). Resolves to the exit status.
   */
  async stopNode(i: number, signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus | null> {
    const node = this.#nodes[i];
    if (!node) return null;
    this.#nodes[i] = null;
    return await node.stop(signal);
  }

  /** `kill -9` node `i` (a crash) and waits for it to be gone. */
  kill(i: number): Promise<Deno.CommandStatus | null> {
    return this.stopNode(i, "SIGKILL");
  }

  /** Stops node `i` (SIGTERM, or `signal`) and starts it again on the same port. */
  async restartNode(i: number, signal: Deno.Signal = "SIGTERM"): Promise<TestServer> {
    await this.stopNode(i, signal);
    return await this.startNode(i);
  }

  /** Redis goes away (killed: nothing saved, as a crash) until {@linkcode Cluster.startRedis}. */
  stopRedis(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    return this.redis.stop(signal);
  }

  /** Redis comes back on the same port, empty. */
  startRedis(): Promise<void> {
    return this.redis.restart();
  }

  /** Redis restarts at once on the same port and comes back empty. */
  async restartRedis(): Promise<void> {
    await this.redis.stop("SIGKILL");
    await this.redis.restart();
  }

  /** PostgreSQL goes away (a fast shutdown; its data kept) until {@linkcode resumePostgres}. */
  pausePostgres(): Promise<void> {
    return this.postgres.pause();
  }

  /** PostgreSQL comes back on the same port with the same data. */
  resumePostgres(): Promise<void> {
    return this.postgres.resume();
  }

  /** The address node `i` is reached at. */
  host(i: number): string {
    return this.#options.placement?.nodeHost(i) ?? "127.0.0.1";
  }

  /** Opens a connection to node `i` (not logged in); closed by the cluster. */
  async connect(i: number): Promise<TestClient> {
    const client = await TestClient.connect(this.port(i), this.host(i));
    this.#clients.push({ node: i, client });
    return client;
  }

  /**
   * Connects to node `i` and logs in as `user` (a seeded user unless `password` is given),
   * expecting `0:<id>`.
   */
  async login(i: number, user: string, password?: string): Promise<TestClient> {
    const secret = password ?? this.password(user);
    const client = await TestClient.login(this.port(i), user, secret, this.host(i));
    this.#clients.push({ node: i, client });
    return client;
  }

  /** The password `user` was seeded with; throws for a user that was not. */
  password(user: string): string {
    const secret = this.#options.users?.[user] ?? USERS[user];
    if (secret === undefined) throw new Error(`no password for ${user}: not a seeded user`);
    return secret;
  }

  /** Logs `user` into node `i` and joins `room`, expecting `2:<room>:<members>`. */
  async inRoom(i: number, user: string, room: string, members: string): Promise<TestClient> {
    const client = await this.login(i, user);
    await client.send(`2:${room}`);
    await client.expect(`2:${room}:${members}`);
    return client;
  }

  /** Closes the clients opened on node `i`, or every client without `i`. */
  async closeClients(i?: number): Promise<void> {
    const closing: TestClient[] = [];
    for (let k = this.#clients.length - 1; k >= 0; k--) {
      if (i === undefined || this.#clients[k].node === i) {
        closing.push(this.#clients[k].client);
        this.#clients.splice(k, 1);
      }
    }
    await Promise.all(closing.map((c) => c.close()));
  }

  /** What node `i` has logged (the current process's log). */
  log(i: number): string {
    return this.node(i).log();
  }

  /**
   * Closes every client, stops every node, then Redis and PostgreSQL; each by its PID, each
   * awaited. Every step runs even when an earlier one fails; the first failure is rethrown.
   */
  async close(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    };
    await attempt(() => this.closeClients());
    await Promise.all(this.#nodes.map((_, i) => attempt(() => this.stopNode(i))));
    await Promise.all([
      attempt(async () => await this.#redis?.stop()),
      attempt(() => this.postgres.stop()),
    ]);
    if (errors.length > 0) throw errors[0];
  }
}

/**
 * Starts a cluster, runs `body`, and always closes it (clients, nodes, Redis, PostgreSQL). A node
 * that fails to start takes the rest down with it and fails the test with its log.
 *
 * @example Usage
 * ```ts ignore
 * await withCluster({ nodes: 3, nodeTtlMs: 1000 }, async (c) => {
 *   const alice = await c.inRoom(0, "alice", "lobby", "alice");
 *   await c.kill(0);
 * });
 * ```
 */
export async function withCluster(
  options: ClusterOptions,
  body: (cluster: Cluster) => Promise<void>,
): Promise<void> {
  const cluster = await Cluster.start(options);
  try {
    await body(cluster);
  } finally {
    await cluster.close();
  }
}

/**
 * Whether redis-server is installed (every cluster test needs it); when it is not, warns that
 * the tests of `file` are skipped.
 */
export function redisInstalled(file: string): boolean {
  try {
    if (Deno.statSync(REDIS_SERVER).isFile) return true;
  } catch {
    // Not there: skipped, said below.
  }
  console.warn(`SKIPPED ${file}: no ${REDIS_SERVER} (apt-get install redis-server)`);
  return false;
}

/** Whether `pid` is a live process (a zombie counts as gone: it has exited, unreaped). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** `n` milliseconds, rounded, as a log line says them: `"12 ms"`. */
export function ms(n: number): string {
  return `${Math.round(n)} ms`;
}

/** A pool of users, each case of a file taking users of its own. */
export interface UserPool {
  /** Every user of the pool and its password, for {@linkcode ClusterOptions.users}. */
  readonly users: Record<string, string>;
  /** `n` users not taken before; throws once the pool is used up. */
  take(n: number): string[];
}

/** Users `<prefix>01` … `<prefix><count>` (password `pw-<prefix><number>`), taken in order. */
export function userPool(prefix: string, count: number): UserPool {
  const name = (i: number) => `${prefix}${String(i).padStart(2, "0")}`;
  const users: Record<string, string> = {};
  for (let i = 1; i <= count; i++) users[name(i)] = `pw-${prefix}${i}`;
  let next = 1;
  return {
    users,
    take(n: number): string[] {
      if (next + n - 1 > count) throw new Error("the user pool is used up");
      return Array.from({ length: n }, () => name(next++));
    },
  };
}

/**
 * A `t.step` for cases that share one cluster: each step closes every client of `c` when it
 * ends, passed or failed, so the next starts with none.
 */
export function closingSteps(
  t: Deno.TestContext,
  c: Cluster,
): (name: string, body: () => Promise<void>) => Promise<boolean> {
  return (name, body) =>
    t.step(name, async () => {
      try {
        await body();
      } finally {
        await c.closeClients();
      }
    });
}

/** Waits until node `i` has logged `event` at least `count` times. */
export async function logged(
  c: Cluster,
  i: number,
  event: string,
  count: number,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pattern = new RegExp(` ${event}( |$)`, "gm");
  while ((c.log(i).match(pattern) ?? []).length < count) {
    if (Date.now() > deadline) {
      throw new Error(`node ${i} did not log ${event} ${count} times:\n${c.log(i)}`);
    }
    await sleep(20);
  }
}

/** The metrics port node `i` logged (`metrics-listening address=HOST:PORT`). */
export async function metricsPort(c: Cluster, i: number): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const match = /metrics-listening .*?address=\S+:(\d+)/.exec(c.log(i));
    if (match) return Number(match[1]);
    if (Date.now() > deadline) throw new Error(`no metrics address in the log:\n${c.log(i)}`);
    await sleep(20);
  }
}

/** Takes every line `client` has received so far, without waiting for more. */
export async function drain(client: TestClient): Promise<string[]> {
  const lines: string[] = [];
  while (client.pending.length > 0) lines.push(await client.next());
  return lines;
}

/**
 * Joins `room` until the reply lists `members` (sorted here): while another node's join has not
 * reached this node yet, joins again (a repeated join only repeats the reply).
 */
export async function joinSettles(
  client: TestClient,
  room: string,
  members: string[],
  timeoutMs = 3000,
): Promise<void> {
  const want = `2:${room}:${[...members].sort().join(",")}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await client.send(`2:${room}`);
    const got = await client.next();
    if (got === want) return;
    if (Date.now() > deadline) throw new Error(`expected ${want}; last: ${JSON.stringify(got)}`);
    await sleep(25);
  }
}

/**
 * Logs each `[node, user]` of `members` in, in order, and joins it to `room` (with
 * {@linkcode joinSettles}); each earlier member expects its `4:`. Resolves to the clients.
 */
export async function fillRoom(
  c: Cluster,
  room: string,
  members: [node: number, user: string][],
  timeoutMs = 3000,
): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (const [node, user] of members) {
    const client = await c.login(node, user);
    const joined = members.slice(0, clients.length + 1).map(([, name]) => name);
    await joinSettles(client, room, joined, timeoutMs);
    for (const earlier of clients) await earlier.expect(`4:${room}:${user}`);
    clients.push(client);
  }
  return clients;
}

/**
 * Sends `1` until the reply is `expected` (a node's view follows the bus a moment later than the
 * client that caused the change); fails with the last reply after `timeoutMs`.
 */
export async function listSettles(
  client: TestClient,
  expected: string,
  timeoutMs = 3000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let got = "";
  for (;;) {
    await client.send("1");
    got = await client.next();
    if (got === expected) return;
    if (Date.now() > deadline) {
      throw new Error(`1 never said ${JSON.stringify(expected)}; last: ${JSON.stringify(got)}`);
    }
    await sleep(25);
  }
}

/**
 * From `client`, asks every 50 ms with `3:2:<user>:probe` then `1` until `user` is reported not
 * online and the room list is `list`; resolves to the milliseconds since `since`.
 */
export async function untilGone(
  client: TestClient,
  user: string,
  list: string,
  timeoutMs: number,
  since: number = performance.now(),
): Promise<number> {
  let last: string[] = [];
  while (performance.now() - since < timeoutMs) {
    await client.send(`3:2:${user}:probe\n1`);
    last = [await client.next()];
    if (!last[0].startsWith("1:")) last.push(await client.next());
    if (last[0] === `9:3:not-online:${user}` && last[1] === list) {
      return performance.now() - since;
    }
    await sleep(50);
  }
  throw new Error(`${user} still online after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

/** One login of `user` on a new connection to node `i`: the client and its reply, `0:<id>` or `0:-1`. */
export async function tryLogin(c: Cluster, i: number, user: string): Promise<[TestClient, string]> {
  const client = await c.connect(i);
  await client.send(`0:${user}:${c.password(user)}`);
  return [client, await client.next(8000)];
}

/**
 * Logs `user` into node `i`, on a new connection each try, while the node refuses (`0:-1`: its
 * bus or store not back yet); resolves to the client logged in.
 */
export async function loginSoon(
  c: Cluster,
  i: number,
  user: string,
  timeoutMs = 10_000,
): Promise<TestClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [client, reply] = await tryLogin(c, i, user);
    if (reply !== "0:-1") {
      sessionId(reply);
      return client;
    }
    await client.close();
    if (Date.now() > deadline) throw new Error(`${user} could not log in on node ${i}`);
    await sleep(50);
  }
}
