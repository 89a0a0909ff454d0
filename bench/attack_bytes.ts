/**
 * Measures the byte-flood attack (issue "Hostile internet, round two", finding 7) against a
 * Parley checkout: bob reads at 1 MB/s while alice sends `3:2:bob:<65 KB>` 200 times a second.
 * Prints how long until bob is dropped as a slow consumer (or "never in N s"), and the bytes a
 * second that got through from alice. Runs the checkout's own main.ts and admin CLI, so it
 * works against older versions too:
 *
 * ```sh
 * git worktree add /tmp/before 1e5eef1
 * deno run -A bench/attack_bytes.ts --root /tmp/before --seconds 10
 * deno run -A bench/attack_bytes.ts --seconds 10
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { flood, PacedReader, rawLogin } from "../tests/attack_support.ts";
import { addUserWith } from "./attack_support.ts";

const args = parseArgs({
  args: Deno.args,
  options: { root: { type: "string" }, seconds: { type: "string", default: "10" } },
}).values;
const root = args.root ?? new URL("..", import.meta.url).pathname;
const seconds = Number(args.seconds);
const main = `${root.replace(/\/$/, "")}/main.ts`;
const LINE = "3:2:bob:" + "x".repeat(65_000);
const READER_BYTES_PER_SECOND = 1_000_000;
const LINES_PER_SECOND = 200;

function addUser(db: string, name: string): Promise<void> {
  return addUserWith(main, db, name, "pw");
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const dir = await Deno.makeTempDir({ prefix: "parley-attack-" });
const db = `${dir}/parley.db`;
await addUser(db, "alice");
await addUser(db, "bob");
const port = freePort();
const server = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", main, "--host", "127.0.0.1", "--port", String(port), "--db", db],
  stdin: "null",
  stdout: "piped",
  stderr: "piped",
}).spawn();
let droppedAt: number | null = null;
let attackStarted = 0;
const watch = async (stream: ReadableStream<Uint8Array>) => {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    if (droppedAt === null && chunk.includes("slow-consumer")) {
      droppedAt = performance.now() - attackStarted;
    }
  }
};
const watching = Promise.all([watch(server.stdout), watch(server.stderr)]);
try {
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (error) {
      if (i > 300) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const bob = new PacedReader(await rawLogin(port, "bob", "pw"), READER_BYTES_PER_SECOND);
  const alice = await rawLogin(port, "alice", "pw");
  attackStarted = performance.now();
  const result = await flood(alice, LINE, LINES_PER_SECOND, seconds * 1000);
  await bob.stop();
  const elapsed = result.elapsedMs / 1000;
  const through = (result.sent - result.refused) * (LINE.length + 1) / elapsed;
  const dropped = droppedAt === null
    ? `never in ${seconds} s`
    : `after ${(droppedAt / 1000).toFixed(1)} s`;
  console.log(`root: ${root}`);
  console.log(
    `alice: ${result.sent} lines of ${LINE.length + 1} bytes in ${elapsed.toFixed(1)} s, ` +
      `${result.refused} refused (rate-limited), ${result.closed ? "closed" : "still open"}`,
  );
  console.log(`alice got through: ${(through / 1024).toFixed(0)} KiB/s`);
  console.log(`bob (reads ${READER_BYTES_PER_SECOND / 1e6} MB/s): dropped ${dropped}`);
} finally {
  server.kill("SIGTERM");
  await server.status;
  await watching;
  await Deno.remove(dir, { recursive: true });
}
