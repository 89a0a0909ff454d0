/**
 * The server side of TLS over a socket that is already open: what the TLS port needs when a
 * balancer's PROXY header comes before the handshake (`Deno.listenTls` starts the handshake with
 * the first bytes, so it would read the header as a broken ClientHello). Deno has no server-side
 * `startTls`, so this is `node:tls`'s `TLSSocket` (`isServer`) over a stream made from the socket,
 * given back as a {@linkcode ByteSocket}. Without `--proxy-protocol` the TLS port stays on
 * `Deno.listenTls`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import type { ByteSocket } from "./proxied_socket.ts";
import { AdaptiveReadBuffer, SMALL_READ_BYTES } from "./tcp.ts";

/** The most bytes read from the socket at once (a TLS record is at most 16 KiB). */
const READ_BYTES = 16 * 1024;
/** Decrypted bytes held for the reader before the socket stops being read. */
const HIGH_WATER_BYTES = 64 * 1024;

/** The certificate chain and key, in PEM. */
export interface TlsPems {
  cert: string;
  key: string;
}

/**
 * The socket as a node stream: TLS records in and out. Reads go into a buffer sized as tcp.ts
 * sizes a connection's, so an idle connection holds a small one.
 */
function streamOf(socket: ByteSocket): Duplex {
  const reads = new AdaptiveReadBuffer(SMALL_READ_BYTES, READ_BYTES);
  // A large buffer goes back to the shared pool only once no read can still fill it.
  let reading = false;
  let destroyed = false;
  return new Duplex({
    read() {
      const buffer = reads.buffer;
      reading = true;
      socket.read(buffer).then((n) => {
        reading = false;
        if (destroyed) return reads.release();
        if (n === null) return this.push(null);
        const bytes = Buffer.from(buffer.subarray(0, n)); // a copy: the buffer is read into again
        reads.afterRead(n);
        this.push(bytes);
      }, () => {
        reading = false;
        if (destroyed) reads.release();
        this.push(null);
      });
    },
    write(chunk: Uint8Array, _encoding, done) {
      (async () => {
        for (let at = 0; at < chunk.length;) at += await socket.write(chunk.subarray(at));
      })().then(() => done(), done);
    },
    final(done) {
      done();
    },
    destroy(error, done) {
      destroyed = true;
      if (!reading) reads.release();
      try {
        socket.close();
      } catch { /* closed already */ }
      done(error);
    },
  });
}

/**
 * Serves TLS over `socket` (its handshake starts when the client's bytes arrive) and returns the
 * plaintext side, with the socket's peer address.
 *
 * @example Usage
 * ```ts ignore
 * const socket = serveTlsOver(new PrefixedSocket(conn, rest, client, port), { cert, key });
 * serveTcp(socket, context);
 * ```
 */
export function serveTlsOver(socket: ByteSocket, pems: TlsPems): ByteSocket {
  return new TlsOverSocket(socket, pems);
}

class TlsOverSocket implements ByteSocket {
  readonly remoteAddr: Deno.Addr;
  readonly secure = true;
  #tls: TLSSocket;
  #chunks: Uint8Array[] = [];
  #held = 0;
  #ended = false;
  #wake: (() => void) | null = null;

  constructor(socket: ByteSocket, pems: TlsPems) {
    this.remoteAddr = socket.remoteAddr;
    // deno-lint-ignore no-explicit-any
    const tls = this.#tls = new TLSSocket(streamOf(socket) as any, { isServer: true, ...pems });
    tls.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#held += chunk.length;
      if (this.#held >= HIGH_WATER_BYTES) tls.pause();
      this.#woken();
    });
    const end = () => {
      this.#ended = true;
      this.#woken();
    };
    tls.on("end", end);
    tls.on("close", end);
    tls.on("error", () => {
      end();
      tls.destroy();
    });
  }

  #woken(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((wake) => this.#wake = wake);
    }
    const chunk = this.#chunks[0];
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.#held -= n;
    if (this.#held < HIGH_WATER_BYTES && this.#tls.isPaused()) this.#tls.resume();
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#ended) return Promise.reject(new Deno.errors.BrokenPipe("TLS socket closed"));
    return new Promise((resolve, reject) => {
      // A copy: the caller may reuse its buffer once the write resolves.
      this.#tls.write(Buffer.from(bytes), (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  close(): void {
    this.#ended = true;
    this.#woken();
    this.#tls.destroy();
  }
}
