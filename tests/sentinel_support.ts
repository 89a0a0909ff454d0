/**
 * A throwaway Redis Sentinel set for tests and the failover timeline: a master, one replica of
 * it and three sentinels (quorum 2), every one a `redis-server` on loopback started with
 * tests/redis_support.ts. The timers are short, so a master killed with `kill -9` is replaced
 * by its replica within a few seconds.
 *
 * @example Usage
 * ```ts ignore
 * import { startSentinels } from "./sentinel_support.ts";
 * const set = await startSentinels();
 * try {
 *   await set.switchOver(); // the replica is master now, the old master its replica
 *   const { master, replica } = await set.roles();
 *   await master.stop("SIGKILL");
 *   await set.promoted(replica.port); // the sentinels name the old master again
 * } finally {
 *   await set.stop();
 * }
 * ```
 *
 * @module
 */

import { type Cluster, drain, logged, loginSoon } from "./cluster_support.ts";
import { sleep } from "./e2e_support.ts";
import type { TestClient } from "./helpers.ts";
import { respCommand, startRedis, type TestRedis } from "./redis_support.ts";

/** The master's name in the sentinels' configuration. */
export const MASTER_NAME = "parley";

/** A running set; {@linkcode TestSentinels.stop} must be called. */
export interface TestSentinels {
  /** `redis-sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/parley`, what `--cluster` takes. */
  readonly url: string;
  /** The Redis that was master at the start. */
  readonly master: TestRedis;
  /** Its replica at the start. */
  readonly replica: TestRedis;
  /** Which of the two the sentinels name as master now, and the other. */
  roles(): Promise<{ master: TestRedis; replica: TestRedis }>;
  /**
   * A failover with the master alive (`SENTINEL FAILOVER`): resolves once the replica is
   * promoted. The old master stays a master, cut off from the set, until
   * {@linkcode TestSentinels.rejoin} (Sentinel itself turns it into a replica only ten seconds
   * or more later).
   */
  switchOver(): Promise<void>;
  /** Makes the Redis that is not master a replica of the master, and waits until in sync. */
  rejoin(): Promise<void>;
  readonly sentinels: readonly TestRedis[];
  /** The master's port as each sentinel names it now. */
  masterPorts(): Promise<number[]>;
  /** Waits until every sentinel names `port` as the master. */
  promoted(port: number, timeoutMs?: number): Promise<void>;
  /** Stops every server of the set (each by its PID, awaited). */
  stop(): Promise<void>;
}

/** How long the set may take to know itself (replica in sync, sentinels aware of each other). */
const SETTLE_MS = 15_000;

/**
 * Starts a master, its replica and three sentinels, and resolves once the replica is in sync
 * and every sentinel knows the replica and the two other sentinels (so a failover can start).
 */
export async function startSentinels(): Promise<TestSentinels> {
  const started: TestRedis[] = [];
  const stop = async () => {
    await Promise.allSettled(started.map((server) => server.stop("SIGKILL")));
  };
  try {
    // The master sends the replica its data at once (by default it waits 5 s for others).
    const master = await startRedis({ args: ["--repl-diskless-sync-delay", "0"] });
    started.push(master);
    const replica = await startRedis({
      args: ["--replicaof", "127.0.0.1", String(master.port), "--repl-diskless-sync-delay", "0"],
    });
    started.push(replica);
    // In sync before the sentinels start, so their first look at the master lists the replica.
    await until(
      "the replica in sync",
      async () => /^master_link_status:up\r?$/m.test(await replica.info("replication")),
    );
    const config = [
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 2`,
      // Down after half a second of silence; a failover that stalls is retried after 2 s.
      `sentinel down-after-milliseconds ${MASTER_NAME} 500`,
      `sentinel failover-timeout ${MASTER_NAME} 2000`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`,
      "",
    ].join("\n");
    const sentinels = await Promise.all(
      [0, 1, 2].map(() => startRedis({ config, args: ["--sentinel"] })),
    );
    started.push(...sentinels);
    const sentinel = (s: TestRedis, ...args: string[]) =>
      respCommand(s.port, ["SENTINEL", ...args]);
    await until("every sentinel aware of the replica and the other sentinels", async () => {
      for (const s of sentinels) {
        const replicas = await sentinel(s, "REPLICAS", MASTER_NAME) as unknown[];
        const others = await sentinel(s, "SENTINELS", MASTER_NAME) as unknown[];
        if (replicas.length < 1 || others.length < 2) return false;
      }
      return true;
    });
    const masterPorts = () =>
      Promise.all(sentinels.map(async (s) => {
        const reply = await sentinel(s, "GET-MASTER-ADDR-BY-NAME", MASTER_NAME) as string[];
        return Number(reply[1]);
      }));
    const promoted = (port: number, timeoutMs = 15_000) =>
      until(`the sentinels to name ${port} as master`, async () => {
        const ports = await masterPorts();
        if (!ports.every((p) => p === port)) return false;
        return /^role:master\r?$/m.test(await respCommand(port, ["INFO", "replication"]) as string);
      }, timeoutMs);
    const roles = async () => {
      const [port] = await masterPorts();
      return port === master.port ? { master, replica } : { master: replica, replica: master };
    };
    return {
      url: `redis-sentinel://${
        sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")
      }/${MASTER_NAME}`,
      master,
      replica,
      sentinels,
      masterPorts,
      promoted,
      roles,
      async switchOver() {
        const old = await roles();
        await sentinel(sentinels[0], "FAILOVER", MASTER_NAME);
        await promoted(old.replica.port);
      },
      async rejoin() {
        const now = await roles();
        await now.replica.command("REPLICAOF", "127.0.0.1", now.master.port);
        await until(
          "the old master in sync as a replica",
          async () => /^master_link_status:up\r?$/m.test(await now.replica.info("replication")),
        );
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Polls `check` every 50 ms (its errors count as not yet) until it holds or time is up. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = SETTLE_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Milliseconds from the master's `kill -9` to each step of the recovery. */
export interface FailoverTimeline {
  /** Every sentinel names the replica as master, and it says it is one. */
  promoted: number;
  /** A room message from one node reaches the other again. */
  delivery: number;
  /** A login succeeds again on every node asked. */
  logins: number;
}

/** What {@linkcode killMaster} needs: who probes delivery, who logs in afterwards. */
export interface FailoverProbe {
  /** Sends `3:1:probe N` to a room every 50 ms until `to`, on another node, gets one. */
  from: TestClient;
  to: TestClient;
  /** `[node, user]` pairs that log in (retrying while refused) once the bus is back. */
  logins: [number, string][];
  /** Runs once every node has logged `bus-down`, before the promotion is awaited. */
  whileDown?: () => Promise<void>;
}

/**
 * Kills the set's current master (`kill -9`) under cluster `c` and times the recovery (see
 * {@linkcode FailoverTimeline}); resolves to the times, every line `to` received meanwhile, and
 * the clients logged in.
 */
export async function killMaster(
  c: Cluster,
  set: TestSentinels,
  probe: FailoverProbe,
): Promise<{ timeline: FailoverTimeline; received: string[]; clients: TestClient[] }> {
  const nodes = Array.from({ length: c.size }, (_, i) => i);
  const downs = nodes.map((i) => (c.log(i).match(/ bus-down( |$)/gm) ?? []).length);
  const { master, replica } = await set.roles();
  const t0 = performance.now();
  await master.stop("SIGKILL");
  await Promise.all(nodes.map((i) => logged(c, i, "bus-down", downs[i] + 1)));
  await probe.whileDown?.();
  await set.promoted(replica.port);
  const promoted = performance.now() - t0;
  const received: string[] = [];
  const delivered = deliveredAgain(probe.from, probe.to, received).then(() =>
    performance.now() - t0
  );
  const loggedIn = (async () => {
    const clients = [];
    for (const [node, user] of probe.logins) clients.push(await loginSoon(c, node, user, 20_000));
    return { clients, at: performance.now() - t0 };
  })();
  const [delivery, { clients, at: logins }] = await Promise.all([delivered, loggedIn]);
  return { timeline: { promoted, delivery, logins }, received, clients };
}

/**
 * Sends `3:1:probe N` from `from` every 50 ms until `to` has received one; every line `to` got
 * meanwhile is added to `received`. Throws after `timeoutMs`.
 */
export async function deliveredAgain(
  from: TestClient,
  to: TestClient,
  received: string[],
  timeoutMs = 20_000,
): Promise<void> {
  const t0 = performance.now();
  for (let k = 1;; k++) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no delivery in ${timeoutMs} ms`);
    await from.send(`3:1:probe ${k}`);
    await sleep(50);
    received.push(...await drain(to));
    if (received.some((line) => line.startsWith("3:probe "))) return;
  }
}
