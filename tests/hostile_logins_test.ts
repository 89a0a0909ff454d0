// Password guessing from a hostile address ("Hostile internet, round two", findings 3, 6 and 8),
// on loopback: the attacker's connections come from 127.0.0.2 (bound with node:net), everyone
// else from 127.0.0.1. Hashes cost real time (--hash-cost 12 to 14) so a queue of them shows.
import assert from "node:assert/strict";
import { sleep, startServer, TestClient, waitFor } from "./helpers.ts";
import { GuessFlood, loginFlood, timeLogin } from "./login_attack_support.ts";
import { openStore } from "../lib/store/open_store.ts";
import { FREE_LOGIN_FAILURES, LOGIN_CHECKS_PER_ADDRESS } from "../lib/protocol/limits.ts";
import { LoginThrottle } from "../lib/transport/login_throttle.ts";

const USERS = { alice: "pw", bob: "pw", carol: "pw", dave: "pw" };
const ATTACKER = "127.0.0.2";

/**
 * What the throttle means one address to get in `windowMs`, however many connections it uses:
 * what one connection sending guesses back to back gets (the free failures, then one per delay,
 * 250 ms doubling), plus the checks an address may have under way at once when its free ones
 * run out, plus one for the address's count decaying (3.99 failures are 3).
 */
function allowance(windowMs: number): number {
  const throttle = new LoginThrottle();
  let guesses = 0;
  for (let at = 0, failures = 0;; failures++) {
    at += throttle.delayMs("x", failures);
    if (at > windowMs) break;
    guesses++;
  }
  return guesses + LOGIN_CHECKS_PER_ADDRESS + 1;
}

Deno.test("3b: while one address floods wrong passwords from 100 connections, a login from another address is answered within 2 s", async () => {
  const server = await startServer({ users: USERS, args: ["--hash-cost", "14"] });
  // Guesses at a name that does not exist: each costs a hash at the server's cost.
  const flood = loginFlood(server.port, ATTACKER, 100, "mallory");
  try {
    // Every connection has sent its guess, and the hasher is working through them.
    await waitFor(
      () =>
        flood.started === 100 &&
        server.log().includes(`login-failed user=mallory address=${ATTACKER}`),
      "the flood to reach the hasher",
      30_000,
    );
    const ms = await timeLogin(server.port, "127.0.0.1", "bob", "pw");
    console.log(`login from another address during the flood: ${ms.toFixed(0)} ms`);
    assert.ok(ms < 2000, `a login from another address took ${ms.toFixed(0)} ms`);
  } finally {
    await flood.stop();
    await server.stop();
  }
});

Deno.test("3c: 60 connections of one address get no more guesses than the throttle allows one address", async () => {
  const server = await startServer({ users: USERS, args: ["--hash-cost", "12"] });
  const windowMs = 8000;
  const start = performance.now();
  const flood = loginFlood(server.port, ATTACKER, 60, "alice");
  try {
    await sleep(windowMs); // the window the answers are counted in
    const answered = flood.answeredBetween(start, start + windowMs);
    const allowed = allowance(windowMs);
    console.log(`guesses answered in ${windowMs} ms from 60 connections: ${answered}`);
    assert.ok(answered <= allowed, `${answered} guesses answered, at most ${allowed} allowed`);
    assert.ok(answered >= FREE_LOGIN_FAILURES, `the free guesses were not answered: ${answered}`);
  } finally {
    await flood.stop();
    await server.stop();
  }
});

Deno.test("8: room passwords guessed from one address are slowed like logins and logged, never with the password", async () => {
  const server = await startServer({ users: USERS, args: ["--hash-cost", "12"] });
  const owner = await TestClient.login(server.port, "alice", "pw");
  await owner.ask("2:vault:opensesame", "2:vault:alice");
  const windowMs = 5000;
  let start = 0;
  // Two users on two connections of the attacker's address: the address is throttled as a whole.
  const flood = new GuessFlood(
    server.port,
    ATTACKER,
    2,
    (c, n) => `2:vault:guess-${c}-${n}`,
    (reply) => reply === "9:2:room-password",
    async (client, c) => {
      await client.send(`0:${c === 0 ? "bob" : "carol"}:pw`);
      assert.match(await client.next(30_000), /^0:[1-9]\d*$/);
      start ||= performance.now();
    },
  );
  try {
    await waitFor(() => start > 0, "the guessers to log in");
    await sleep(windowMs); // the window the answers are counted in
    const answered = flood.answeredBetween(start, start + windowMs);
    const allowed = allowance(windowMs);
    console.log(`room passwords answered in ${windowMs} ms from 2 connections: ${answered}`);
    assert.ok(answered <= allowed, `${answered} room guesses answered, at most ${allowed} allowed`);
    assert.match(
      server.log(),
      /room-password-failed address=127\.0\.0\.2 user=(bob|carol) room=vault/,
    );
    assert.ok(!server.log().includes("guess-"), "a guessed password reached the log");
    assert.ok(!server.log().includes("opensesame"), "the room password reached the log");
  } finally {
    await flood.stop();
    await owner.close();
    await server.stop();
  }
});

Deno.test("6: a user hashed at an older, lower cost is re-hashed at the current cost at login; the password still works", async () => {
  const server = await startServer({ users: { alice: "pw" }, args: ["--hash-cost", "11"] });
  const storedHash = async () => {
    const store = await openStore(server.db);
    try {
      return (await store.findUser("alice"))?.passwordHash ?? "";
    } finally {
      await store.close();
    }
  };
  try {
    assert.match(await storedHash(), /^scrypt\$10\$/, "seeded at the test cost");
    await timeLogin(server.port, "127.0.0.1", "alice", "pw");
    let hash = "";
    await waitFor(async () => /^scrypt\$11\$/.test(hash = await storedHash()), "the re-hash");
    await timeLogin(server.port, "127.0.0.1", "alice", "pw"); // throws unless it logs in
    assert.equal(await storedHash(), hash, "re-hashed once, not at every login");
  } finally {
    await server.stop();
  }
});
