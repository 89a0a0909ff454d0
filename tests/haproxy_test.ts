/**
 * deploy/haproxy.cfg, run for real: HAProxy in front of three Parley processes, with the file's
 * own settings except for addresses (loopback ports) and timers (shortened so the test is quick).
 * It checks that the file is valid, that its `send-proxy-v2` (and, on a second front,
 * `send-proxy`) lets the nodes see each client's own address, that clients log in through it, that
 * leastconn spreads them, that the /healthz check takes a dead node out, and that the idle timeout
 * cuts a silent client while an empty line now and then keeps one open (the keepalive
 * docs/cluster.md tells clients to send).
 *
 * The three processes are cluster nodes on a throwaway Redis and PostgreSQL, as docs/cluster.md
 * sets them up, so the test also shows two clients that HAProxy put on different nodes talking,
 * and a killed node's user leaving their room. Skips, loudly, without /usr/sbin/haproxy.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startNode, TEST_NODE_TTL_MS } from "./cluster_support.ts";
import {
  admin,
  CONFIG,
  HAPROXY,
  haproxyInstalled,
  metricsPort,
  renderConfig,
  type RunningHaproxy,
  servers,
  startHaproxy,
  untilServers as until,
} from "./haproxy_support.ts";
import { seedUsers, tempDir, TestClient, type TestServer, waitFor } from "./helpers.ts";
import { connectFrom } from "./hardening_support.ts";
import { startPostgres, type TestPostgres } from "./pg_support.ts";
import { freePort, startRedis, type TestRedis } from "./redis_support.ts";

if (!haproxyInstalled) {
  console.warn(`SKIPPED haproxy_test.ts: no ${HAPROXY} (apt-get install haproxy)`);
}

/** HAProxy's address towards the nodes, which they get as --proxy-protocol. */
const HAPROXY_SOURCE = "127.0.0.5";

/** The idle timeout the rendered config uses instead of the file's hour. */
const IDLE_MS = 1500;

/** A second front with the v1 header (`send-proxy`), to node 1 alone. */
function v1Front(port: number, nodePort: number): string {
  return `
frontend parley_v1
    bind 127.0.0.1:${port}
    default_backend parley_v1

backend parley_v1
    source ${HAPROXY_SOURCE}
    server v1n1 127.0.0.1:${nodePort} send-proxy
`;
}

/** The server (`n1`…) HAProxy sent `client`'s connection to, from `show sess`. */
async function serverOf(socket: string, client: TestClient): Promise<string> {
  const port = (client.conn.localAddr as Deno.NetAddr).port;
  const sessions = await admin(socket, "show sess");
  const match = new RegExp(`src=127\\.0\\.0\\.1:${port} .*?srv=(\\S+)`).exec(sessions);
  if (match === null) throw new Error(`no HAProxy session from port ${port}:\n${sessions}`);
  return match[1];
}

Deno.test({
  name: "deploy/haproxy.cfg: logins through HAProxy, leastconn, /healthz check, idle timeout",
  ignore: !haproxyInstalled,
  async fn() {
    const check = await new Deno.Command(HAPROXY, { args: ["-c", "-f", CONFIG] }).output();
    assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));

    const temp = await tempDir();
    let redis: TestRedis | undefined;
    let pg: TestPostgres | undefined;
    const nodes: TestServer[] = [];
    const clients: TestClient[] = [];
    let haproxy: RunningHaproxy | undefined;
    const login = async (user: string) => {
      const client = await TestClient.login(front, user, "pw");
      clients.push(client);
      return client;
    };
    const front = freePort();
    const frontV1 = freePort();
    const socket = `${temp.dir}/admin.sock`;
    try {
      redis = await startRedis();
      pg = await startPostgres();
      const db = await pg.createDatabase();
      const users: Record<string, string> = {};
      for (let i = 1; i <= 14; i++) users[`u${i}`] = "pw";
      await seedUsers(db, users);
      for (let i = 1; i <= 3; i++) {
        nodes.push(
          await startNode({
            redis: redis.url,
            db,
            nodeId: `n${i}`,
            args: ["--metrics-port", "0", "--proxy-protocol", HAPROXY_SOURCE],
          }),
        );
      }
      const ports = await Promise.all(
        nodes.map(async (n) => ({ port: n.port, metricsPort: await metricsPort(n) })),
      );
      const rendered = `${temp.dir}/haproxy.cfg`;
      const config = await Deno.readTextFile(CONFIG);
      await Deno.writeTextFile(
        rendered,
        renderConfig(config, {
          front,
          nodes: ports,
          socket,
          maxconn: 1000,
          inter: "200ms",
          idle: `${IDLE_MS}ms`,
          source: HAPROXY_SOURCE,
        }) + v1Front(frontV1, ports[0].port),
      );
      haproxy = startHaproxy(rendered);
      await until(socket, (s) => [...s.values()].every((v) => v.status === "UP"), "3 nodes UP");
      // Every logged-in client sends an empty line now and then until the idle check below: the
      // rendered config cuts a connection idle for 1.5 s, and on a slow machine any step of this
      // test (logins, the kill, the node TTL) may take longer than that.
      const keepaliveAll = setInterval(() => {
        for (const client of clients) client.send("").catch(() => {});
      }, IDLE_MS / 3);
      let alive: string[] = []; // the nodes left after the kill
      try {
        // send-proxy-v2 (and send-proxy, v1): a node sees each client's own address, in its log
        // and its per-address throttle, not HAProxy's.
        for (
          const [port, from] of [[front, "127.0.0.2"], [front, "127.0.0.3"], [
            frontV1,
            "127.0.0.4",
          ]] as const
        ) {
          const client = TestClient.fromConn(await connectFrom(port, from));
          try {
            await client.ask("0:u1:wrong", "0:-1");
          } finally {
            await client.close();
          }
          const seen = new RegExp(`login-failed .*address=${from.replaceAll(".", "\\.")} `);
          await waitFor(() => nodes.some((n) => seen.test(n.log())), `a node logging ${from}`);
        }
        assert.ok(nodes.every((n) => !/address=127\.0\.0\.5 /.test(n.log())));
        await until(socket, (s) => [...s.values()].every((v) => v.scur === 0), "those closed");

        // Six logins, one after another: leastconn puts two on each node.
        for (let i = 1; i <= 6; i++) await login(`u${i}`);
        await until(socket, (s) => [...s.values()].every((v) => v.scur === 2), "2 clients a node");
        // Two clients HAProxy put on different nodes: one room, across nodes.
        const u1 = clients[0];
        const u1Node = await serverOf(socket, u1);
        let u2: TestClient | undefined;
        for (const client of clients.slice(1)) {
          if (await serverOf(socket, client) !== u1Node) u2 = client;
        }
        assert.ok(u2 !== undefined, "every client on one node");
        const u2Name = `u${clients.indexOf(u2) + 1}`;
        await u1.send("2:lobby");
        await u1.expect("2:lobby:u1");
        await u2.send("2:lobby");
        await u2.expect(`2:lobby:u1,${u2Name}`);
        await u1.expect(`4:lobby:${u2Name}`);
        await u1.send("3:1:through HAProxy, across nodes");
        await u2.expect("3:through HAProxy, across nodes");

        // u2's node killed: /healthz fails, HAProxy marks it DOWN, new clients go to the other
        // two; u2 leaves the room on the others within the node TTL.
        const down = await serverOf(socket, u2);
        alive = ["n1", "n2", "n3"].filter((n) => n !== down);
        // Its checks held off, HAProxy still counts the dead node UP, and leastconn picks it (no
        // connections) for the next client: `option redispatch` sends that client to a live
        // node at once, not to the dead one again until the checks fail.
        await admin(socket, `disable health parley_nodes/${down}`);
        await nodes[Number(down.slice(1)) - 1].stop("SIGKILL");
        await until(socket, (s) => s.get(down)?.scur === 0, `no clients on ${down}`);
        await login("u7");
        assert.notEqual((await servers(socket)).get(down)?.status, "DOWN");
        await admin(socket, `enable health parley_nodes/${down}`);
        await until(socket, (s) => s.get(down)?.status === "DOWN", `${down} DOWN`);
        await u1.expect(`5:lobby:${u2Name}`, TEST_NODE_TTL_MS + 1000);
        for (let i = 8; i <= 10; i++) await login(`u${i}`);
        const spread = await servers(socket);
        assert.equal(spread.get(down)?.scur, 0);
        assert.equal((spread.get(alive[0])?.scur ?? 0) + (spread.get(alive[1])?.scur ?? 0), 8);
      } finally {
        clearInterval(keepaliveAll);
      }

      // Idle: a silent client is cut after the tunnel timeout; one that sends an empty line
      // more often than that stays, and still works; so does one that only receives (from a
      // sender on a node straight, past HAProxy: the cluster finds the lurker wherever it is).
      const silent = await login("u11");
      const talker = await login("u12");
      const lurker = await login("u13");
      clients.push(await TestClient.login(nodes[Number(alive[0].slice(1)) - 1].port, "u14", "pw"));
      const senders = clients.slice(-1);
      const started = Date.now();
      const keepalive = setInterval(() => {
        talker.send("").catch(() => {});
        for (const sender of senders) sender.send("3:2:u13:news").catch(() => {});
      }, IDLE_MS / 3);
      try {
        await silent.expectClosed(IDLE_MS * 3);
        const idleFor = Date.now() - started;
        assert.ok(idleFor >= IDLE_MS * 0.8, `cut after ${idleFor} ms, before the timeout`);
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
      } finally {
        clearInterval(keepalive);
      }
      assert.ok(!talker.closed, "an empty line now and then keeps a connection open");
      await talker.send("1");
      assert.match(await talker.next(), /^1:/);
      assert.ok(!lurker.closed, "deliveries keep a connection that never sends open");
      assert.ok(lurker.pending.length >= 4, `the lurker got ${lurker.pending.length} lines`);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      if (haproxy !== undefined) {
        await haproxy.stop();
        if (Deno.env.get("HAPROXY_LOG")) console.log(haproxy.output());
      }
      await Promise.all(nodes.map((n) => n.stop()));
      await pg?.stop();
      await redis?.stop();
      await temp.remove();
    }
  },
});
