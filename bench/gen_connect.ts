/**
 * How a load generator's client connects: plain TCP, or TLS over it for the TLS scenarios. Both
 * set TCP_NODELAY (the generator batches its own writes).
 *
 * @module
 */

import type { Protocol } from "./protocols.ts";

/** Where to connect, and whether over TLS (trusting only `caPem`). */
export interface ConnectTarget {
  protocol: Protocol;
  port: number;
  tls?: boolean;
  /** The PEM of the certificate the server presents (self-signed: its own CA). */
  caPem?: string;
}

/**
 * Connects to 127.0.0.1 on `target.port`; with `target.tls`, completes the TLS handshake before
 * returning. nats-server before 2.10 (Debian's is 2.9, without `handshake_first`) sends its INFO
 * line in plain text first and only then expects the client's handshake on the same connection:
 * that line is read and dropped here (the handshake steps do not wait for it).
 *
 * @example Usage
 * ```ts ignore
 * const conn = await connectTo({ protocol: "irc", port: 6697, tls: true, caPem });
 * ```
 */
export async function connectTo(target: ConnectTarget): Promise<Deno.Conn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
  tcp.setNoDelay(true); // on the TCP socket: a TLS connection has no setNoDelay
  if (!target.tls) return tcp;
  if (target.caPem === undefined) throw new Error("a TLS generator needs caPem");
  let tls: Deno.TlsConn | null = null;
  try {
    if (target.protocol === "nats") await skipPlainLine(tcp);
    tls = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [target.caPem] });
    await tls.handshake();
    return tls;
  } catch (error) {
    try {
      (tls ?? tcp).close();
    } catch { /* already closed */ }
    throw error;
  }
}

/** Reads up to and including the first "\n" (the server sends nothing more until the handshake). */
async function skipPlainLine(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(4096);
  let seen = 0;
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("connection closed before the plain INFO line");
    seen += n;
    if (buffer.subarray(0, n).includes(0x0a)) return;
    if (seen > 65_536) throw new Error("no end of line in the plain INFO");
  }
}
