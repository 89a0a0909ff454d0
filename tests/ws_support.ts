/**
 * WebSocket test helpers: start the server with `--ws-port 0` and find the port it took, a
 * WebSocket line client (Deno's WebSocket), and a raw client that speaks the WebSocket framing
 * over a plain or TLS socket (to set any Origin, to stop reading, to trust a test CA).
 *
 * @module
 */

import { InboxClient, type StartOptions, startServer, type TestServer } from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A server started with a WebSocket port. */
export interface WsTestServer extends TestServer {
  /** The WebSocket port. */
  wsPort: number;
}

/** Starts the server with `--ws-port 0` (and `args`), and waits for its `transport=ws` line. */
export async function startWsServer(options: StartOptions = {}): Promise<WsTestServer> {
  const server = await startServer({
    ...options,
    args: ["--ws-port", "0", ...(options.args ?? [])],
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const match = server.log().match(/listening transport=wss? address=\S+:(\d+)/);
    if (match) return Object.assign(server, { wsPort: Number(match[1]) });
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`no WebSocket listening line:\n${server.log()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A WebSocket line client on Deno's WebSocket: each frame received is one line. */
export class WsClient extends InboxClient {
  readonly socket: WebSocket;
  /** The close event's code, once closed. */
  closeCode: number | undefined;
  #closedEvent = Promise.withResolvers<void>();

  private constructor(socket: WebSocket) {
    super();
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      this.inbox.push(
        typeof event.data === "string" ? event.data : decoder.decode(event.data as ArrayBuffer),
      );
    };
    socket.onclose = (event) => {
      this.closeCode = event.code;
      this.inbox.end();
      this.#closedEvent.resolve();
    };
  }

  /** Opens `ws://127.0.0.1:<port>/` and waits for it to open (5 s at most). */
  static async connect(port: number, headers?: Record<string, string>): Promise<WsClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/`, headers ? { headers } : undefined);
    const client = new WsClient(socket);
    const opened = new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve());
      socket.addEventListener("close", () => reject(new Error("closed before it opened")));
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        opened,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("WebSocket did not open in 5 s")), 5000);
        }),
      ]);
    } catch (error) {
      await client.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  /** Connects and logs in, expecting `0:<id>`. */
  static async login(port: number, user: string, password: string): Promise<WsClient> {
    const client = await WsClient.connect(port);
    client.send(`0:${user}:${password}`);
    const reply = await client.next();
    if (!/^0:[1-9]\d*$/.test(reply)) {
      await client.close();
      throw new Error(`login of ${user} failed: ${reply}`);
    }
    return client;
  }

  /** Sends one frame (a string as a text frame, bytes as a binary frame). */
  send(frame: string | Uint8Array): void {
    this.socket.send(frame);
  }

  /** Closes (if open) and waits for the close event, 3 s at most. */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CONNECTING || this.socket.readyState === 1) {
      try {
        this.socket.close(1000);
      } catch { /* closing already */ }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#closedEvent.promise,
      new Promise((resolve) => timer = setTimeout(resolve, 3000)),
    ]);
    clearTimeout(timer);
  }
}

/**
 * A WebSocket client written against the socket: sends the upgrade with whatever headers a test
 * wants, masks its own frames, and reads the server's frames only when asked (so it can stop
 * reading altogether).
 */
export class RawWsClient {
  readonly conn: Deno.Conn;
  /** The upgrade's HTTP status (101 when it was accepted). */
  readonly status: number;
  #buffer: Uint8Array;

  private constructor(conn: Deno.Conn, status: number, rest: Uint8Array) {
    this.conn = conn;
    this.status = status;
    this.#buffer = rest;
  }

  /** Sends the upgrade request and reads the response head (5 s at most). */
  static async open(
    conn: Deno.Conn,
    host: string,
    headers: Record<string, string> = {},
  ): Promise<RawWsClient> {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const lines = [
      "GET / HTTP/1.1",
      `Host: ${host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
    let data: Uint8Array = new Uint8Array(0);
    const deadline = Date.now() + 5000;
    for (;;) {
      const text = decoder.decode(data);
      const end = text.indexOf("\r\n\r\n");
      if (end !== -1) {
        const headBytes = encoder.encode(text.slice(0, end + 4)).length;
        const status = Number(text.split(" ")[1]);
        return new RawWsClient(conn, status, data.subarray(headBytes));
      }
      if (Date.now() > deadline) throw new Error("no upgrade response within 5 s");
      const chunk = await readSome(conn, deadline - Date.now());
      if (chunk === null) throw new Error(`closed during the upgrade: ${text}`);
      data = concat(data, chunk);
    }
  }

  /** Connects to 127.0.0.1:`port` and upgrades. */
  static async connect(port: number, headers?: Record<string, string>): Promise<RawWsClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      return await RawWsClient.open(conn, `127.0.0.1:${port}`, headers);
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** Sends one masked frame: text (opcode 1) for a string, binary (2) for bytes. */
  async send(frame: string | Uint8Array): Promise<void> {
    const opcode = typeof frame === "string" ? 1 : 2;
    const payload = typeof frame === "string" ? encoder.encode(frame) : frame;
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const head: number[] = [0x80 | opcode];
    if (payload.length < 126) {
      head.push(0x80 | payload.length);
    } else if (payload.length < 65536) {
      head.push(0x80 | 126, payload.length >> 8, payload.length & 0xff);
    } else {
      head.push(0x80 | 127, 0, 0, 0, 0);
      const n = payload.length;
      head.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
    }
    const out = new Uint8Array(head.length + 4 + payload.length);
    out.set(head);
    out.set(mask, head.length);
    for (let i = 0; i < payload.length; i++) {
      out[head.length + 4 + i] = payload[i] ^ mask[i & 3];
    }
    await writeAll(this.conn, out);
  }

  /** The next data frame's payload as text; `null` at a close frame or the end of the stream. */
  async next(timeoutMs = 5000): Promise<string | null> {
    const frame = await this.nextFrame(timeoutMs);
    return frame === null ? null : decoder.decode(frame.payload);
  }

  /** The next data frame (text: opcode 1, binary: 2); `null` at a close frame or the end. */
  async nextFrame(timeoutMs = 5000): Promise<{ opcode: number; payload: Uint8Array } | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.#parse();
      if (frame !== undefined) {
        if (frame.opcode === 8) return null;
        if (frame.opcode === 1 || frame.opcode === 2) return frame;
        continue; // ping, pong
      }
      if (Date.now() > deadline) throw new Error(`no frame within ${timeoutMs} ms`);
      const chunk = await readSome(this.conn, deadline - Date.now());
      if (chunk === null) return null;
      this.#buffer = concat(this.#buffer, chunk);
    }
  }

  #parse(): { opcode: number; payload: Uint8Array } | undefined {
    const b = this.#buffer;
    if (b.length < 2) return undefined;
    let length = b[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = (b[2] << 8) | b[3];
      at = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
      at = 10;
    }
    if (b.length < at + length) return undefined;
    const payload = b.slice(at, at + length);
    this.#buffer = b.slice(at + length);
    return { opcode: b[0] & 0x0f, payload };
  }

  /** Closes the socket. */
  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** One read, or `null` at EOF; throws after `ms`. The socket is closed on a timeout. */
async function readSome(conn: Deno.Conn, ms: number): Promise<Uint8Array | null> {
  const buffer = new Uint8Array(64 * 1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const n = await Promise.race([
      conn.read(buffer),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          try {
            conn.close(); // ends the pending read, so no op outlives the test
          } catch { /* closed */ }
          reject(new Error(`no data within ${ms} ms`));
        }, Math.max(ms, 1));
      }),
    ]);
    return n === null ? null : buffer.slice(0, n);
  } catch (error) {
    if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.ConnectionReset) {
      return null;
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
