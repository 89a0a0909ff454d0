// Unit tests of LoginThrottle.turn (lib/transport/login_throttle.ts) on a fake clock: an address's
// password checks take turns, at most two at once, and one at a time after the delay once its
// failures are past the free ones, however many connections it opens.
import assert from "node:assert/strict";
import { LoginThrottle } from "../lib/transport/login_throttle.ts";
import { FakeClock } from "./fake_clock.ts";

/** Lets queued `go` callbacks run (they are never called synchronously). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await Promise.resolve();
}

/** A throttle on a fake clock; `halfLifeMs: Infinity` keeps failure counts whole. */
function throttle(halfLifeMs?: number) {
  const clock = new FakeClock();
  return { clock, throttle: new LoginThrottle({ clock, halfLifeMs }) };
}

Deno.test("login turns: at most two checks of one address at once; the third waits its turn", async () => {
  const { throttle: t } = throttle();
  const went: number[] = [];
  const ends = [0, 1, 2, 3].map((i) => t.turn("10.0.0.1", 0, () => went.push(i)));
  assert.deepEqual(went, [], "never called before turn() returns");
  await settle();
  assert.deepEqual(went, [0, 1]);
  ends[1]();
  await settle();
  assert.deepEqual(went, [0, 1, 2]);
  ends[1](); // ending twice changes nothing
  await settle();
  assert.deepEqual(went, [0, 1, 2]);
  ends[0]();
  ends[2]();
  await settle();
  assert.deepEqual(went, [0, 1, 2, 3]);
  ends[3]();
  assert.equal(t.busyAddresses, 0, "nothing is kept for an idle address");
});

Deno.test("login turns: another address is not held up by one address's line", async () => {
  const { throttle: t } = throttle();
  for (let i = 0; i < 50; i++) t.turn("10.0.0.1", 0, () => {});
  let went = false;
  t.turn("10.0.0.2", 0, () => went = true);
  await settle();
  assert.equal(went, true);
});

Deno.test("login turns: past the free failures, one at a time, each after the delay from idle", async () => {
  const { clock, throttle: t } = throttle(Infinity);
  for (let i = 0; i < 4; i++) t.recordFailure("a"); // 4 failures: the next waits 250 ms
  const went: string[] = [];
  const ends = new Map<string, () => void>();
  for (const name of ["x", "y", "z"]) ends.set(name, t.turn("a", 0, () => went.push(name)));
  clock.advance(249);
  await settle();
  assert.deepEqual(went, []);
  clock.advance(1);
  await settle();
  assert.deepEqual(went, ["x"], "one only, though two may run while failures are free");
  clock.advance(10_000);
  await settle();
  assert.deepEqual(went, ["x"], "the next waits until x is answered");
  t.recordFailure("a"); // x was wrong: 5 failures, the next waits 500 ms from now
  ends.get("x")!();
  clock.advance(499);
  await settle();
  assert.deepEqual(went, ["x"]);
  clock.advance(1);
  await settle();
  assert.deepEqual(went, ["x", "y"]);
  ends.get("y")!(); // y was right: no failure, still 5 on record
  // z gives up while it waits out its delay: the timer goes with it, and nothing is left.
  clock.advance(100);
  ends.get("z")!();
  assert.equal(clock.pending, 0);
  assert.equal(t.busyAddresses, 0);
  clock.advance(1000);
  await settle();
  assert.deepEqual(went, ["x", "y"]);
});

Deno.test("login turns: a connection's own failures delay it even at a fresh address", async () => {
  const { clock, throttle: t } = throttle();
  let went = false;
  t.turn("fresh", 5, () => went = true); // 5 failures of its own: 500 ms
  clock.advance(499);
  await settle();
  assert.equal(went, false);
  clock.advance(1);
  await settle();
  assert.equal(went, true);
});

/**
 * `connections` connections of one address guess wrong passwords for `windowMs` of fake time,
 * each sending its next guess as soon as the last is answered, a check taking `checkMs`; each
 * closed after the throttle's maximum failures is replaced by a new one. Returns the guesses
 * answered.
 */
async function guesses(connections: number, windowMs: number, checkMs = 100): Promise<number> {
  const { clock, throttle: t } = throttle();
  let answered = 0;
  const guess = (own: number): void => {
    const end = t.turn("attacker", own, () => {
      clock.after(checkMs, () => {
        answered++;
        t.recordFailure("attacker");
        end();
        guess(own + 1 >= t.maxFailuresPerConnection ? 0 : own + 1); // closed: a new connection
      });
    });
  };
  for (let i = 0; i < connections; i++) guess(0);
  for (let at = 0; at < windowMs; at += 10) {
    clock.advance(10);
    await settle();
  }
  return answered;
}

Deno.test("login turns: a hundred connections of one address guess no faster than one does", async () => {
  const one = await guesses(1, 60_000);
  const hundred = await guesses(100, 60_000);
  console.log(`guesses in a minute: one connection ${one}, a hundred connections ${hundred}`);
  // One connection: 4 free, then 250, 500, 1000, 2000, 4000 ms, then one per 5 s.
  assert.ok(one >= 12 && one <= 20, `one connection: ${one}`);
  // The hundred add at most the second check the address may have running while its failures
  // are free; without turns they would get a hundred guesses per delay.
  assert.ok(hundred <= one + 2, `a hundred connections: ${hundred}, one: ${one}`);
});

Deno.test("login turns: a cheap check (a resume token) needs no slot while failures are free", async () => {
  const { throttle: t } = throttle(Infinity);
  const went: string[] = [];
  t.turn("a", 0, () => went.push("password 1"));
  t.turn("a", 0, () => went.push("password 2"));
  t.turn("a", 0, () => went.push("password 3"));
  for (let i = 0; i < 100; i++) t.turn("a", 0, () => went.push("token"), true);
  assert.deepEqual(went, [], "never called before turn() returns");
  await settle();
  assert.equal(went.filter((w) => w === "token").length, 100, "every token check goes at once");
  assert.deepEqual(went.filter((w) => w !== "token"), ["password 1", "password 2"]);
});

Deno.test("login turns: past the free failures, a cheap check takes turns like any other", async () => {
  const { clock, throttle: t } = throttle(Infinity);
  for (let i = 0; i < 4; i++) t.recordFailure("a"); // the next waits 250 ms
  const went: string[] = [];
  const end = t.turn("a", 0, () => went.push("token 1"), true);
  t.turn("a", 0, () => went.push("token 2"), true);
  await settle();
  assert.deepEqual(went, []);
  clock.advance(250);
  await settle();
  assert.deepEqual(went, ["token 1"]);
  end();
  clock.advance(250);
  await settle();
  assert.deepEqual(went, ["token 1", "token 2"]);
});
