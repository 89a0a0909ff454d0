/**
 * A small network on this machine for partition tests: Linux network namespaces that the test
 * creates and deletes, so a node can be cut off from Redis, or slowed, while its clients still
 * reach it.
 *
 * ```
 *   namespace <p>r: redis-server on 10.77.N.1 (bridge br0)
 *     ├── veth ── namespace <p>n0 ("bus" 10.77.N.10)  ── veth "cl" 10.78.N.6 ──┐
 *     ├── veth ── namespace <p>n1 ("bus" 10.77.N.11)  ── veth "cl" 10.78.N.10 ─┤ the test's own
 *     └── veth ── the test's namespace (10.77.N.254)                            ┘ namespace
 * ```
 *
 * Each node has two links: "bus" to Redis's bridge, and "cl" to the test's namespace, which its
 * clients come over and where PostgreSQL listens (on the root ends, 10.78.N.(4i+5)), so a cut of
 * the bus leaves clients and the store alone. A cut stops the node's port on Redis's bridge
 * (`bridge link set … state disabled`): packets both ways vanish, with no error, as on a broken
 * network. A delay is `tc netem delay` on both ends of the bus link where the kernel has netem;
 * where it has not (the Firecracker kernel this was written on), each node reaches Redis through
 * a proxy in the test process that holds every chunk for the delay. Names carry the test's PID,
 * so a crashed run's namespaces are recognised and deleted by the next, and N is a /24 no
 * interface here uses yet.
 *
 * @example Usage
 * ```ts ignore
 * import { netnsRefusal, startNetLab } from "./netns_support.ts";
 * if ((await netnsRefusal()) === null) {
 *   const lab = await startNetLab(2);
 *   try {
 *     await lab.cut(0);
 *     await lab.heal(0);
 *   } finally {
 *     await lab.close();
 *   }
 * }
 * ```
 *
 * @module
 */

import type { ClusterPlacement } from "./cluster_support.ts";
import { alive } from "./cluster_support.ts";

const decoder = new TextDecoder();

/** Runs `ip` or `tc` with `args`; a failure throws with what the tool printed. */
async function run(tool: "ip" | "tc" | "bridge", args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(tool, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `${tool} ${args.join(" ")}: ${decoder.decode(stderr).trim() || `exit ${code}`}`,
    );
  }
  return decoder.decode(stdout);
}

/**
 * Why namespaces cannot be used here (no `ip`/`tc`, not root, a kernel or container that refuses
 * `ip netns add`), or null when they can. Probes once, with a namespace it deletes at once.
 */
export async function netnsRefusal(): Promise<string | null> {
  const probe = `plprobe${Deno.pid}`;
  try {
    await run("tc", ["-V"]);
    await run("bridge", ["-V"]);
    await run("ip", ["netns", "add", probe]);
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "no ip or tc (apt-get install iproute2)"
      : `network namespaces refused: ${error instanceof Error ? error.message : error}`;
  }
  await run("ip", ["netns", "del", probe]).catch(() => {});
  return null;
}

/** A network of namespaces made by {@linkcode startNetLab}; {@linkcode NetLab.close} deletes it. */
export interface NetLab {
  /** Where each part of a cluster runs, for `withCluster({ placement })`. */
  readonly placement: ClusterPlacement;
  /** How a delay is made: `netem` (the kernel's) or `proxy` (this kernel has no sch_netem). */
  readonly delayBy: "netem" | "proxy";
  /** Cuts node `i` off from Redis: its bridge port stops forwarding, both ways, silently. */
  cut(i: number): Promise<void>;
  /** Delays everything between node `i` and Redis by `ms`, each way. */
  delay(i: number, ms: number): Promise<void>;
  /** Removes node `i`'s cut or delay. */
  heal(i: number): Promise<void>;
  /** Deletes the namespaces (and with them every link). Run after the processes in them ended. */
  close(): Promise<void>;
}

/** Runs `ip -batch` with `lines`, in namespace `ns` (null: this one); a failure throws. */
async function batch(ns: string | null, lines: string[]): Promise<void> {
  const child = new Deno.Command("ip", {
    args: [...ns === null ? [] : ["-n", ns], "-batch", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
  await writer.close();
  const { code, stderr } = await child.output();
  if (code !== 0) {
    throw new Error(`ip -batch in ${ns ?? "this namespace"}: ${decoder.decode(stderr)}`);
  }
}

/** Namespaces of crashed runs (their PID is gone): deleted, so they take no address. */
async function deleteStale(): Promise<void> {
  for (const line of (await run("ip", ["netns", "list"])).split("\n")) {
    const name = line.split(" ")[0];
    const match = /^pl(\d+)[rn]/.exec(name);
    if (match !== null && Number(match[1]) !== Deno.pid && !alive(Number(match[1]))) {
      await run("ip", ["netns", "del", name]).catch(() => {});
    }
  }
}

/** A third octet no address of this namespace uses in 10.77/16 nor 10.78/16. */
async function freeSubnet(): Promise<number> {
  const used = await run("ip", ["-4", "-o", "addr"]);
  const start = Math.floor(Math.random() * 256);
  for (let k = 0; k < 256; k++) {
    const n = (start + k) % 256;
    if (!used.includes(` 10.77.${n}.`) && !used.includes(` 10.78.${n}.`)) return n;
  }
  throw new Error("no free 10.77.N.0/24 here");
}

/** Whether the kernel has netem, tried on device `dev` of namespace `ns` (removed again). */
async function hasNetem(ns: string, dev: string): Promise<boolean> {
  try {
    await run("tc", ["-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms"]);
  } catch {
    return false;
  }
  await run("tc", ["-n", ns, "qdisc", "del", "dev", dev, "root"]);
  return true;
}

/** The port Redis gets in its namespace, where nothing else listens. */
const REDIS_PORT = 6379;

/**
 * Makes the namespaces and links for Redis and `nodes` nodes (as drawn in the module's
 * comment). On a failure half-way, deletes what it made.
 */
export async function startNetLab(nodes: number): Promise<NetLab> {
  await deleteStale();
  const p = `pl${Deno.pid}`;
  const redisNs = `${p}r`;
  const nodeNs = (i: number) => `${p}n${i}`;
  const made: string[] = [];
  const proxies: DelayProxy[] = [];
  const n = await freeSubnet();
  const redisHost = `10.77.${n}.1`;
  const testHost = `10.77.${n}.254`;
  const rootEnd = (i: number) => `10.78.${n}.${4 * i + 5}`;
  const nodeEnd = (i: number) => `10.78.${n}.${4 * i + 6}`;
  const nodeNames = Array.from({ length: nodes }, (_, i) => nodeNs(i));
  const close = async () => {
    for (const proxy of proxies) proxy.close();
    for (const ns of made.reverse()) await run("ip", ["netns", "del", ns]).catch(() => {});
  };
  let netem = false;
  try {
    // One `ip -batch` per namespace: a few processes rather than dozens.
    for (const ns of [redisNs, ...nodeNames]) {
      await run("ip", ["netns", "add", ns]);
      made.push(ns);
    }
    await batch(redisNs, [
      "link set lo up",
      "link add br0 type bridge",
      `addr add ${redisHost}/24 dev br0`,
      "link set br0 up",
      // The test's own port on the bridge: it checks Redis from here (and proxies, below).
      `link add tst type veth peer name ${p}b netns ${Deno.pid}`,
      "link set tst master br0 up",
      ...nodeNames.flatMap((ns, i) => [
        `link add v${i} type veth peer name bus netns ${ns}`,
        `link set v${i} master br0 up`,
      ]),
    ]);
    await batch(null, [
      `addr add ${testHost}/24 dev ${p}b`,
      `link set ${p}b up`,
      ...nodeNames.flatMap((ns, i) => [
        `link add ${p}c${i} type veth peer name cl netns ${ns}`,
        `addr add ${rootEnd(i)}/30 dev ${p}c${i}`,
        `link set ${p}c${i} up`,
      ]),
    ]);
    for (const [i, ns] of nodeNames.entries()) {
      await batch(ns, [
        "link set lo up",
        `addr add 10.77.${n}.${10 + i}/24 dev bus`,
        "link set bus up",
        `addr add ${nodeEnd(i)}/30 dev cl`,
        "link set cl up",
      ]);
    }
    netem = await hasNetem(redisNs, "v0");
    // Without netem, each node reaches Redis through a proxy of the test's, on the bridge's
    // test port, that holds every chunk for the node's delay (0 until one is set). The node's
    // bus link is still the one a cut stops.
    if (!netem) {
      for (let i = 0; i < nodes; i++) proxies.push(new DelayProxy(testHost, redisHost, REDIS_PORT));
    }
  } catch (error) {
    await close();
    throw error;
  }
  /** Both ends of node i's bus link: [namespace, device]. */
  const ends = (i: number) => [[nodeNs(i), "bus"], [redisNs, `v${i}`]];
  const port = (i: number, state: "disabled" | "forwarding") =>
    run("bridge", [
      "-n",
      redisNs,
      "link",
      "set",
      "dev",
      `v${i}`,
      "state",
      state === "disabled" ? "0" : "3",
    ]);
  return {
    placement: {
      redis: {
        host: redisHost,
        port: REDIS_PORT,
        wrap: ["ip", "netns", "exec", redisNs],
        // Not on loopback: without this Redis answers everyone with DENIED. Only this lab's
        // namespaces reach it.
        args: ["--protected-mode", "no"],
      },
      redisUrl: (i) =>
        netem ? `redis://${redisHost}:${REDIS_PORT}` : `redis://${testHost}:${proxies[i].port}`,
      postgres: {
        listen: Array.from({ length: nodes }, (_, i) => rootEnd(i)),
        trust: [`10.78.${n}.0/24`],
      },
      nodeWrap: (i) => ["ip", "netns", "exec", nodeNs(i)],
      nodeHost: nodeEnd,
      dbHost: rootEnd,
    },
    delayBy: netem ? "netem" : "proxy",
    async cut(i) {
      await port(i, "disabled");
    },
    async delay(i, ms) {
      if (!netem) {
        proxies[i].delayMs = ms;
        return;
      }
      for (const [ns, dev] of ends(i)) {
        await run("tc", [
          "-n",
          ns,
          "qdisc",
          "replace",
          "dev",
          dev,
          "root",
          "netem",
          "delay",
          `${ms}ms`,
        ]);
      }
    },
    async heal(i) {
      await port(i, "forwarding");
      if (!netem) proxies[i].delayMs = 0;
      for (const [ns, dev] of netem ? ends(i) : []) {
        await run("tc", ["-n", ns, "qdisc", "del", "dev", dev, "root"]).catch(() => {});
      }
    },
    close,
  };
}

/**
 * A TCP proxy to `target` that holds each chunk `delayMs` before passing it on, in order, both
 * ways: a delay for kernels without netem.
 */
class DelayProxy {
  delayMs = 0;
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.Conn>();

  constructor(host: string, targetHost: string, targetPort: number) {
    const listener = Deno.listen({ hostname: host, port: 0 });
    this.#listener = listener;
    (async () => {
      for await (const conn of listener) {
        this.#conns.add(conn);
        Deno.connect({ hostname: targetHost, port: targetPort }).then((upstream) => {
          this.#conns.add(upstream);
          this.#pipe(conn, upstream);
          this.#pipe(upstream, conn);
        }, () => conn.close());
      }
    })().catch(() => {});
  }

  /** The port it listens on. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Stops listening and closes every connection. */
  close(): void {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const conn of this.#conns) this.#closeConn(conn);
  }

  #closeConn(conn: Deno.Conn): void {
    this.#conns.delete(conn);
    try {
      conn.close();
    } catch { /* closed */ }
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    let sent = Promise.resolve();
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        const due = performance.now() + this.delayMs;
        // A write that fails (the other side reset) ends the relay here: a rejection left in
        // the chain until the read loop ends would be an uncaught error meanwhile.
        sent = sent.then(async () => {
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          for (let at = 0; at < chunk.length;) at += await to.write(chunk.subarray(at));
        }).catch(() => {
          this.#closeConn(from);
          this.#closeConn(to);
        });
      }
      await sent;
    } catch { /* either side closed */ }
    this.#closeConn(from);
    this.#closeConn(to);
  }
}
