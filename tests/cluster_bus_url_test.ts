/**
 * `--cluster` beyond one plain Redis: `rediss://` against a throwaway redis-server serving TLS
 * with an openssl-made certificate (verified against `--cluster-ca`, refused without it), and
 * the one-line refusals of bad `redis-sentinel://` URLs and CA files. The Sentinel failover
 * itself is tests/cluster_sentinel_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ClusterLink } from "../lib/cluster/link.ts";
import { Logger } from "../lib/observe/log.ts";
import { parseInvocation, UsageError } from "../lib/server/config.ts";
import { redisInstalled } from "./cluster_support.ts";
import { sleep } from "./e2e_support.ts";
import { makeCert, tempDir } from "./helpers.ts";
import { makeHub } from "./hub_support.ts";
import { freePort, startRedis } from "./redis_support.ts";

const installed = redisInstalled("cluster_bus_url_test.ts");

/** A link in this process, on a hub of its own, and what it logged. */
async function startLink(url: string, caFile?: string, waitMs?: number) {
  const lines: string[] = [];
  const log = new Logger("debug", (line) => lines.push(line));
  const link = new ClusterLink({ url, caFile, nodeId: "t1", nodeTtlMs: 1000, log });
  const { hub } = await makeHub({ cluster: link, claims: link });
  await link.start(hub.clusterEvents, waitMs);
  return { link, lines };
}

Deno.test({
  name: "cluster bus: rediss:// verifies the server's certificate against --cluster-ca",
  ignore: !installed,
  async fn() {
    const temp = await tempDir();
    const cert = await makeCert(temp.dir); // CN=localhost, IP:127.0.0.1, CA:FALSE, self-signed
    const tlsPort = freePort();
    const redis = await startRedis({
      args: [
        ...["--tls-port", String(tlsPort), "--tls-auth-clients", "no"],
        ...["--tls-cert-file", cert.certPath, "--tls-key-file", cert.keyPath],
      ],
    });
    const url = `rediss://127.0.0.1:${tlsPort}`;
    try {
      const trusted = await startLink(url, cert.certPath);
      try {
        assert.ok(trusted.link.up, `up over TLS:\n${trusted.lines.join("\n")}`);
        assert.equal(typeof await trusted.link.claim("alice"), "number", "a claim over TLS");
        const clients = String(await redis.command("CLIENT", "LIST")).split("\n");
        const ours = clients.filter((c) => / name=parley:t1 /.test(c));
        assert.equal(ours.length, 2, "commands and subscriber");
        for (const c of ours) assert.match(c, new RegExp(` laddr=127\\.0\\.0\\.1:${tlsPort} `));
      } finally {
        await trusted.link.close();
      }

      // The system's roots do not know the certificate: the link never comes up.
      const untrusted = await startLink(url, undefined, 300);
      try {
        for (let i = 0; !untrusted.lines.some((l) => /self-signed certificate/.test(l)); i++) {
          assert.ok(i < 100, `no certificate error logged:\n${untrusted.lines.join("\n")}`);
          await sleep(50);
        }
        assert.equal(untrusted.link.state, "down");
      } finally {
        await untrusted.link.close();
      }

      await assert.rejects(
        startLink(url, `${temp.dir}/missing.pem`),
        new RegExp(`^Error: cannot read --cluster-ca ${temp.dir}/missing\\.pem: `),
      );
    } finally {
      await redis.stop();
      await temp.remove();
    }
  },
});

Deno.test("cluster bus: --cluster and --cluster-ca refuse what they cannot use, naming the flag", () => {
  const db = ["--db", "postgres://parley@127.0.0.1/parley"];
  const serve = (...args: string[]) => parseInvocation([...args, ...db], {});
  for (
    const url of [
      "redis-sentinel://10.0.0.1:26379,10.0.0.2:26380/parley",
      "redis-sentinel://:secret@sentinel.internal/parley/2",
      "rediss://redis.internal:6380/1",
    ]
  ) assert.equal(serve("--cluster", url).kind, "serve", url);
  for (
    const [args, message] of [
      [["--cluster", "redis-sentinel://10.0.0.1:26379"], /^--cluster: not a bus URL/],
      [["--cluster", "redis-sentinel://10.0.0.1:99999/m"], /^--cluster: bad sentinel address/],
      [["--cluster", "http://10.0.0.1/"], /^--cluster: not a bus URL: use redis:\/\//],
      [["--cluster", "redis://r:6379", "--cluster-ca", "ca.pem"], /^--cluster: --cluster-ca is/],
      [["--cluster-ca", "ca.pem"], /^--cluster-ca goes with --cluster rediss:/],
    ] as const
  ) {
    assert.throws(() => serve(...args), (e) => e instanceof UsageError && message.test(e.message));
  }
  assert.equal(
    parseInvocation(["--cluster", "rediss://r:6380", "--cluster-ca", "ca.pem", ...db], {}).kind,
    "serve",
  );
});
