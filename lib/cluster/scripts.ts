/**
 * What the cluster keeps in Redis and says through it: the channel names, the keys, and the
 * Lua scripts that change ownership and liveness atomically (each also publishes the presence
 * event that says what it did, so every node hears it in the order Redis ran it).
 * lib/cluster/link.ts and lib/cluster/bus_connection.ts run them.
 *
 * @module
 */

/** The channel every node hears presence on. */
export const PRESENCE_CHANNEL = "parley:presence";

/**
 * Where a node's deliveries go.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { nodeChannel } from "./scripts.ts";
 * assert.equal(nodeChannel("n1"), "parley:node:n1");
 * ```
 */
export function nodeChannel(node: string): string {
  return `parley:node:${node}`;
}

/** The fence counter. */
export const FENCE_KEY = "parley:fence";
/** Sorted set: node → the time its registration expires. */
export const NODES_KEY = "parley:nodes";
/** When any node last sent a heartbeat (Redis's clock, ms). */
export const LAST_BEAT_KEY = "parley:last-beat";

/**
 * Who owns `user`: `fence<TAB>node`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ownerKey } from "./scripts.ts";
 * assert.equal(ownerKey("alice"), "parley:owner:alice");
 * ```
 */
export function ownerKey(user: string): string {
  return `parley:owner:${user}`;
}

/** Longer than any node's heartbeat interval (at most 500 ms): a gap this long is a Redis stall. */
export const STALL_MS = 2000;

// Redis 7 replicates scripts by their effects, so reading TIME before writing is allowed.
const NOW_MS = `local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)`;

/**
 * KEYS: fence counter, owner key, nodes. ARGV: user, node, request, channel. The fence is the
 * larger of the counter plus one and Redis's clock in microseconds: it rises even when Redis
 * restarts empty, or from an older snapshot, so a new claim always beats every earlier one.
 */
export const CLAIM_SCRIPT = `${NOW_MS}
local nowUs = now[1] .. string.sub('000000' .. now[2], -6)
local next = redis.call('INCR', KEYS[1])
if next < tonumber(nowUs) then
  redis.call('SET', KEYS[1], nowUs)
  next = tonumber(nowUs)
end
local fence = string.format('%.0f', next)
local prev = redis.call('GET', KEYS[2])
local prevNode, prevFence, prevAlive = '', '0', '0'
if prev then
  local tab = string.find(prev, '\\t', 1, true)
  prevFence = string.sub(prev, 1, tab - 1)
  prevNode = string.sub(prev, tab + 1)
  local expires = redis.call('ZSCORE', KEYS[3], prevNode)
  if expires and tonumber(expires) > nowMs then prevAlive = '1' end
end
redis.call('SET', KEYS[2], fence .. '\\t' .. ARGV[2])
redis.call('PUBLISH', ARGV[4], table.concat(
  {'claim', ARGV[1], fence, ARGV[2], ARGV[3], prevNode, prevFence, prevAlive}, '\\t'))
return fence`;

/** KEYS: owner key. ARGV: user, fence, node, channel. */
export const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[2] .. '\\t' .. ARGV[3] then
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[4], table.concat({'end', ARGV[1], ARGV[2], ARGV[3]}, '\\t'))
return 1`;

/**
 * KEYS: nodes, time of the last heartbeat. ARGV: node, ttl ms, channel, reap (1 or 0).
 * Returns the live nodes when reaping. A gap since the last heartbeat of any node longer than
 * STALL_MS means Redis itself stood still (no node could beat): every expiry moves on by the
 * gap, so the nodes are not declared dead for Redis's silence.
 */
export const HEARTBEAT_SCRIPT = `${NOW_MS}
local last = tonumber(redis.call('GET', KEYS[2]) or nowMs)
if nowMs - last > ${STALL_MS} then
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    redis.call('ZADD', KEYS[1], tonumber(all[i + 1]) + nowMs - last, all[i])
  end
end
redis.call('SET', KEYS[2], nowMs)
redis.call('ZADD', KEYS[1], nowMs + tonumber(ARGV[2]), ARGV[1])
if ARGV[4] ~= '1' then return {} end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs)) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('PUBLISH', ARGV[3], 'down\\t' .. node)
end
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

/** KEYS: nodes. ARGV: node, channel. */
export const LEAVE_SCRIPT = `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'down\\t' .. ARGV[1])
return 1`;

/**
 * KEYS: owner keys. ARGV: node, then each key's fence. For each: keeps (and re-records) the
 * node's ownership unless a newer fence holds the key; returns "" (kept) or the winner.
 */
export const RECLAIM_SCRIPT = `local out = {}
for i, key in ipairs(KEYS) do
  local mine = ARGV[i + 1] .. '\\t' .. ARGV[1]
  local current = redis.call('GET', key)
  local winner = ''
  if current then
    local tab = string.find(current, '\\t', 1, true)
    if tonumber(string.sub(current, 1, tab - 1)) > tonumber(ARGV[i + 1]) then winner = current end
  end
  if winner == '' and current ~= mine then redis.call('SET', key, mine) end
  out[i] = winner
end
return out`;
