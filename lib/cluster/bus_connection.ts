/**
 * The two Redis connections of one node's cluster link, and whether they work: one for
 * commands, one subscribed (a subscribed connection can run no other command). Everything a
 * node sends goes out on its one command connection, in order, and Redis hands one subscriber
 * every message in the order it ran them, so what one sender sends arrives in the order sent.
 *
 * It also keeps the node registered: a heartbeat every quarter TTL (at most 500 ms), which
 * after a whole TTL connected also reaps the nodes whose registration expired. A heartbeat
 * unanswered for a few seconds drops both connections, so a silent network failure is noticed.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { Redis, RedisOptions } from "ioredis";
import type { Logger } from "../observe/log.ts";
import type { BusTarget } from "./bus_url.ts";
import { HEARTBEAT_SCRIPT, LAST_BEAT_KEY, NODES_KEY, PRESENCE_CHANNEL } from "./scripts.ts";

/** How long after ioredis gave up a connection it is started again. */
const RESTART_MS = 200;

/** `up`: connected and synchronised (claims are only granted then); `syncing`; `down`. */
export type LinkState = "down" | "syncing" | "up";

/** Options of {@linkcode BusConnection}. */
export interface BusConnectionOptions {
  /** The bus, parsed from `--cluster` (lib/cluster/bus_url.ts). */
  target: BusTarget;
  /** This node's id. */
  nodeId: string;
  /** How long this node keeps its users after its last heartbeat, if it goes silent. */
  nodeTtlMs: number;
  /** Where connection trouble is logged. */
  log: Logger;
  /** Counts the commands the heartbeat sends (the link's stats). */
  stats: { commands: number };
}

/** What the connections report to the link. */
export interface BusHandlers {
  /** A connection is ready (again) while the link is not up: time to (re)synchronise. */
  ready(): void;
  /** A connection closed, or stopped answering. */
  lost(): void;
  /** A message on a subscribed channel. */
  message(channel: Buffer, message: Buffer): void;
  /** The other nodes the view holds, asked just before a heartbeat that reaps. */
  viewedNodes(): string[];
  /** A node the view held before a reaping heartbeat is not registered in Redis. */
  unregistered(node: string): void;
}

/**
 * The command and subscriber connections, the link's state and the heartbeat. Made by the
 * link's `start` with the Redis client it loaded, so a single node never loads ioredis.
 *
 * @example Usage
 * ```ts ignore
 * const { Redis } = await import("ioredis");
 * const target = parseBusUrl("redis://127.0.0.1:6379");
 * const bus = new BusConnection(Redis, { target, nodeId: "n1", nodeTtlMs: 10_000, log, stats });
 * bus.connect({ ready, lost, message, viewedNodes, unregistered });
 * // ...
 * bus.startClosing();
 * bus.disconnect();
 * ```
 */
export class BusConnection {
  readonly commands: Redis;
  readonly subscriber: Redis;
  #nodeId: string;
  #ttlMs: number;
  #log: Logger;
  #stats: { commands: number };
  #state: LinkState = "down";
  #upSince = 0;
  #closing = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** When the heartbeat now awaiting its answer went out (0: none is). */
  #beatSentAt = 0;
  /** When Redis last delivered a message or answered a heartbeat (performance.now()). */
  #heardAt = performance.now();

  constructor(RedisClient: typeof Redis, options: BusConnectionOptions) {
    this.#nodeId = options.nodeId;
    this.#ttlMs = options.nodeTtlMs;
    this.#log = options.log;
    this.#stats = options.stats;
    const { target } = options;
    const redisOptions: RedisOptions = {
      ...target.options,
      lazyConnect: true,
      // Fail commands at once while disconnected, and never send again after reconnecting one
      // that was sent before: a delivery held back and sent later could arrive after the
      // resync, twice (the old master may have run it) or out of order.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt: number) =>
        Math.min(100 * 2 ** Math.min(attempt, 5), target.retryCapMs),
      // A master demoted to a replica refuses writes: reconnect (through the sentinels).
      reconnectOnError: (error: Error) => error.message.startsWith("READONLY"),
      connectTimeout: 2000,
      connectionName: `parley:${this.#nodeId}`,
    };
    const connect = (extra: RedisOptions) =>
      target.url === null
        ? new RedisClient({ ...redisOptions, ...extra })
        : new RedisClient(target.url, { ...redisOptions, ...extra });
    this.commands = connect({});
    this.subscriber = connect({ autoResubscribe: false });
  }

  /** The link's state. */
  get state(): LinkState {
    return this.#state;
  }

  /** Milliseconds since Redis last delivered a message or answered a heartbeat. */
  get silentMs(): number {
    return performance.now() - this.#heardAt;
  }

  /** Whether the link is closing (set by {@linkcode BusConnection.startClosing}). */
  get closing(): boolean {
    return this.#closing;
  }

  /** Whether both connections are ready for commands. */
  get ready(): boolean {
    return this.commands.status === "ready" && this.subscriber.status === "ready";
  }

  /** Starts connecting (ioredis retries for ever) and heartbeating; events go to `handlers`. */
  connect(handlers: BusHandlers): void {
    const connections = [["commands", this.commands], ["subscriber", this.subscriber]] as const;
    for (const [name, connection] of connections) {
      // ioredis reports every failed reconnect too; bus-down/bus-up say what matters.
      connection.on("error", (error: Error) => {
        if (!this.#closing) {
          this.#log.debug("bus-error", { connection: name, error: error.message });
        }
      });
      connection.on("close", () => {
        failUnanswered(connection);
        handlers.lost();
      });
      // ioredis gives up for good ("end") when the sentinels' +switch-master cuts a reconnection
      // short (its failover detector outlives the connection that made it): start again.
      connection.on("end", () => {
        if (this.#closing) return;
        this.#log.debug("bus-reconnect", { connection: name });
        setTimeout(() => {
          if (!this.#closing) connection.connect().catch(() => {}); // retried by ioredis
        }, RESTART_MS);
      });
      // Either connection coming (back) up after a loss starts a resync; the second of the two
      // finds one running or done.
      connection.on("ready", () => {
        if (this.#state !== "up") handlers.ready();
      });
    }
    this.subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      this.#heardAt = performance.now();
      handlers.message(channel, message);
    });
    const interval = Math.max(100, Math.min(500, Math.floor(this.#ttlMs / 4)));
    this.#heartbeat = setInterval(() => this.#beat(handlers), interval);
    this.commands.connect().catch(() => {}); // retried by ioredis; "ready" starts the sync
    this.subscriber.connect().catch(() => {});
  }

  /** The link started synchronising. */
  markSyncing(): void {
    this.#state = "syncing";
  }

  /** The link is synchronised: claims may be granted. */
  markUp(): void {
    this.#state = "up";
    this.#upSince = Date.now();
  }

  /** The link is down: nothing is sent until it has synchronised again. */
  markDown(): void {
    this.#state = "down";
  }

  /** Registers this node for another TTL; when `reap`, also reaps and returns the live nodes. */
  heartbeat(reap: boolean): Promise<string[]> {
    return this.commands.eval(
      HEARTBEAT_SCRIPT,
      2,
      NODES_KEY,
      LAST_BEAT_KEY,
      this.#nodeId,
      this.#ttlMs,
      PRESENCE_CHANNEL,
      reap ? 1 : 0,
    ) as Promise<string[]>;
  }

  /** Stops the heartbeat and quiets connection errors: the link is leaving. */
  startClosing(): void {
    this.#closing = true;
    clearInterval(this.#heartbeat);
  }

  /** Drops both connections for good. */
  disconnect(): void {
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  #beat(handlers: BusHandlers): void {
    if (this.#state !== "up") return;
    const now = Date.now();
    if (this.#beatSentAt !== 0) {
      // A link that stopped answering without closing (a silent network failure): TCP could
      // take minutes to notice, so drop both connections and let them reconnect.
      if (now - this.#beatSentAt > Math.min(5000, Math.max(1000, this.#ttlMs / 2))) {
        this.#log.warn("bus-stalled", { ms: now - this.#beatSentAt });
        this.#beatSentAt = 0;
        handlers.lost(); // down now, not when the closes come through
        dropAtOnce(this.commands);
        dropAtOnce(this.subscriber);
      }
      return;
    }
    // Reap only after a whole TTL connected: after an outage every node needs that long to
    // heartbeat again, and must not be declared dead for the silence the outage caused.
    const reap = now - this.#upSince >= this.#ttlMs;
    // Nodes the view held before the script ran: each has registered before it said anything.
    const viewed = reap ? handlers.viewedNodes() : [];
    this.#beatSentAt = now;
    this.#stats.commands++;
    Promise.all([
      this.heartbeat(reap),
      this.subscriber.ping(), // the subscriber connection must be alive too
    ]).then(([live]) => {
      this.#beatSentAt = 0;
      this.#heardAt = performance.now();
      if (!reap || this.#state !== "up") return;
      // A node the view holds but Redis does not know died where no `down` could be said
      // (while Redis was down, or just before it restarted empty).
      const alive = new Set(live);
      for (const node of viewed) {
        if (!alive.has(node)) handlers.unregistered(node);
      }
    }, () => this.#beatSentAt = 0);
  }
}

/**
 * Drops `connection` with a reset, discarding what its socket has not sent yet, and lets the
 * client reconnect. A graceful close (ioredis's `disconnect`) leaves those bytes to the kernel,
 * which keeps retransmitting them: when a cut network heals, Redis would run commands this node
 * gave up on, and a delivery sent before the cut would arrive after the resync.
 */
function dropAtOnce(connection: Redis): void {
  failUnanswered(connection);
  const stream = connection.stream as { resetAndDestroy?: () => void } | undefined;
  if (typeof stream?.resetAndDestroy === "function") stream.resetAndDestroy();
  else connection.disconnect(true);
}

/**
 * Fails every command `connection` sent and has no reply to: with
 * `autoResendUnfulfilledCommands` off, ioredis would otherwise leave them pending for ever.
 */
function failUnanswered(connection: Redis): void {
  const lost = new Error("bus connection lost");
  for (let item = connection.commandQueue.shift(); item; item = connection.commandQueue.shift()) {
    item.command.reject(lost);
  }
}
