/**
 * Support for the hostile-internet tests (tests/hostile_*_test.ts) and bench/attacks.ts: the
 * attacks themselves (WebSocket frames streamed without holding them, empty-frame floods,
 * half-sent HTTP heads) and what the kernel says about the server (its memory, CPU time, file
 * limit, and whether it still holds a given socket).
 *
 * @module
 */

import { rssKiB } from "./hardening_support.ts";

export { rssKiB };

const encoder = new TextEncoder();

/** Writes all of `bytes`; false once the peer is gone (a reset, a broken pipe, a closed socket). */
export async function writeOrGone(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes `bytes` unless `deadline` (a Date.now() time) passes first: true when written, false when
 * the peer is gone or the deadline passed (the write may then still be pending: close the socket).
 */
export async function writeBefore(
  conn: Deno.Conn,
  bytes: Uint8Array,
  deadline: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), false);
  });
  try {
    return await Promise.race([writeOrGone(conn, bytes), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A client frame header (masked with the zero key, so the payload goes as it is): `opcode` with
 * FIN unless `fin` is false, announcing `length` bytes.
 */
export function frameHeader(opcode: number, length: number, fin = true): Uint8Array {
  const head = [(fin ? 0x80 : 0) | opcode];
  if (length < 126) head.push(0x80 | length);
  else if (length < 65536) head.push(0x80 | 126, length >> 8, length & 0xff);
  else {
    // Below 2^32: the top four of the eight length bytes are zero.
    head.push(0x80 | 127, 0, 0, 0, 0);
    head.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  return new Uint8Array([...head, 0, 0, 0, 0]);
}

/** 64 KiB of `a`: payload bytes with no line break in them. */
const FILLER = new Uint8Array(64 * 1024).fill(0x61);

/**
 * The fragment attack: a text frame without FIN, then continuation frames, `fragments` in all
 * (the last with FIN), each announcing and carrying `fragmentBytes` bytes, streamed so the
 * attacker holds only 64 KiB. Resolves to the bytes written before the server hung up.
 */
export async function sendFragments(
  conn: Deno.Conn,
  fragments: number,
  fragmentBytes: number,
): Promise<number> {
  let sent = 0;
  for (let i = 0; i < fragments; i++) {
    const header = frameHeader(i === 0 ? 1 : 0, fragmentBytes, i === fragments - 1);
    if (!await writeOrGone(conn, header)) return sent;
    sent += header.length;
    for (let left = fragmentBytes; left > 0;) {
      const piece = FILLER.subarray(0, Math.min(left, FILLER.length));
      if (!await writeOrGone(conn, piece)) return sent;
      sent += piece.length;
      left -= piece.length;
    }
  }
  return sent;
}

/** `count` empty text frames with FIN (6 bytes each: header, zero length, mask). */
export function emptyFrames(count: number): Uint8Array {
  const out = new Uint8Array(count * 6);
  for (let i = 0; i < count; i++) {
    out[i * 6] = 0x81;
    out[i * 6 + 1] = 0x80;
  }
  return out;
}

/** One text frame holding `line` (zero mask). */
export function textFrame(line: string): Uint8Array {
  const payload = encoder.encode(line);
  const header = frameHeader(1, payload.length);
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return out;
}

/** A request head cut short: the request line and a Host header, and never the blank line. */
export const HALF_HEAD = encoder.encode("GET / HTTP/1.1\r\nHost: parley\r\n");

/** Samples a process's RSS every 25 ms until stopped; `stop()` gives the highest seen, in KiB. */
export function watchPeakRss(pid: number): { stop(): number } {
  let peak = rssKiB(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssKiB(pid));
    } catch { /* exited: the caller sees it */ }
  }, 25);
  return {
    stop() {
      clearInterval(timer);
      try {
        peak = Math.max(peak, rssKiB(pid));
      } catch { /* exited */ }
      return peak;
    },
  };
}

/** The CPU time (user + system) process `pid` has used, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) start at its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** Whether process `pid` is still running (not exited, not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Lowers the open-file limit (soft and hard) of running process `pid` with prlimit(1). */
export async function limitFiles(pid: number, files: number): Promise<void> {
  const { code, stderr } = await new Deno.Command("prlimit", {
    args: ["--pid", String(pid), `--nofile=${files}:${files}`],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`prlimit failed: ${new TextDecoder().decode(stderr)}`);
}

/**
 * Whether process `pid` still has the TCP socket between its port `serverPort` and the client
 * port `clientPort` open (IPv4 loopback): the socket's inode in /proc/net/tcp among its files.
 */
export function holdsSocket(pid: number, serverPort: number, clientPort: number): boolean {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex(serverPort)}`) && f[2]?.endsWith(`:${hex(clientPort)}`)) {
      if (f[9] !== "0") inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return false;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined && inodes.has(inode)) return true;
    } catch { /* closed meanwhile */ }
  }
  return false;
}

/** Counts the lines of `log` that hold `event` as a word (a log event's name). */
export function countEvents(log: string, event: string): number {
  return log.split("\n").filter((line) => new RegExp(`\\b${event}\\b`).test(line)).length;
}

/**
 * Opens `count` sockets to 127.0.0.1:`port` (at most `parallel` connecting at once), each
 * writing `first` if given; sockets that do not connect within `timeoutMs` are given up on.
 */
export async function openMany(
  port: number,
  count: number,
  first?: Uint8Array,
  { parallel = 50, timeoutMs = 3000 } = {},
): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - i) }, async () => {
      const connecting = Deno.connect({ hostname: "127.0.0.1", port });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<null>((resolve) => timer = setTimeout(resolve, timeoutMs, null));
      const conn = await Promise.race([connecting.catch(() => null), timeout]);
      clearTimeout(timer);
      if (conn === null) {
        connecting.then((late) => late.close(), () => {}); // a late one is closed at once
        return;
      }
      if (first === undefined || await writeOrGone(conn, first)) conns.push(conn);
      else conn.close();
    });
    await Promise.all(batch);
  }
  return conns;
}

/** Resolves to whether `conn`'s peer ended it (EOF or reset) within `timeoutMs`. */
export async function endsWithin(conn: Deno.Conn, timeoutMs: number): Promise<boolean> {
  const buffer = new Uint8Array(16 * 1024);
  const deadline = Date.now() + timeoutMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = setTimeout(resolve, timeoutMs, "timeout")
  );
  try {
    while (Date.now() < deadline) {
      const n = await Promise.race([conn.read(buffer), timeout]);
      if (n === "timeout") return false;
      if (n === null) return true;
    }
    return false;
  } catch {
    return true; // reset
  } finally {
    clearTimeout(timer);
  }
}

/** Closes every socket, ignoring those already closed. */
export function closeAll(conns: Iterable<Deno.Conn>): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}
