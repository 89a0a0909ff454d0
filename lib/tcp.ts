/**
 * The TCP (and TLS) transport: socket bytes → bounded line splitter → {@linkcode Connection},
 * and the connection's output → {@linkcode OutboundQueue} → socket.
 *
 * @module
 */

import { Connection, type ConnectionContext, type Transport } from "./connection.ts";
import { LINE_TOO_LONG, LineSplitter } from "./line_splitter.ts";
import { OutboundQueue } from "./outbound.ts";

/**
 * Serves a client over an accepted socket and returns its {@linkcode Connection}; the read loop
 * runs in the background until the peer goes away or the connection is closed.
 *
 * @example Usage
 * ```ts ignore
 * const connection = serveTcp(await listener.accept(), context);
 * ```
 */
export function serveTcp(conn: Deno.Conn, context: ConnectionContext): Connection {
  const remote = conn.remoteAddr as Deno.NetAddr;
  let connection: Connection | null = null;
  const queue = new OutboundQueue(conn, context.limits.maxPendingBytes, () => connection?.close());
  const transport: Transport = {
    remoteAddress: remote.hostname,
    get pendingBytes() {
      return queue.pendingBytes;
    },
    send: (line) => queue.push(line),
    drained: () => queue.drained(),
    close() {
      queue.close();
      try {
        conn.close();
      } catch { /* already closed by the peer */ }
    },
  };
  connection = new Connection(transport, context);
  connection.start();
  void readLoop(conn, connection, context.limits);
  return connection;
}

async function readLoop(
  conn: Deno.Conn,
  connection: Connection,
  limits: ConnectionContext["limits"],
): Promise<void> {
  const splitter = new LineSplitter(limits.maxLineBytes);
  const buffer = new Uint8Array(limits.readBufferBytes);
  try {
    while (!connection.isClosed) {
      const n = await conn.read(buffer);
      if (n === null) break;
      connection.metrics.bytesIn += n;
      splitter.push(buffer.subarray(0, n));
      // Lines are views into `buffer`: all of them are handled before the next read reuses it.
      for (let line = splitter.next(); line !== null; line = splitter.next()) {
        if (line === LINE_TOO_LONG) return await connection.lineTooLong();
        const pending = connection.handleLine(line);
        if (pending !== undefined) await pending;
        if (connection.isClosed) return;
      }
    }
  } catch {
    // A reset, or a read on a socket we closed: either way the peer is gone.
  } finally {
    connection.close();
  }
}
