/**
 * TLS logins one after another, three ways: the TLS port on `Deno.listenTls` (no
 * `--proxy-protocol`), and with `--proxy-protocol` (node:tls started by the server) for a
 * balancer's connection that sends a PROXY v2 header first and for a direct client. Each login is
 * connect, (header,) handshake, `0:alice:…`, its reply, close; medians and p90 in ms. Then the
 * server's resident memory per idle TLS connection, with {@linkcode IDLE} of them open.
 *
 * `deno run -A bench/proxy_tls.ts [LOGINS]` (default 300, after 30 unmeasured)
 *
 * @module
 */

import { makeCert, sleep, startServer, tempDir } from "../tests/helpers.ts";
import { rssKiB } from "../tests/hardening_support.ts";

const LOGINS = Number(Deno.args[0] ?? 300);
const HEADER = new Uint8Array([
  ...[0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a],
  ...[0x21, 0x11, 0, 12, 192, 0, 2, 1, 10, 0, 0, 1, 0x9c, 0x40, 0x1e, 0x61],
]);
const LOGIN = new TextEncoder().encode("0:alice:wonderland\n");
/** Idle connections held for the memory figure. */
const IDLE = 500;

/** A TLS connection to the port, with a PROXY v2 header before the handshake when `proxied`. */
async function connect(port: number, ca: string, proxied: boolean): Promise<Deno.TlsConn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  if (proxied) await tcp.write(HEADER);
  return await Deno.startTls(tcp, { hostname: "localhost", caCerts: [ca] });
}

/** The server's RSS growth per connection with `IDLE` TLS connections open, each served once. */
async function idleKiB(pid: number, port: number, ca: string, proxied: boolean) {
  const before = rssKiB(pid);
  const held: Deno.TlsConn[] = [];
  const reply = new Uint8Array(64);
  try {
    for (let i = 0; i < IDLE; i++) {
      const tls = await connect(port, ca, proxied);
      held.push(tls);
      await tls.write(new TextEncoder().encode("1\n"));
      await tls.read(reply); // `0:-1`: the handshake is done and the line served
    }
    await sleep(1000);
    return (rssKiB(pid) - before) / IDLE;
  } finally {
    for (const tls of held) tls.close();
  }
}

/** `count` sequential logins; their durations in ms, sorted. */
async function logins(port: number, ca: string, count: number, proxied: boolean) {
  const times: number[] = [];
  const reply = new Uint8Array(256);
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const tls = await connect(port, ca, proxied);
    await tls.write(LOGIN);
    const n = await tls.read(reply);
    if (n === null || !/^0:\d+\n/.test(new TextDecoder().decode(reply.subarray(0, n)))) {
      throw new Error("login failed");
    }
    tls.close();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

const temp = await tempDir();
try {
  const cert = await makeCert(temp.dir);
  const ways = [
    { name: "Deno.listenTls (no --proxy-protocol)", flags: [], proxied: false },
    { name: "node:tls after a PROXY v2 header", flags: ["127.0.0.1"], proxied: true },
    { name: "node:tls, direct (--proxy-protocol set)", flags: ["10.9.9.9"], proxied: false },
  ];
  for (const way of ways) {
    const server = await startServer({
      users: { alice: "wonderland" },
      args: [
        ...["--tls-cert", cert.certPath, "--tls-key", cert.keyPath, "--tls-port", "0"],
        ...["--max-login-failures", "1000", "--max-connections-per-address", "0"],
        ...(way.flags.length > 0 ? ["--proxy-protocol", ...way.flags] : []),
      ],
    });
    try {
      await logins(server.tlsPort!, cert.pem, 30, way.proxied);
      const times = await logins(server.tlsPort!, cert.pem, LOGINS, way.proxied);
      const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
      console.log(
        `${way.name}: ${LOGINS} logins, median ${at(0.5).toFixed(1)} ms, p90 ${
          at(0.9).toFixed(1)
        } ms, ${
          (await idleKiB(server.process.pid, server.tlsPort!, cert.pem, way.proxied)).toFixed(1)
        } KiB per idle connection`,
      );
    } finally {
      await server.stop();
    }
  }
} finally {
  await temp.remove();
}
