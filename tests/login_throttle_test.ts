// Unit tests of lib/transport/login_throttle.ts with an injected clock: failed logins slow down per
// connection and per address, other addresses go at full speed, and the memory stays bounded.
import assert from "node:assert/strict";
import { LoginThrottle } from "../lib/transport/login_throttle.ts";

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

Deno.test("login throttle: the defaults", () => {
  const t = new LoginThrottle();
  assert.equal(t.freeFailures, 3);
  assert.equal(t.baseDelayMs, 250);
  assert.equal(t.maxDelayMs, 5000);
  assert.equal(t.maxFailuresPerConnection, 10);
  assert.equal(t.halfLifeMs, 60_000);
});

Deno.test("login throttle: free failures, then a delay that doubles, up to the cap", () => {
  const c = clock();
  const t = new LoginThrottle({ now: c.now }); // 3 free, 250 ms doubling, 5 s cap
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    delays.push(t.delayMs("10.0.0.1", 0));
    t.recordFailure("10.0.0.1");
  }
  assert.deepEqual(delays, [0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 5000]);
});

Deno.test("login throttle: other addresses are not slowed", () => {
  const c = clock();
  const t = new LoginThrottle({ now: c.now, freeFailures: 0, baseDelayMs: 100 });
  for (let i = 0; i < 5; i++) t.recordFailure("10.0.0.1");
  assert.ok(t.delayMs("10.0.0.1", 0) > 0);
  assert.equal(t.delayMs("10.0.0.2", 0), 0);
  assert.equal(t.delayMs("::1", 0), 0);
});

Deno.test("login throttle: a connection's own failures count even from a fresh address", () => {
  const t = new LoginThrottle({ now: clock().now });
  assert.equal(t.delayMs("10.0.0.9", 3), 0);
  assert.equal(t.delayMs("10.0.0.9", 4), 250);
  assert.equal(t.delayMs("10.0.0.9", 6), 1000);
  assert.equal(t.delayMs("10.0.0.9", 100), 5000);
});

Deno.test("login throttle: the larger of the connection's and the address's count wins", () => {
  const t = new LoginThrottle({ now: clock().now, freeFailures: 0, baseDelayMs: 10 });
  for (let i = 0; i < 3; i++) t.recordFailure("a");
  assert.equal(t.delayMs("a", 1), 40); // address: 3 failures
  assert.equal(t.delayMs("a", 5), 160); // connection: 5 failures
});

Deno.test("login throttle: an address's failures halve every half-life", () => {
  const c = clock();
  const t = new LoginThrottle({ now: c.now, freeFailures: 0, baseDelayMs: 100, halfLifeMs: 1000 });
  for (let i = 0; i < 8; i++) t.recordFailure("a");
  assert.equal(t.delayMs("a", 0), 5000); // 100 * 2^7 is past the 5 s cap
  c.advance(1000); // 4 left
  assert.equal(t.delayMs("a", 0), 800);
  c.advance(1000); // 2 left
  assert.equal(t.delayMs("a", 0), 200);
  c.advance(2000); // 0.5 left
  assert.equal(t.delayMs("a", 0), 0);
  // A new failure adds to what is left, not to the old count.
  t.recordFailure("a"); // 1.5
  assert.equal(t.delayMs("a", 0), 100);
});

Deno.test("login throttle: time standing still keeps the count", () => {
  const c = clock();
  const t = new LoginThrottle({ now: c.now });
  for (let i = 0; i < 5; i++) t.recordFailure("a");
  const before = t.delayMs("a", 0);
  assert.equal(t.delayMs("a", 0), before);
  assert.equal(before, 500);
});

Deno.test("login throttle: cooled-down addresses are forgotten, so memory stays bounded", () => {
  const c = clock();
  const t = new LoginThrottle({ now: c.now, halfLifeMs: 1000 });
  for (let i = 0; i < 10_000; i++) t.recordFailure(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
  assert.equal(t.size, 10_000);
  c.advance(10_000); // every count has halved ten times
  t.recordFailure("192.0.2.1");
  assert.equal(t.size, 1);
});

Deno.test("login throttle: a wide attack of hot addresses cannot grow the table without bound", () => {
  const c = clock();
  const t = new LoginThrottle({ now: c.now });
  for (let i = 0; i < 25_000; i++) t.recordFailure(`addr-${i}`);
  assert.ok(t.size <= 10_000, `size ${t.size}`);
  // The newest address is remembered.
  assert.equal(t.delayMs("addr-24999", 0), 0); // 1 failure: still free
  for (let i = 0; i < 4; i++) t.recordFailure("addr-24999");
  assert.ok(t.delayMs("addr-24999", 0) > 0);
});
