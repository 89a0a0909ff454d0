/**
 * The byte-flood attack (issue "Hostile internet, round two", finding 7) as pieces that
 * tests/hostile_bytes_test.ts and bench/attack_bytes.ts share: a victim that reads at a set
 * pace, like a client on a slow link, and an attacker that sends big lines at a set rate and
 * counts the server's refusals. Only Deno's own sockets: it runs against any Parley version.
 *
 * @module
 */

import { sleep } from "./helpers.ts";

const encoder = new TextEncoder();

/** A reader on a slow link: reads at most `bytesPerSecond`, and notices when it is cut off. */
export class PacedReader {
  /** Bytes read so far. */
  bytes = 0;
  /** Milliseconds from the start until the server closed the connection; null while open. */
  closedAfterMs: number | null = null;
  /** Lines read so far, by their first two bytes (`3:`, `9:`, `0:`, ...). */
  readonly linesByCode = new Map<string, number>();
  readonly #conn: Deno.Conn;
  readonly #started = performance.now();
  #stopped = false;
  readonly #done: Promise<void>;
  #lineStart = true;

  constructor(conn: Deno.Conn, bytesPerSecond: number, chunkBytes = 16 * 1024) {
    this.#conn = conn;
    this.#done = this.#run(bytesPerSecond, chunkBytes);
  }

  async #run(bytesPerSecond: number, chunkBytes: number): Promise<void> {
    const buffer = new Uint8Array(chunkBytes);
    try {
      while (!this.#stopped) {
        // Read no more than the pace allows: wait until the budget covers one more chunk.
        const due = this.#started + (this.bytes + chunkBytes) / bytesPerSecond * 1000;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        this.#count(buffer.subarray(0, n));
        this.bytes += n;
      }
    } catch { /* reset: cut off as well */ }
    if (!this.#stopped) this.closedAfterMs = performance.now() - this.#started;
  }

  #count(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      if (this.#lineStart && i + 1 < chunk.length) {
        const code = String.fromCharCode(chunk[i], chunk[i + 1]);
        this.linesByCode.set(code, (this.linesByCode.get(code) ?? 0) + 1);
      }
      this.#lineStart = chunk[i] === 0x0a;
    }
  }

  /** Stops reading and closes the socket. */
  async stop(): Promise<void> {
    this.#stopped = true;
    try {
      this.#conn.close();
    } catch { /* closed already */ }
    await this.#done;
  }
}

/** What an attacker achieved. */
export interface FloodResult {
  /** Lines written. */
  sent: number;
  /** `9:<code>:rate-limited` replies read. */
  refused: number;
  /** Whether the server closed the attacker's connection. */
  closed: boolean;
  /** How long the flood went on, in milliseconds. */
  elapsedMs: number;
}

/**
 * Writes `line` (LF added) `linesPerSecond` times a second for `durationMs`, reading the
 * replies meanwhile and counting the refusals among them.
 */
export async function flood(
  conn: Deno.Conn,
  line: string,
  linesPerSecond: number,
  durationMs: number,
): Promise<FloodResult> {
  const bytes = encoder.encode(line + "\n");
  const result: FloodResult = { sent: 0, refused: 0, closed: false, elapsedMs: 0 };
  let finished = false;
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    let text = "";
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n), { stream: true });
        const lines = text.split("\n");
        text = lines.pop()!;
        result.refused += lines.filter((l) => l.endsWith(":rate-limited")).length;
      }
    } catch { /* reset */ }
    if (!finished) result.closed = true;
  })();
  const started = performance.now();
  try {
    for (;;) {
      const elapsed = performance.now() - started;
      if (elapsed >= durationMs || result.closed) break;
      const due = Math.floor(elapsed / 1000 * linesPerSecond) + 1;
      while (result.sent < due) {
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
        result.sent++;
      }
      await sleep(5);
    }
  } catch {
    result.closed = true;
  }
  result.elapsedMs = performance.now() - started;
  finished = true;
  try {
    conn.close();
  } catch { /* closed already */ }
  await reading;
  return result;
}

/** Connects to 127.0.0.1:`port`, logs in, and waits for `0:<id>` (read byte by byte). */
export async function rawLogin(port: number, user: string, password: string): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(`0:${user}:${password}\n`));
  let reply = "";
  const one = new Uint8Array(1);
  while (!reply.endsWith("\n")) {
    if (await conn.read(one) === null) throw new Error(`login of ${user}: connection closed`);
    reply += String.fromCharCode(one[0]);
  }
  if (!/^0:[1-9]\d*\n$/.test(reply)) throw new Error(`login of ${user} failed: ${reply}`);
  return conn;
}
