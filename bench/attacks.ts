/**
 * The hostile-internet attacks, measured: starts a Parley server (this tree's, or another
 * checkout's with `--tree DIR`, e.g. a worktree of an older commit), runs one attack against it on
 * loopback, and prints what it cost the server. A server past 2 GiB of RSS is killed, so a
 * vulnerable build cannot take the machine down.
 *
 *   deno run -A bench/attacks.ts fragments [--count 16] [--mib 32] [--tree DIR]
 *   deno run -A bench/attacks.ts after-close [--mib 128]
 *   deno run -A bench/attacks.ts empty-frames [--count 3600000]
 *   deno run -A bench/attacks.ts files [--count 500]
 *   deno run -A bench/attacks.ts address [--count 2000]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connectFrom } from "../tests/hardening_support.ts";
import {
  alive,
  closeAll,
  countEvents,
  cpuSeconds,
  emptyFrames,
  HALF_HEAD,
  holdsSocket,
  limitFiles,
  openMany,
  rssKiB,
  sendFragments,
  textFrame,
  watchPeakRss,
  writeOrGone,
} from "../tests/hostile_support.ts";
import { RawWsClient } from "../tests/ws_support.ts";
import { addUserWith } from "./attack_support.ts";

const RSS_KILL_KIB = 2 << 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

interface Target {
  pid: number;
  tcp: number;
  ws: number;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `tree`'s main.ts with a fresh database holding alice, on loopback, WebSocket on. */
async function startTarget(tree: string, extra: string[]): Promise<Target> {
  const main = `${tree}/main.ts`;
  const dir = await Deno.makeTempDir({ prefix: "parley-attack-" });
  const db = `${dir}/parley.db`;
  await addUserWith(main, db, "alice", "wonderland");
  const help = new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), { args: ["run", "-A", main, "--help"] }).output())
      .stdout,
  );
  // Flags an older tree does not know are left out (it has no such limit).
  const args = ["--host", "127.0.0.1", "--port", "0", "--ws-port", "0", "--db", db];
  for (let i = 0; i < extra.length; i += 2) {
    if (help.includes(extra[i])) args.push(extra[i], extra[i + 1]);
  }
  if (!args.includes("--hash-cost")) args.push("--hash-cost", "10");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  void read(child.stdout);
  void read(child.stderr);
  const watchdog = setInterval(() => {
    try {
      if (rssKiB(child.pid) > RSS_KILL_KIB) {
        console.log(`server passed ${mib(RSS_KILL_KIB)} of RSS: killed`);
        child.kill("SIGKILL");
      }
    } catch { /* exited */ }
  }, 100);
  const deadline = Date.now() + 15_000;
  let tcp: RegExpMatchArray | null = null;
  let ws: RegExpMatchArray | null = null;
  while (tcp === null || ws === null) {
    if (Date.now() > deadline) throw new Error(`server did not start:\n${text}`);
    await sleep(50);
    tcp = text.match(/listening transport=tcp address=\S+:(\d+)/);
    ws = text.match(/listening transport=ws address=\S+:(\d+)/);
  }
  console.log(`server: ${main} ${args.join(" ")}`);
  return {
    pid: child.pid,
    tcp: Number(tcp[1]),
    ws: Number(ws[1]),
    log: () => text,
    async stop() {
      clearInterval(watchdog);
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

function rssOrDead(pid: number): string {
  return alive(pid) ? mib(rssKiB(pid)) : "dead";
}

/** Waits (up to `ms`) until the server no longer holds the socket; the time it took, or null. */
async function goneWithin(t: Target, client: Deno.Conn, ms: number): Promise<number | null> {
  const start = Date.now();
  const port = (client.localAddr as Deno.NetAddr).port;
  while (Date.now() - start < ms) {
    if (!alive(t.pid) || !holdsSocket(t.pid, t.ws, port)) return Date.now() - start;
    await sleep(100);
  }
  return null;
}

const scenarios: Record<string, (tree: string, count?: number, size?: number) => Promise<void>> = {
  async fragments(tree, count = 16, size = 32) {
    const t = await startTarget(tree, []);
    const raw = await RawWsClient.connect(t.ws);
    const before = rssKiB(t.pid);
    const peak = watchPeakRss(t.pid);
    const sent = await sendFragments(raw.conn, count, size << 20);
    await sleep(2000);
    console.log(
      `fragments ${count} x ${size} MiB: sent ${mib(sent / 1024)}; RSS ${mib(before)} -> peak ` +
        `${mib(peak.stop())}, ${rssOrDead(t.pid)} 2 s later`,
    );
    raw.close();
    await t.stop();
  },
  async "after-close"(tree, _count, size = 128) {
    const t = await startTarget(tree, ["--login-timeout-ms", "1000"]);
    const raw = await RawWsClient.connect(t.ws);
    await raw.next(5000); // the close frame; never answered
    const before = rssKiB(t.pid);
    const peak = watchPeakRss(t.pid);
    const sending = sendFragments(raw.conn, Math.max(1, size / 8), 8 << 20);
    const gone = await goneWithin(t, raw.conn, 30_000);
    const sent = await Promise.race([sending, sleep(0).then(() => -1)]);
    console.log(
      `after the server's close: socket ${
        gone === null ? "still held 30 s later" : `gone in ${gone} ms`
      }` +
        `; RSS ${mib(before)} -> peak ${mib(peak.stop())}, now ${rssOrDead(t.pid)}${
          sent >= 0 ? `, ${mib(sent / 1024)} sent` : ""
        }`,
    );
    raw.close();
    await t.stop();
  },
  async "empty-frames"(tree, count = 3_600_000) {
    const t = await startTarget(tree, ["--hash-cost", "14"]);
    const raw = await RawWsClient.connect(t.ws);
    for (let i = 0; i < 5; i++) await writeOrGone(raw.conn, textFrame("0:nobody:x"));
    for (let i = 0; i < 5; i++) await raw.next(20_000);
    const before = rssKiB(t.pid);
    const peak = watchPeakRss(t.pid);
    await writeOrGone(raw.conn, textFrame("0:nobody:x")); // waits a second, then hashes
    await writeOrGone(raw.conn, emptyFrames(count));
    await writeOrGone(raw.conn, textFrame("0:alice:wonderland"));
    const replies = [
      await raw.next(60_000).catch(() => "none"),
      await raw.next(60_000).catch(() => "none"),
    ];
    console.log(
      `empty frames ${count} (${mib(count * 6 / 1024)}) while a login waits: RSS ${
        mib(before)
      } -> ` +
        `peak ${mib(peak.stop())}, now ${rssOrDead(t.pid)}; replies ${replies.join(" ")}`,
    );
    raw.close();
    await t.stop();
  },
  async files(tree, count = 500) {
    const t = await startTarget(tree, ["--max-connections", "2000", "--header-timeout-ms", "2000"]);
    await limitFiles(t.pid, 256);
    const ws = await openMany(t.ws, Math.round(count * 0.6), HALF_HEAD);
    const tcp = await openMany(t.tcp, count - ws.length);
    await sleep(500);
    const lines = countEvents(t.log(), "accept-error");
    const cpu = alive(t.pid) ? cpuSeconds(t.pid) : 0;
    await sleep(3000);
    const used = alive(t.pid) ? (cpuSeconds(t.pid) - cpu).toFixed(2) : "-";
    const died = /Too many open files/.test(t.log()) && !alive(t.pid);
    console.log(
      `files (limit 256, ${ws.length} half heads + ${tcp.length} TCP): ` +
        `${alive(t.pid) ? "alive" : died ? "dead (Too many open files)" : "dead"}; ` +
        `CPU ${used} s in 3 s; accept-error lines in those 3 s ${
          countEvents(t.log(), "accept-error") - lines
        }`,
    );
    closeAll([...ws, ...tcp]);
    await t.stop();
  },
  async address(tree, count = 2000) {
    const t = await startTarget(tree, ["--max-connections", String(Math.round(count / 2))]);
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < count; i += 100) {
      const batch = Array.from(
        { length: Math.min(100, count - i) },
        () => connectFrom(t.tcp, "127.0.0.2").catch(() => null),
      );
      for (const c of await Promise.all(batch)) if (c !== null) conns.push(c);
    }
    await sleep(500);
    const login = await Deno.connect({ hostname: "127.0.0.1", port: t.tcp });
    await writeOrGone(login, new TextEncoder().encode("0:alice:wonderland\n"));
    const buffer = new Uint8Array(256);
    const n = await Promise.race([login.read(buffer), sleep(5000).then(() => null)]);
    const reply = n === null ? "(nothing)" : new TextDecoder().decode(buffer.subarray(0, n)).trim();
    console.log(
      `address: ${conns.length} connections from 127.0.0.2 (--max-connections ${count / 2}); ` +
        `a login from 127.0.0.1 gets ${JSON.stringify(reply)}`,
    );
    login.close();
    closeAll(conns);
    await t.stop();
  },
};

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { tree: { type: "string" }, count: { type: "string" }, mib: { type: "string" } },
  allowPositionals: true,
});
const run = scenarios[positionals[0] ?? ""];
if (run === undefined) {
  console.error(`usage: attacks.ts <${Object.keys(scenarios).join("|")}> [--tree DIR]`);
  Deno.exit(2);
}
const tree = values.tree ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const number = (v: string | undefined) => v === undefined ? undefined : Number(v);
await run(tree, number(values.count), number(values.mib));
Deno.exit(0);
