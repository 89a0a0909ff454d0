/**
 * What the load generator says in each of the four protocols: the handshake that logs a client in
 * (and what ends it), joining a room, and the bytes of one room or direct message.
 *
 * Every message body is {@linkcode BODY_BYTES} bytes and ends in the marker byte {@linkcode MARK}
 * (a backquote), which nothing else any of the servers sends contains. Receivers count markers
 * with `indexOf`, whatever the protocol's framing around the body (one line in Parley and IRC,
 * two in NATS, six in Redis's RESP), so counting costs the same for every server. A stamped body
 * has {@linkcode STAMP_FLAG} 17 bytes before its marker, followed by 16 digits: the send time in
 * microseconds since the epoch.
 *
 * @module
 */

import type { GenConfig } from "./gen.ts";
import { mulberry32 } from "./gen_support.ts";
import { passwordOf, userOf } from "./users.ts";

/** The protocols the generator speaks. */
export type Protocol = "parley" | "irc" | "nats" | "redis";

/** The size of every message body, marker included. */
export const BODY_BYTES = 64;
/** The last byte of every body. */
export const MARK = 0x60; // `
/** The byte 17 before the marker when the 16 bytes between hold a timestamp. */
export const STAMP_FLAG = 0x5e; // ^
/** The byte there otherwise. */
export const NO_STAMP = 0x78; // x

const encoder = new TextEncoder();

/** The password every benchmark user has on Parley. */
export const PASSWORD = "pw";

/** User `i`'s name (also its IRC nick). */
export function userName(i: number): string {
  return `u${i}`;
}

/** Room `k`'s name in Parley and Redis (IRC adds `#`, NATS uses `room.` + name). */
export function roomName(k: number): string {
  return `r${k}`;
}

/** One step of a handshake: bytes to send (on the main or the publish connection) and a test. */
export interface Step {
  send: string;
  /** Which connection: Redis clients have a separate PUBLISH connection. */
  on: "main" | "pub";
  /** Returns true when the reply has arrived, or throws on a refusal. */
  done: (text: string) => boolean;
}

function expect(ok: RegExp, fail?: RegExp): (text: string) => boolean {
  return (text) => {
    if (fail && fail.test(text)) throw new Error(`refused: ${text.slice(0, 200).trim()}`);
    return ok.test(text);
  };
}

/** Whether a client of this protocol keeps a second connection for publishing. */
export function hasPubConnection(protocol: Protocol): boolean {
  return protocol === "redis";
}

/**
 * The steps that log user `i` in; `subscribeSelf` also subscribes to its own direct subject.
 * With `costly`, a Parley client logs in as bench/users.ts's user `i`.
 */
export function loginSteps(
  protocol: Protocol,
  i: number,
  subscribeSelf: boolean,
  costly = false,
): Step[] {
  const name = userName(i);
  switch (protocol) {
    case "parley":
      return [{
        send: costly ? `0:${userOf(i)}:${passwordOf(i)}\n` : `0:${name}:${PASSWORD}\n`,
        on: "main",
        done: expect(/^0:[1-9]\d*$/m, /^0:-1$|^9:/m),
      }];
    case "irc":
      return [{
        send: `NICK ${name}\r\nUSER ${name} 0 * :${name}\r\n`,
        on: "main",
        done: expect(/^:\S+ 001 /m, /^ERROR|^:\S+ 43[2-6] /m),
      }];
    case "nats": {
      const sub = subscribeSelf ? `SUB u.${i} 1\r\n` : "";
      return [{
        send: `CONNECT {"verbose":false,"pedantic":false,"echo":false,"name":"${name}"}\r\n` +
          `${sub}PING\r\n`,
        on: "main",
        done: expect(/^PONG\r?$/m, /^-ERR/m),
      }];
    }
    case "redis": {
      const steps: Step[] = [];
      if (subscribeSelf) {
        steps.push({
          send: resp("SUBSCRIBE", `u.${i}`),
          on: "main",
          done: expect(/subscribe\r\n/, /^-/m),
        });
      } else {
        steps.push({ send: resp("PING"), on: "main", done: expect(/^\+PONG\r?$/m, /^-/m) });
      }
      return steps;
    }
  }
}

/** The steps that put a logged-in user `i` in room `k`. */
export function joinSteps(protocol: Protocol, k: number): Step[] {
  const room = roomName(k);
  switch (protocol) {
    case "parley":
      return [{
        send: `2:${room}\n`,
        on: "main",
        done: expect(new RegExp(`^2:${room}:`, "m"), /^9:/m),
      }];
    case "irc":
      return [{
        send: `JOIN #${room}\r\n`,
        on: "main",
        done: expect(new RegExp(` 366 \\S+ #${room} `), / 4(03|05|71|73|74|75) /),
      }];
    case "nats":
      return [{ send: `SUB room.${room} 2\r\nPING\r\n`, on: "main", done: expect(/^PONG\r?$/m) }];
    case "redis":
      return [{ send: resp("SUBSCRIBE", room), on: "main", done: expect(/subscribe\r\n/, /^-/m) }];
  }
}

/** The steps that make a Redis client's publish connection ready (none for the others). */
export function pubSteps(protocol: Protocol): Step[] {
  return protocol === "redis"
    ? [{ send: resp("PING"), on: "pub", done: expect(/^\+PONG\r?$/m, /^-/m) }]
    : [];
}

/** A RESP array of bulk strings. */
export function resp(...args: string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${encoder.encode(a).length}\r\n${a}\r\n`;
  return out;
}

/** The reply to a server's keep-alive line, or null if the protocol has none. */
export function pongFor(protocol: Protocol): Uint8Array | null {
  if (protocol === "irc") return encoder.encode("PONG :bench\r\n");
  if (protocol === "nats") return encoder.encode("PONG\r\n");
  return null;
}

/** Bytes before and after the body of one message, for each framing. */
interface Frame {
  head: string;
  tail: string;
}

function roomFrames(protocol: Protocol, k: number): Frame[] {
  const room = roomName(k);
  switch (protocol) {
    case "parley":
      return [{ head: "3:1:", tail: "\n" }];
    case "irc":
      return [{ head: `PRIVMSG #${room} :`, tail: "\r\n" }];
    case "nats":
      return [{ head: `PUB room.${room} ${BODY_BYTES}\r\n`, tail: "\r\n" }];
    case "redis":
      return [{
        head: `*3\r\n$7\r\nPUBLISH\r\n$${room.length}\r\n${room}\r\n$${BODY_BYTES}\r\n`,
        tail: "\r\n",
      }];
  }
}

function directFrames(protocol: Protocol, targets: number[]): Frame[] {
  switch (protocol) {
    case "parley":
      return [{ head: `3:2:${targets.map(userName).join(":")}:`, tail: "\n" }];
    case "irc":
      return [{ head: `PRIVMSG ${targets.map(userName).join(",")} :`, tail: "\r\n" }];
    case "nats":
      return targets.map((t) => ({ head: `PUB u.${t} ${BODY_BYTES}\r\n`, tail: "\r\n" }));
    case "redis":
      return targets.map((t) => {
        const ch = `u.${t}`;
        return {
          head: `*3\r\n$7\r\nPUBLISH\r\n$${ch.length}\r\n${ch}\r\n$${BODY_BYTES}\r\n`,
          tail: "\r\n",
        };
      });
  }
}

/**
 * A reusable write buffer holding `count` messages back to back. `ends` holds, for every body,
 * the offset of its marker byte (its last); message m owns bodies `m * perMessage` up to the next message.
 */
export interface Batch {
  bytes: Uint8Array;
  ends: Int32Array;
  perMessage: number;
  count: number;
}

function buildBatch(framesOf: (m: number) => Frame[], count: number): Batch {
  const parts: string[] = [];
  const endsText: number[] = [];
  let perMessage = 0;
  let at = 0;
  const body = "x".repeat(BODY_BYTES - 1) + "`";
  for (let m = 0; m < count; m++) {
    const frames = framesOf(m);
    perMessage = frames.length;
    for (const f of frames) {
      const head = encoder.encode(f.head).length;
      parts.push(f.head, body, f.tail);
      endsText.push(at + head + BODY_BYTES - 1);
      at += head + BODY_BYTES + encoder.encode(f.tail).length;
    }
  }
  return {
    bytes: encoder.encode(parts.join("")),
    ends: Int32Array.from(endsText),
    perMessage,
    count,
  };
}

/** A batch of `count` messages to room `k`. */
export function roomBatch(protocol: Protocol, k: number, count: number): Batch {
  const frames = roomFrames(protocol, k);
  return buildBatch(() => frames, count);
}

/** A batch of `count` direct messages; `targetsOf(m)` picks message m's recipients. */
export function directBatch(
  protocol: Protocol,
  targetsOf: (m: number) => number[],
  count: number,
): Batch {
  return buildBatch((m) => directFrames(protocol, targetsOf(m)), count);
}

/**
 * How many deliveries one room message makes in a room of `size`: the others, or (Redis, which
 * has no "not to myself") everyone, the sender's own subscription included.
 */
export function roomFanout(protocol: Protocol, size: number): number {
  return protocol === "redis" ? size : size - 1;
}

/**
 * The write buffers generator client `index` cycles through: one batch to its room (one message
 * for paced), four batches of direct messages to targets drawn from a random seeded per client
 * (so every run sends the same), none for the scenarios that send nothing.
 */
export function clientBatches(
  config: Pick<
    GenConfig,
    "protocol" | "scenario" | "rooms" | "batch" | "seed" | "targets" | "first0" | "population"
  >,
  index: number,
): Batch[] {
  const { protocol, scenario } = config;
  if (scenario === "fanout" || scenario === "rooms" || scenario === "paced") {
    return [roomBatch(protocol, index % config.rooms, scenario === "paced" ? 1 : config.batch)];
  }
  if (scenario !== "direct") return [];
  const random = mulberry32(config.seed * 100_003 + index);
  const pick = () => {
    const set = new Set<number>();
    while (set.size < config.targets) {
      const t = config.first0 + Math.floor(random() * config.population);
      if (t !== index) set.add(t);
    }
    return [...set];
  };
  return Array.from({ length: 4 }, () => directBatch(protocol, pick, config.batch));
}
