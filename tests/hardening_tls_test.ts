// Issue 3, TLS: Deno.listenTls beside plain TCP, and instead of it (--port=-1), with a throwaway
// self-signed certificate made by openssl at test time.
import assert from "node:assert/strict";
import { runCli, startServer, tempDir, TestClient, type TestServer } from "./helpers.ts";
import { makeCert, type TestCert } from "./hardening_support.ts";

/**
 * Starts a server with a throwaway certificate (TLS on a free port, plus `args`), runs `body`,
 * then closes the clients `body` put in `clients`, stops the server and removes the files.
 */
async function withTlsServer(
  users: Record<string, string>,
  args: string[],
  body: (server: TestServer, cert: TestCert, clients: TestClient[]) => Promise<void>,
): Promise<void> {
  const temp = await tempDir();
  const clients: TestClient[] = [];
  try {
    const cert = await makeCert(temp.dir);
    const server = await startServer({
      users,
      args: [...args, "--tls-cert", cert.certPath, "--tls-key", cert.keyPath, "--tls-port", "0"],
    });
    try {
      await body(server, cert, clients);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.stop();
    }
  } finally {
    await temp.remove();
  }
}

Deno.test("TLS beside TCP: a TLS client and a TCP client chat through the same hub", async () => {
  const users = { alice: "wonderland", bob: "builder" };
  await withTlsServer(users, [], async (server, cert, clients) => {
    assert.ok(server.tlsPort! > 0 && server.port > 0);
    const alice = await TestClient.connectTls(server.tlsPort!, cert.pem);
    clients.push(alice);
    await alice.send("0:alice:wonderland");
    assert.match(await alice.next(), /^0:\d+$/);
    await alice.ask("2:lobby", "2:lobby:alice");
    const bob = await TestClient.login(server.port, "bob", "builder");
    clients.push(bob);
    await bob.ask("2:lobby", "2:lobby:alice,bob");
    await alice.expect("4:lobby:bob");
    await bob.send("3:1:over tcp");
    await alice.expect("3:over tcp");
    await alice.send("3:2:bob:over tls");
    await bob.expect("3:over tls");
    // The TLS port speaks only TLS: plain text there is a failed handshake, not a session.
    const plain = await TestClient.connect(server.tlsPort!);
    clients.push(plain);
    await plain.send("0:alice:wonderland").catch(() => {});
    await plain.expectClosed();
    assert.equal(plain.pending.length, 0);
    await alice.ask("1", "1:lobby,alice,bob");
  });
});

Deno.test("TLS instead of TCP (--port=-1): only the TLS port listens, and it serves the protocol", async () => {
  await withTlsServer({ alice: "wonderland" }, ["--port=-1"], async (server, cert, clients) => {
    assert.equal(server.port, -1);
    assert.doesNotMatch(server.log(), /listening transport=tcp/);
    const alice = await TestClient.connectTls(server.tlsPort!, cert.pem);
    clients.push(alice);
    await alice.ask("0:alice:wonderland", "0:1");
    await alice.ask("3:0:x", "9:3:not-in-room");
    // A client that does not trust the certificate is refused by its own TLS check.
    await assert.rejects(async () => {
      const untrusting = await Deno.connectTls({ hostname: "localhost", port: server.tlsPort! });
      try {
        await untrusting.handshake();
      } finally {
        untrusting.close();
      }
    });
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0);
    await alice.expect("0:-1"); // the graceful shutdown reaches TLS clients too
  });
});

Deno.test("TLS misconfiguration: one line naming the file, a non-zero exit", async () => {
  const temp = await tempDir();
  try {
    const cert = await makeCert(temp.dir);
    const db = `${temp.dir}/p.db`;
    const base = ["--host", "127.0.0.1", "--port", "0", "--tls-port", "0", "--db", db];
    const missing = await runCli([
      ...base,
      "--tls-cert",
      `${temp.dir}/nope.pem`,
      "--tls-key",
      cert.keyPath,
    ]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /^parley: cannot read the TLS certificate \S*nope\.pem: .*$/m);
    const swapped = await runCli([...base, "--tls-cert", cert.keyPath, "--tls-key", cert.certPath]);
    assert.notEqual(swapped.code, 0);
    assert.match(
      swapped.stderr,
      /^parley: cannot serve TLS with \S*key\.pem and \S*cert\.pem: .*$/m,
    );
    const tlsOnlyWithoutTls = await runCli(["--port=-1", "--db", db]);
    assert.equal(tlsOnlyWithoutTls.code, 2);
    assert.match(tlsOnlyWithoutTls.stderr, /--port=-1 turns plain TCP off/);
    for (const result of [missing, swapped, tlsOnlyWithoutTls]) {
      assert.equal(result.stderr.split("\n").filter((l) => l.startsWith("parley:")).length, 1);
    }
  } finally {
    await temp.remove();
  }
});
