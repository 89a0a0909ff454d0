/**
 * How much a held TCP connection costs a Deno process, with nothing of Parley in it: a bare server
 * that accepts `--conns` connections and keeps one `conn.read(buffer)` pending on each, with a
 * per-connection buffer of `--buffer` bytes (0: no read pending at all). It prints the RSS per
 * connection, which is the floor under Parley's idle figure and shows what the read buffer adds.
 *
 * ```sh
 * deno run -A bench/idle_floor.ts --conns 10000 --buffer 16384
 * deno run -A bench/idle_floor.ts --conns 10000 --buffer 1024
 * deno run -A bench/idle_floor.ts --conns 10000 --buffer 0
 * deno run -A bench/idle_floor.ts --conns 5000 --buffer 16 --settle-ms 40000
 * ```
 *
 * @module
 */

import { memoryKiB } from "./servers.ts";

function flag(name: string, fallback: number): number {
  const at = Deno.args.indexOf(name);
  return at === -1 ? fallback : Number(Deno.args[at + 1]);
}

async function server(conns: number, bufferBytes: number): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`PORT ${(listener.addr as Deno.NetAddr).port}`);
  const held: Deno.Conn[] = [];
  for await (const conn of listener) {
    conn.setNoDelay(true);
    held.push(conn);
    if (bufferBytes > 0) {
      const buffer = new Uint8Array(bufferBytes);
      void (async () => {
        try {
          while ((await conn.read(buffer)) !== null) { /* idle: nothing arrives */ }
        } catch { /* closed */ }
      })();
    }
    if (held.length === conns) break;
  }
  await new Promise((resolve) => setTimeout(resolve, 600_000)); // the parent kills us sooner
}

async function main(): Promise<void> {
  const conns = flag("--conns", 10_000);
  const bufferBytes = flag("--buffer", 16 * 1024);
  if (Deno.args.includes("--serve")) return await server(conns, bufferBytes);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve", ...Deno.args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/PORT (\d+)/.test(text)) text += (await reader.read()).value ?? "";
  const port = Number(text.match(/PORT (\d+)/)![1]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = memoryKiB(child.pid, "VmRSS");
  const clients: Deno.Conn[] = [];
  for (let i = 0; i < conns; i++) clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const after = memoryKiB(child.pid, "VmRSS");
  // As bench/run.ts's idle scenario: V8 gives back the young generation it grew while the
  // connections came in only after some quiet seconds.
  let settled = after;
  for (const end = performance.now() + flag("--settle-ms", 40_000); performance.now() < end;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    settled = Math.min(settled, memoryKiB(child.pid, "VmRSS"));
  }
  const per = (kib: number) => ((kib - before) / conns).toFixed(2);
  console.log(
    `buffer ${bufferBytes} B, ${conns} connections: RSS ${before} → ${after} KiB, ` +
      `${per(after)} KiB per connection; settled ${settled} KiB, ${per(settled)} KiB`,
  );
  Deno.kill(child.pid, "SIGTERM");
  await child.status;
  for (const c of clients) c.close();
}

if (import.meta.main) await main();
