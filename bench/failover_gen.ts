/**
 * The client process of bench/failover.ts: holds users `first`…`first+count−1`, each a
 * {@linkcode ParleyClient} (lib/client/client.ts) with `reconnect` on, connected through HAProxy
 * and in room `room<i % rooms>`. Driven over stdin/stdout (bench/gen_process.ts):
 *
 * - at start it logs every client in by password (a few at a time, retrying `busy`) and joins,
 *   then prints `READY {"ms":…}`;
 * - `MARK`: forget who was lost and who came back (a new repetition starts);
 * - `STATUS`: prints `STATUS {"lost":…,"back":…,"lastBackAt":…,…}`; a client is lost when its
 *   first `reconnecting` event comes, and back when its room's `2:` reply comes after that;
 * - `HEAR <tag>` then `SAY <tag>`: clients 0…rooms−1 (one a room) send `<tag>` to their room
 *   with echo; `STATUS` counts who heard it and when the last one did;
 * - `MOVE`: every second client closes and comes back as a new client through HAProxy by token
 *   (rejoining its room), which spreads the clients over the nodes again; prints `MOVED {…}`;
 * - `ROOMS`: prints `ROOMS {room: members}` as the first client sees them.
 *
 * Times are milliseconds since the epoch, so the parent compares them with its own clock.
 *
 * @module
 */

import { ParleyClient, type ReconnectOptions } from "../lib/client/client.ts";
import { passwordOf, userOf } from "./users.ts";

/** What the parent passes as JSON (the first argument). */
export interface FailoverGenConfig {
  port: number;
  first: number;
  count: number;
  rooms: number;
  /** Password logins in flight at once during setup. */
  loginsInFlight: number;
}

const config: FailoverGenConfig = JSON.parse(Deno.args[0]);
const roomOf = (i: number) => `room${i % config.rooms}`;
const print = (line: string) => console.log(line);

/** One user: its client, and what happened to it in this repetition. */
interface User {
  i: number;
  client: ParleyClient;
  lostAt: number;
  backAt: number;
  /** It held a token when it was lost. */
  hadToken: boolean;
  heardAt: number;
}

let fallbacks = 0;
let refusedTokens = 0;
let ended = 0;
let rejoinErrors = 0;
let hearing = "";
let attempts = 0;
let maxAttempt = 0;
const trace = Deno.env.get("FAILOVER_TRACE") !== undefined;

function reconnectOptions(user: () => User | undefined, i: number): ReconnectOptions {
  return {
    // The password is not kept: every fallback to it goes through here, and is counted.
    keepPassword: false,
    onPassword: () => {
      const u = user();
      if (u !== undefined && u.lostAt > 0 && u.backAt === 0) {
        fallbacks++;
        if (u.hadToken) refusedTokens++;
      }
      return passwordOf(i);
    },
  };
}

/** Reads a client's events for as long as it lives, marking its losses and returns. */
async function watch(u: User): Promise<void> {
  for await (const event of u.client) {
    if (trace && u.i % 20 === 0 && u.lostAt > 0 && u.backAt === 0) {
      console.error(`${u.i} +${Date.now() - u.lostAt} ${JSON.stringify(event)}`);
    }
    if (event.type === "reconnecting" && u.backAt === 0) {
      attempts++;
      maxAttempt = Math.max(maxAttempt, event.attempt);
    }
    if (event.type === "reconnecting" && event.attempt === 1 && u.lostAt === 0) {
      u.lostAt = Date.now();
      u.hadToken = u.client.token !== null;
    } else if (event.type === "joined" && u.lostAt > 0 && u.backAt === 0) {
      u.backAt = Date.now();
    } else if (event.type === "message" && hearing !== "" && event.text === hearing) {
      if (u.heardAt === 0) u.heardAt = Date.now();
    } else if (event.type === "error" && event.code === "2") {
      rejoinErrors++;
    } else if (event.type === "ended") {
      ended++;
    }
  }
}

/** Connects user i through HAProxy, by password (`token` null) or by token, and joins. */
async function enter(i: number, token: string | null): Promise<User> {
  let user: User | undefined;
  for (let attempt = 1;; attempt++) {
    let client: ParleyClient | undefined;
    try {
      client = await ParleyClient.connect({
        port: config.port,
        reconnect: reconnectOptions(() => user, i),
      });
      if (token !== null) {
        await client.resume(userOf(i), token).catch(async () => {
          fallbacks++;
          await client!.login(userOf(i), passwordOf(i));
        });
      } else {
        await client.login(userOf(i), passwordOf(i));
      }
      await client.join(roomOf(i));
      user = { i, client, lostAt: 0, backAt: 0, hadToken: false, heardAt: 0 };
      void watch(user);
      return user;
    } catch (error) {
      await client?.close();
      if (attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 800)); // busy, or refused
    }
  }
}

/** Runs `work` on 0…n−1 with at most `width` at once. */
async function pooled<T>(n: number, width: number, work: (k: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) {
        const k = next++;
        out[k] = await work(k);
      }
    }),
  );
  return out;
}

const started = Date.now();
const users = await pooled(
  config.count,
  config.loginsInFlight,
  (k) => enter(config.first + k, null),
);
print(`READY ${JSON.stringify({ ms: Date.now() - started })}`);

function status(): Record<string, number> {
  let lost = 0, back = 0, heard = 0, lastBackAt = 0, lastHeardAt = 0, connected = 0;
  let firstBackAt = Infinity;
  for (const u of users) {
    if (u.client.connected) connected++;
    if (u.lostAt > 0) lost++;
    if (u.backAt > 0) {
      back++;
      lastBackAt = Math.max(lastBackAt, u.backAt);
      firstBackAt = Math.min(firstBackAt, u.backAt);
    }
    if (u.heardAt > 0) {
      heard++;
      lastHeardAt = Math.max(lastHeardAt, u.heardAt);
    }
  }
  return {
    lost,
    back,
    heard,
    lastBackAt,
    firstBackAt: firstBackAt === Infinity ? 0 : firstBackAt,
    lastHeardAt,
    connected,
    fallbacks,
    refusedTokens,
    ended,
    rejoinErrors,
    attempts,
    lastAttempt: maxAttempt,
  };
}

/** Every second client leaves and comes back by token as a new client (not measured). */
async function move(): Promise<void> {
  const t = Date.now();
  const before = fallbacks;
  await pooled(Math.ceil(users.length / 2), 16, async (k) => {
    const u = users[2 * k];
    const token = u.client.token;
    await u.client.close();
    users[2 * k] = await enter(u.i, token);
  });
  print(`MOVED ${JSON.stringify({ ms: Date.now() - t, fallbacks: fallbacks - before })}`);
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let pending = "";
for await (const chunk of lines) {
  const all = (pending + chunk).split("\n");
  pending = all.pop()!;
  for (const line of all) {
    const [command, arg] = line.split(" ");
    if (command === "MARK") {
      fallbacks =
        refusedTokens =
        ended =
        rejoinErrors =
        attempts =
        maxAttempt =
          0;
      for (const u of users) u.lostAt = u.backAt = u.heardAt = 0;
    } else if (command === "STATUS") {
      print(`STATUS ${JSON.stringify(status())}`);
    } else if (command === "HEAR") {
      hearing = arg;
      for (const u of users) u.heardAt = 0;
    } else if (command === "SAY") {
      for (const u of users) {
        if (u.i < config.rooms) void u.client.say(arg, { echo: true }).catch(() => {});
      }
    } else if (command === "MOVE") {
      await move();
    } else if (command === "ROOMS") {
      const rooms = await users[0].client.rooms();
      print(`ROOMS ${JSON.stringify(Object.fromEntries(rooms.map((r) => [r.name, r.members])))}`);
    }
  }
}
await Promise.all(users.map((u) => u.client.close()));
