/**
 * The cluster harness of tests/cluster_support.ts: it starts Redis, PostgreSQL and the nodes,
 * logs clients into the node asked for, kills and restarts a node on its port, restarts Redis,
 * and leaves no process behind. The cluster's own behavior is tested elsewhere; a message that
 * crosses nodes is here only to show the nodes are really one cluster.
 *
 * @module
 */

import assert from "node:assert/strict";
import { alive, Cluster, loginSoon, redisInstalled } from "./cluster_support.ts";

const installed = redisInstalled("cluster_support_test.ts");

Deno.test({
  name: "Cluster: nodes share a bus; kill -9, restart on the same port, Redis restart, clean end",
  ignore: !installed,
  async fn() {
    const c = await Cluster.start({ nodes: 2 });
    const pids = [c.redis.pid, c.postgres.pid];
    try {
      assert.equal(c.size, 2);
      assert.notEqual(c.port(0), c.port(1));
      pids.push(c.node(0).process.pid, c.node(1).process.pid);
      assert.match(c.log(0), /n1/);

      const alice = await c.login(0, "alice");
      const bob = await c.login(1, "bob");
      await alice.send("3:2:bob:across");
      await bob.expect("3:across");

      const port = c.port(1);
      const status = await c.kill(1);
      assert.equal(status?.signal, "SIGKILL");
      assert.throws(() => c.node(1), /node 1 \(n2\) is down/);
      await c.closeClients(1);
      await c.restartNode(1);
      assert.equal(c.port(1), port, "a restarted node listens where it did");
      pids.push(c.node(1).process.pid);
      await loginSoon(c, 1, "carol", 15_000);

      const redisPid = c.redis.pid;
      await c.restartRedis();
      assert.ok(!alive(redisPid));
      pids.push(c.redis.pid);
      assert.equal(await c.redis.command("PING"), "PONG");
      await loginSoon(c, 0, "dave", 15_000);

      await c.restartNode(0); // SIGTERM: a clean shutdown
      pids.push(c.node(0).process.pid);
    } finally {
      await c.close();
    }
    for (const pid of pids) assert.ok(!alive(pid), `process ${pid} outlived the cluster`);
  },
});
