/**
 * Password-guessing attacks for tests/hostile_logins_test.ts and bench/attack_logins.ts: many
 * connections from one loopback address guessing as fast as they are answered (each one the
 * server closes is replaced, as an attacker would), and a timed login from another address.
 *
 * @module
 */

import { sleep, TestClient } from "./helpers.ts";
import { connectFrom } from "./hardening_support.ts";

/** A client connected from `address` (another loopback address: another client to the server). */
export async function clientFrom(port: number, address: string): Promise<TestClient> {
  return TestClient.fromConn(await connectFrom(port, address));
}

/**
 * `connections` connections from `address`, each sending `<prefix><distinct guess>` lines (a
 * wrong password every time, never the same twice), the next as soon as the last is answered.
 */
export class GuessFlood {
  /** When each guess was answered (performance.now()), in order. */
  readonly answers: number[] = [];
  /** How many guesses were sent. */
  sent = 0;
  /** How many connections have sent their first guess. */
  started = 0;
  #stopped = false;
  #clients = new Set<TestClient>();
  #loops: Promise<void>[] = [];

  /**
   * Starts the flood: `line(n)` is the n-th guess of a connection (`0:alice:guess-…`,
   * `2:vault:guess-…`); `answer` tells whether a reply is an answer to a guess; `setup` runs on
   * each new connection first (a login, for room guesses).
   */
  constructor(
    readonly port: number,
    readonly address: string,
    connections: number,
    readonly line: (connection: number, n: number) => string,
    readonly answer: (reply: string) => boolean = (reply) => reply === "0:-1",
    readonly setup: (client: TestClient, connection: number) => Promise<void> = async () => {},
  ) {
    for (let i = 0; i < connections; i++) this.#loops.push(this.#guess(i));
  }

  /** Guesses answered from `from` to `to` (performance.now() times). */
  answeredBetween(from: number, to: number): number {
    return this.answers.filter((at) => at >= from && at < to).length;
  }

  async #guess(connection: number): Promise<void> {
    let n = 0;
    let first = true;
    while (!this.#stopped) {
      let client: TestClient;
      try {
        client = await clientFrom(this.port, this.address);
      } catch {
        await sleep(50); // refused (a per-address cap): try again
        continue;
      }
      this.#clients.add(client);
      try {
        await this.setup(client, connection);
        while (!this.#stopped) {
          await client.send(this.line(connection, n++));
          this.sent++;
          if (first) this.started++;
          first = false;
          if (this.answer(await client.next(120_000))) this.answers.push(performance.now());
        }
      } catch {
        // Closed (too many failures): the attacker opens another.
      } finally {
        this.#clients.delete(client);
        await client.close();
      }
    }
  }

  /** Stops every connection and waits for them to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const client of this.#clients) void client.close();
    await Promise.all(this.#loops);
  }
}

/** A flood of wrong passwords for `user` from `connections` connections of `address`. */
export function loginFlood(
  port: number,
  address: string,
  connections: number,
  user: string,
): GuessFlood {
  return new GuessFlood(port, address, connections, (c, n) => `0:${user}:guess-${c}-${n}`);
}

/**
 * How long (ms) a right login of `user` from a new connection of `address` takes to be
 * answered with a session; throws if it is refused or not answered within `timeoutMs`.
 */
export async function timeLogin(
  port: number,
  address: string,
  user: string,
  password: string,
  timeoutMs = 60_000,
): Promise<number> {
  const client = await clientFrom(port, address);
  try {
    const sent = performance.now();
    await client.send(`0:${user}:${password}`);
    const reply = await client.next(timeoutMs);
    if (!/^0:[1-9]\d*$/.test(reply)) throw new Error(`login of ${user} refused: ${reply}`);
    return performance.now() - sent;
  } finally {
    await client.close();
  }
}
