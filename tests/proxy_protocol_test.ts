// --proxy-protocol over real sockets: a listed balancer's (127.0.0.2's) connections start with a
// PROXY header, and the client it names is the address the logs, the per-address cap and the
// metrics see, on the TCP, TLS and WebSocket (wss, and ws on a second server) ports alike; on the
// TLS ports the header comes before the handshake. A listed socket without a valid header is
// closed, logged and counted; anyone else's header is just a malformed line.
import assert from "node:assert/strict";
import { USERS } from "./e2e_support.ts";
import { connectFrom, makeCert } from "./hardening_support.ts";
import { bytes, startServer, tempDir, TestClient, type TestServer, waitFor } from "./helpers.ts";
import { v1, v2 } from "./proxy_support.ts";
import { RawWsClient, startWsServer } from "./ws_support.ts";

const BALANCER = "127.0.0.2";
const IPV6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05];

/** Waits for a log line matching `pattern`. */
function logged(server: TestServer, pattern: RegExp): Promise<void> {
  return waitFor(() => pattern.test(server.log()), `a log line ${pattern}`);
}

/** A connection from the balancer that starts with `first` (TLS after it with `tlsCa`). */
async function viaBalancer(port: number, first: Uint8Array, tlsCa?: string): Promise<TestClient> {
  return TestClient.fromConn(await connectFrom(port, BALANCER, { first, tlsCa }));
}

/**
 * On the WebSocket port (`wss` with `tlsCa`): a PROXY v2 header (a forged X-Forwarded-For after it
 * not read), an HTTP proxy's X-Forwarded-For (its last hop), neither (closed), and an address not
 * listed (its X-Forwarded-For not believed).
 */
async function webSocketClients(
  server: TestServer,
  wsPort: number,
  transport: "ws" | "wss",
  tlsCa?: string,
): Promise<void> {
  const host = `localhost:${wsPort}`;
  const forged = { "X-Forwarded-For": "6.6.6.6" };
  const conn = await connectFrom(wsPort, BALANCER, { first: v2([203, 0, 113, 5]), tlsCa });
  const proxied = await RawWsClient.open(conn, host, forged);
  assert.equal(proxied.status, 101);
  await proxied.send("0:alice:nope");
  assert.equal(await proxied.next(), "0:-1");
  await logged(server, /login-failed .*address=203\.0\.113\.5 /);
  proxied.close();
  const http = await connectFrom(wsPort, BALANCER, { tlsCa });
  const forwarded = await RawWsClient.open(http, host, {
    "X-Forwarded-For": "6.6.6.6, 198.51.100.8",
  });
  await forwarded.send("0:alice:nope");
  assert.equal(await forwarded.next(), "0:-1");
  await logged(server, /login-failed .*address=198\.51\.100\.8 /);
  forwarded.close();
  const neither = await connectFrom(wsPort, BALANCER, { tlsCa });
  await assert.rejects(RawWsClient.open(neither, host), /closed during the upgrade/);
  neither.close();
  await logged(
    server,
    new RegExp(`proxy-header-rejected balancer=127\\.0\\.0\\.2 transport=${transport} `),
  );
  const direct = await RawWsClient.open(await connectFrom(wsPort, "127.0.0.3", { tlsCa }), host, {
    "X-Forwarded-For": "198.51.100.77",
  });
  await direct.send("0:alice:nope");
  assert.equal(await direct.next(), "0:-1");
  await logged(server, /login-failed .*address=127\.0\.0\.3 /);
  direct.close();
  assert.doesNotMatch(server.log(), /6\.6\.6\.6|198\.51\.100\.77/);
}

Deno.test("proxy protocol: plain ws, a PROXY header or X-Forwarded-For", async () => {
  const server = await startWsServer({ users: USERS, args: ["--proxy-protocol", BALANCER] });
  try {
    await webSocketClients(server, server.wsPort, "ws");
  } finally {
    await server.stop();
  }
});

Deno.test("proxy protocol: TCP, TLS and wss see the client the balancer's header names", async (t) => {
  const temp = await tempDir();
  const cert = await makeCert(temp.dir);
  const server = await startServer({
    users: USERS,
    args: [
      ...["--proxy-protocol", `10.9.9.9,${BALANCER}`, "--max-connections-per-address", "2"],
      ...["--tls-cert", cert.certPath, "--tls-key", cert.keyPath, "--tls-port", "0"],
      ...["--ws-port", "0", "--header-timeout-ms", "1000", "--metrics-port", "0"],
    ],
  });
  const clients: TestClient[] = [];
  const keep = (client: TestClient) => (clients.push(client), client);
  const metric = async (name: string) => {
    const listening = /metrics-listening address=\S+:(\d+)/;
    await logged(server, listening);
    const port = listening.exec(server.log())![1];
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)![1]);
  };
  try {
    const wss = /listening transport=wss address=\S+:(\d+)/;
    await logged(server, wss);
    const wsPort = Number(wss.exec(server.log())![1]);
    await t.step("TCP: v1 and v2 (IPv6) clients, each under its own address", async () => {
      const a = keep(await viaBalancer(server.port, v1("192.0.2.10")));
      await a.ask("0:alice:wrong", "0:-1");
      await logged(server, /login-failed .*address=192\.0\.2\.10 /);
      // Split across writes: the header byte by byte.
      const header = v2(IPV6);
      const conn = await connectFrom(server.port, BALANCER);
      for (const byte of header) await conn.write(new Uint8Array([byte]));
      const b = keep(TestClient.fromConn(conn));
      await b.ask("0:alice:wrong", "0:-1");
      await logged(server, /login-failed .*address=2001:db8::5 /);
      await b.send("0:alice:wonderland");
      assert.match(await b.next(), /^0:\d+$/);
    });
    await t.step("TCP: the per-address cap counts clients, not the balancer", async () => {
      keep(await viaBalancer(server.port, v1("192.0.2.10"))); // the second of 192.0.2.10
      const third = keep(await viaBalancer(server.port, v1("192.0.2.10", 40001)));
      await third.expect("9:?:server-full");
      await third.expectClosed();
      await logged(server, /server-full address=192\.0\.2\.10 transport=tcp limit=per-address/);
      // Four sockets from the balancer, two of them open still: another client gets in.
      const other = keep(await viaBalancer(server.port, v2([192, 0, 2, 11])));
      await other.ask("1", "0:-1");
    });
    await t.step("TCP: a balancer's socket without a valid header is closed", async () => {
      const before = await metric("parley_proxy_header_rejected_total");
      const bare = keep(await viaBalancer(server.port, bytes("0:alice:wonderland\n")));
      await bare.expectClosed();
      assert.deepEqual(bare.pending, []);
      await logged(
        server,
        /proxy-header-rejected balancer=127\.0\.0\.2 transport=tcp why="?no PROXY/,
      );
      const silent = keep(await viaBalancer(server.port, new Uint8Array()));
      await silent.expectClosed(); // --header-timeout-ms
      assert.equal(await metric("parley_proxy_header_rejected_total"), before + 2);
      // LOCAL (the balancer's own check): served under the balancer's address.
      const local = keep(await viaBalancer(server.port, v2([], { local: true })));
      await local.ask("0:bob:wrong", "0:-1");
      await logged(server, /login-failed .*address=127\.0\.0\.2 /);
    });
    await t.step("TCP: a header from an address not listed is a malformed line", async () => {
      const direct = keep(await TestClient.connect(server.port));
      await direct.write(v1("192.0.2.66"));
      await direct.expect("9:?:malformed");
      await direct.ask("0:carol:wrong", "0:-1");
      await logged(server, /login-failed .*address=127\.0\.0\.1 /);
      assert.doesNotMatch(server.log(), /192\.0\.2\.66/);
      await direct.close(); // 127.0.0.1 holds at most 2
    });
    await t.step("TLS: the header before the handshake; direct TLS clients as before", async () => {
      const proxied = keep(await viaBalancer(server.tlsPort!, v1("198.51.100.4"), cert.pem));
      await proxied.ask("0:dave:wrong", "0:-1");
      await logged(server, /login-failed .*address=198\.51\.100\.4 /);
      const direct = keep(await TestClient.connectTls(server.tlsPort!, cert.pem));
      await direct.send("0:dave:d4ve");
      assert.match(await direct.next(), /^0:\d+$/);
      await direct.close();
      // Plain text on the TLS port from a direct client: closed, and the port still serves.
      const plain = keep(await TestClient.connect(server.tlsPort!));
      await plain.send("0:dave:d4ve");
      await plain.expectClosed();
      // (127.0.0.1 may hold 2: the server may not have seen the last ones close yet.)
      await waitFor(async () => {
        const again = keep(await TestClient.connectTls(server.tlsPort!, cert.pem));
        await again.send("1");
        return await again.next() === "0:-1";
      }, "a TLS client served after the plain one");
      // The balancer starting TLS without a header: closed before any handshake.
      await assert.rejects(connectFrom(server.tlsPort!, BALANCER, { tlsCa: cert.pem }));
      await logged(server, /proxy-header-rejected balancer=127\.0\.0\.2 transport=tls /);
    });
    await t.step("wss: a PROXY header, or an HTTP proxy's X-Forwarded-For", async () => {
      await webSocketClients(server, wsPort, "wss", cert.pem);
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
    await temp.remove();
  }
});
