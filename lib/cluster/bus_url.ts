/**
 * Reads `--cluster`: which Redis is the bus and how to reach it. Three forms:
 * - `redis://[:password@]host:port[/db]`, one Redis;
 * - `rediss://…`, the same over TLS, the server's certificate verified against the system's
 *   roots or, with `--cluster-ca FILE`, against the CAs in that file;
 * - `redis-sentinel://[:password@]host:port[,host:port…]/MASTER_NAME[/db]`: the sentinels are
 *   asked for the master of that name, again after every lost connection, so the node follows a
 *   failover. The password is the master's (the sentinels are asked without one).
 *
 * @module
 */

import type { RedisOptions } from "ioredis";

/** Where the bus is, as the Redis client takes it. */
export interface BusTarget {
  /** `redis://` or `rediss://` URL for the client to parse, or null with sentinels. */
  url: string | null;
  /** Options that go with it (sentinels, TLS). */
  options: RedisOptions;
  /** The longest wait between two reconnection attempts, in milliseconds. */
  retryCapMs: number;
}

/** The sentinel's port when a sentinel address gives none. */
const SENTINEL_PORT = 26379;
/**
 * A failover is over within seconds: asking the sentinels every half second at most finds the
 * new master soon after its promotion (a lone Redis is retried at most every 2 s).
 */
const SENTINEL_RETRY_CAP_MS = 500;
const PLAIN_RETRY_CAP_MS = 2000;

const PLAIN = /^rediss?:\/\/[^/\s]+(\/\d+)?\/?$/i;
const SENTINEL =
  /^redis-sentinel:\/\/(?:([^:@/\s]*)(?::([^@/\s]*))?@)?([^/@\s]+)\/([^/\s]+)(?:\/(\d+))?\/?$/i;

/** What `--cluster` accepts, for the one line that refuses anything else. */
export const BUS_URL_FORMS =
  "redis://host:port[/db], rediss://host:port[/db] or redis-sentinel://host:port[,host:port...]/MASTER_NAME";

/**
 * Parses a `--cluster` URL; throws an Error saying what is wrong. `ca` is the PEM text of the
 * CAs a `rediss://` server's certificate must chain to (undefined: the system's roots).
 *
 * @example Sentinels and a master name
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBusUrl } from "./bus_url.ts";
 * const target = parseBusUrl("redis-sentinel://10.0.0.1:26379,10.0.0.2/parley");
 * assert.equal(target.url, null);
 * assert.equal(target.options.name, "parley");
 * assert.deepEqual(target.options.sentinels, [
 *   { host: "10.0.0.1", port: 26379 },
 *   { host: "10.0.0.2", port: 26379 },
 * ]);
 * assert.ok(parseBusUrl("rediss://redis.internal:6380").options.tls);
 * assert.throws(() => parseBusUrl("http://x"));
 * ```
 */
export function parseBusUrl(url: string, ca?: string): BusTarget {
  if (PLAIN.test(url)) {
    const tls = /^rediss:/i.test(url);
    if (!tls && ca !== undefined) throw new Error("--cluster-ca is for rediss:// URLs only");
    return {
      url,
      // Verified (rejectUnauthorized is Node's default); the host name or IP must match.
      options: tls ? { tls: ca === undefined ? {} : { ca: [ca] } } : {},
      retryCapMs: PLAIN_RETRY_CAP_MS,
    };
  }
  const match = SENTINEL.exec(url);
  if (match === null) throw new Error(`not a bus URL: use ${BUS_URL_FORMS}`);
  if (ca !== undefined) throw new Error("--cluster-ca is for rediss:// URLs only");
  const [, username, password, hosts, name, db] = match;
  const sentinels = hosts.split(",").map((address) => {
    const hostPort = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(address);
    const port = Number(hostPort?.[2] ?? SENTINEL_PORT);
    if (hostPort === null || port < 1 || port > 65535) {
      throw new Error(`bad sentinel address "${address}": use host:port`);
    }
    return { host: hostPort[1].replace(/^\[|\]$/g, ""), port };
  });
  const auth = password === undefined ? {} : {
    username: decodeURIComponent(username ?? "") || undefined,
    password: decodeURIComponent(password),
  };
  return {
    url: null,
    options: {
      sentinels,
      name: decodeURIComponent(name),
      db: db === undefined ? 0 : Number(db),
      ...auth,
      // Also drop the connections when the sentinels announce a new master (+switch-master),
      // rather than only when the old one closes them: an old master that lives on, cut off
      // from the sentinels, would keep a subscriber that hears nothing (Centrifugo #1189).
      failoverDetector: true,
      sentinelRetryStrategy: (times: number) => Math.min(times * 100, 1000),
    },
    retryCapMs: SENTINEL_RETRY_CAP_MS,
  };
}

/**
 * The URL without its password, for logs.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactUrl } from "./bus_url.ts";
 * assert.equal(redactUrl("redis://:secret@10.0.0.1:6379"), "redis://:***@10.0.0.1:6379");
 * ```
 */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}
