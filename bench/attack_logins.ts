/**
 * Measures password guessing from one address (issue "Hostile internet, round two", finding 3)
 * against a Parley checkout, at the production hash cost by default:
 *
 * 1. `--flood` connections from 127.0.0.2 send wrong passwords for alice as fast as they are
 *    answered; meanwhile `--samples` users log in from 127.0.0.1, one after another, each with
 *    its own password (nothing remembered): how long each waits for its `0:<id>`.
 * 2. On a fresh server, `--guessers` connections from 127.0.0.2 guess for `--window-s` seconds:
 *    the guesses a second the address gets answered (each closed connection is replaced).
 *
 * It runs the checkout's own main.ts and admin CLI, so it works against older versions too:
 *
 * ```sh
 * git worktree add /tmp/before-logins 1e5eef1
 * deno run -A bench/attack_logins.ts --root /tmp/before-logins
 * deno run -A bench/attack_logins.ts
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loginFlood, timeLogin } from "../tests/login_attack_support.ts";
import { sleep } from "../tests/helpers.ts";
import { addUserWith } from "./attack_support.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string", default: new URL("..", import.meta.url).pathname },
    "hash-cost": { type: "string", default: "15" },
    flood: { type: "string", default: "200" },
    samples: { type: "string", default: "3" },
    guessers: { type: "string", default: "100" },
    "window-s": { type: "string", default: "20" },
  },
}).values;
const main = `${args.root.replace(/\/$/, "")}/main.ts`;
const cost = args["hash-cost"];
const samples = Number(args.samples);
const ATTACKER = "127.0.0.2";

/** Runs the checkout's admin CLI: adds `name` with `password`, hashed at the bench's cost. */
function addUser(db: string, name: string, password: string): Promise<void> {
  return addUserWith(main, db, name, password, cost);
}

/** The checkout's server on a free loopback port, on a copy of `db`; stop() kills it. */
async function serve(db: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const copy = `${db}.${Date.now()}`;
  await Deno.copyFile(db, copy);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "--host", "127.0.0.1", "--port", "0", "--db", copy],
    // A login waiting behind the flood may take longer than the default 30 s login timeout.
    env: { PARLEY_HASH_COST: cost, PARLEY_LOGIN_TIMEOUT_MS: "600000" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const port = Promise.withResolvers<number>();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const found = /listening .*?transport=tcp address=\S+:(\d+)/.exec(chunk);
      if (found) port.resolve(Number(found[1]));
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  void child.status.then(() => port.reject(new Error(`${main} exited before listening`)));
  return {
    port: await port.promise,
    stop: async () => {
      child.kill("SIGKILL");
      await child.status;
      await reading;
    },
  };
}

const dir = await Deno.makeTempDir({ prefix: "parley-attack-logins-" });
const db = `${dir}/parley.db`;
await addUser(db, "alice", "alice-secret");
for (let i = 0; i < samples; i++) await addUser(db, `user${i}`, `password-${i}`);
console.log(`checkout ${args.root}, --hash-cost ${cost}`);

// 1. A login from another address while one address floods.
let server = await serve(db);
try {
  const flood = loginFlood(server.port, ATTACKER, Number(args.flood), "alice");
  while (flood.started < Number(args.flood)) await sleep(20);
  const waits: number[] = [];
  for (let i = 0; i < samples; i++) {
    waits.push(await timeLogin(server.port, "127.0.0.1", `user${i}`, `password-${i}`, 300_000));
  }
  await flood.stop();
  const shown = waits.map((ms) => (ms / 1000).toFixed(2)).join(", ");
  console.log(
    `login from 127.0.0.1 while ${args.flood} connections of ${ATTACKER} flood: ${shown} s`,
  );
} finally {
  await server.stop();
}

// 2. Guesses a second from one address with many connections.
server = await serve(db);
try {
  const windowMs = Number(args["window-s"]) * 1000;
  const start = performance.now();
  const flood = loginFlood(server.port, ATTACKER, Number(args.guessers), "alice");
  await sleep(windowMs);
  const answered = flood.answeredBetween(start, start + windowMs);
  await flood.stop();
  console.log(
    `${args.guessers} connections of ${ATTACKER}: ${answered} guesses answered in ` +
      `${args["window-s"]} s = ${(answered / (windowMs / 1000)).toFixed(2)} guesses/s`,
  );
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
