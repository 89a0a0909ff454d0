/**
 * The throwaway Redis of tests/redis_support.ts: it starts empty on a loopback port, restarts
 * on the same port with nothing kept, and its stops leave no process behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import { alive, redisInstalled } from "./cluster_support.ts";
import { freePort, infoField, respCommand, startRedis } from "./redis_support.ts";

const installed = redisInstalled("redis_support_test.ts");

Deno.test({
  name: "startRedis: answers commands, restarts empty on the same port, stops leave no process",
  ignore: !installed,
  async fn() {
    const redis = await startRedis();
    try {
      assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
      const first = redis.pid;
      assert.ok(alive(first));
      assert.equal(await redis.command("SET", "k", "v"), "OK");
      assert.equal(await redis.command("GET", "k"), "v");
      assert.equal(await redis.command("INCRBY", "n", 41), 41);
      assert.equal(await redis.command("GET", "missing"), null);
      assert.equal(await redis.command("RPUSH", "l", "a", "b"), 2);
      assert.deepEqual(await redis.command("LRANGE", "l", 0, -1), ["a", "b"]);
      await assert.rejects(() => redis.command("NOSUCHCOMMAND"), /redis: ERR/);
      assert.deepEqual(await redis.command("CONFIG", "GET", "save"), ["save", ""]);
      assert.deepEqual(await redis.command("CONFIG", "GET", "appendonly"), ["appendonly", "no"]);
      assert.ok(infoField(await redis.info("stats"), "total_commands_processed") > 0);
      assert.match(await redis.info("server"), /redis_version:/);

      await redis.restart();
      assert.ok(!alive(first), "the first process is gone");
      assert.ok(alive(redis.pid) && redis.pid !== first);
      assert.equal(await redis.command("GET", "k"), null, "nothing survives a restart");

      const second = redis.pid;
      await redis.stop("SIGKILL");
      assert.ok(!alive(second));
      assert.equal(redis.pid, -1);
      await assert.rejects(() => respCommand(redis.port, ["PING"]));

      await redis.restart(); // after a crash, as after a clean stop
      assert.equal(await redis.command("PING"), "PONG");
      const third = redis.pid;
      await redis.stop();
      assert.ok(!alive(third));
      await redis.stop(); // twice is fine
    } finally {
      await redis.stop();
    }
  },
});

Deno.test({
  name: "startRedis: a port that is taken fails loudly, with Redis's log",
  ignore: !installed,
  async fn() {
    const port = freePort();
    const holder = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      await assert.rejects(() => startRedis({ port }), /exited before answering PING/);
    } finally {
      holder.close();
    }
  },
});
