/**
 * Support for the hardening tests (issue 3): throwaway TLS certificates, sockets from a second
 * loopback source address, the server's memory and the kernel's view of its sockets.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";

import { sleep } from "./helpers.ts";

export { sleep };
export { makeCert, type TestCert } from "./helpers.ts";

/**
 * Connects to 127.0.0.1:`port` from the source address `localAddress` (another loopback address
 * such as 127.0.0.2), so the server sees a different remote address. Deno.connect cannot bind a
 * source address; node:net can. The socket is wrapped in the three methods TestClient uses.
 * `first` is written before anything else (a balancer's PROXY header, say); with `tlsCa` the
 * socket then speaks TLS (to `localhost`, trusting that PEM).
 */
export function connectFrom(
  port: number,
  localAddress: string,
  options: { first?: Uint8Array; tlsCa?: string } = {},
): Promise<Deno.Conn> {
  return new Promise((resolve, reject) => {
    const plain = net.connect({ host: "127.0.0.1", port, localAddress });
    if (options.first !== undefined) plain.write(options.first);
    const socket = options.tlsCa === undefined
      ? plain
      : tls.connect({ socket: plain, ca: options.tlsCa, servername: "localhost" });
    const chunks: Uint8Array[] = [];
    let ended = false;
    let wake: (() => void) | null = null;
    const poke = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    socket.on("data", (data: Uint8Array) => {
      chunks.push(new Uint8Array(data));
      poke();
    });
    socket.on("close", () => {
      ended = true;
      poke();
    });
    socket.on("error", (error) => {
      ended = true;
      poke();
      reject(error);
    });
    socket.on(options.tlsCa === undefined ? "connect" : "secureConnect", () => {
      const conn = {
        async read(buffer: Uint8Array): Promise<number | null> {
          while (chunks.length === 0 && !ended) {
            await new Promise<void>((r) => wake = r);
          }
          const chunk = chunks[0];
          if (chunk === undefined) return null;
          const n = Math.min(chunk.length, buffer.length);
          buffer.set(chunk.subarray(0, n));
          if (n === chunk.length) chunks.shift();
          else chunks[0] = chunk.subarray(n);
          return n;
        },
        write(bytes: Uint8Array): Promise<number> {
          return new Promise((ok, fail) =>
            socket.write(bytes, (error) => error ? fail(error) : ok(bytes.length))
          );
        },
        close() {
          socket.destroy();
          ended = true;
          poke();
        },
        localAddr: { transport: "tcp", hostname: localAddress, port: plain.localPort },
      };
      resolve(conn as unknown as Deno.Conn);
    });
  });
}

/** The resident memory of process `pid` in KiB (VmRSS of /proc/<pid>/status). */
export function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

/**
 * The kernel's timer field ("tr") of the TCP socket from 127.0.0.1:`localPort` to
 * 127.0.0.1:`remotePort` (IPv4, /proc/net/tcp): 2 means the keepalive timer is armed.
 */
export function tcpTimer(localPort: number, remotePort: number): number | undefined {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  const local = `0100007F:${hex(localPort)}`;
  const remote = `0100007F:${hex(remotePort)}`;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === local && fields[2] === remote) return Number(fields[5].split(":")[0]);
  }
  return undefined;
}

/** Polls `condition` every 20 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
