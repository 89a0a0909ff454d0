// Unit tests of lib/transport/io_turns.ts: socket operations per turn of the event loop, and the
// outbound queues and real loopback sockets that use the shared budget.
import assert from "node:assert/strict";
import {
  OPS_PER_TURN,
  socketTurns,
  TurnBudget,
  YIELD_AFTER_MS,
} from "../lib/transport/io_turns.ts";
import { OutboundQueue } from "../lib/transport/outbound.ts";

/** A budget whose turns, and clock, the test runs by hand. */
function manualBudget(perTurn: number) {
  const turns: (() => void)[] = [];
  /** For each turn scheduled, whether it was to yield to the runtime first. */
  const yields: boolean[] = [];
  const clock = { ms: 0 };
  const budget = new TurnBudget(perTurn, (next, yieldToRuntime) => {
    turns.push(next);
    yields.push(yieldToRuntime);
  }, () => clock.ms);
  const nextTurn = () => {
    assert.equal(turns.length, 1, "one turn is scheduled at a time");
    turns.shift()!();
  };
  return { budget, turns, yields, clock, nextTurn };
}

Deno.test("io_turns: a turn grants its slots, and the next turn grants them again", () => {
  const { budget, turns, nextTurn } = manualBudget(3);
  assert.deepEqual([budget.take(), budget.take(), budget.take(), budget.take()], [
    true,
    true,
    true,
    false,
  ]);
  nextTurn();
  assert.ok(budget.take());
  nextTurn();
  // A turn in which nothing took a slot schedules no further turn.
  assert.equal(turns.length, 0);
  assert.ok(budget.take());
  assert.equal(turns.length, 1);
});

Deno.test("io_turns: waiting writes start before waiting reads, each in order, slots lasting", () => {
  const { budget, nextTurn } = manualBudget(3);
  for (let i = 0; i < 3; i++) assert.ok(budget.take());
  const started: string[] = [];
  for (let i = 1; i <= 3; i++) budget.later(() => started.push(`read ${i}`), "read");
  for (let i = 1; i <= 4; i++) budget.later(() => started.push(`write ${i}`), "write");
  assert.equal(budget.waiting, 7);
  nextTurn();
  assert.deepEqual(started, ["write 1", "write 2", "write 3"]);
  nextTurn();
  assert.deepEqual(started.slice(3), ["write 4", "read 1", "read 2"]);
  nextTurn();
  assert.deepEqual(started.slice(6), ["read 3"]);
  assert.equal(budget.waiting, 0);
});

Deno.test("io_turns: what a started operation queues goes behind those already waiting", () => {
  const { budget, nextTurn } = manualBudget(2);
  assert.ok(budget.take() && budget.take());
  const started: string[] = [];
  budget.later(() => {
    started.push("a");
    budget.later(() => started.push("a's next"), "write");
  }, "write");
  budget.later(() => started.push("b"), "write");
  budget.later(() => started.push("c"), "write");
  nextTurn();
  assert.deepEqual(started, ["a", "b"]);
  nextTurn();
  assert.deepEqual(started, ["a", "b", "c", "a's next"]);
});

Deno.test("io_turns: back-to-back turns yield to the runtime once they have run a while", () => {
  const { budget, yields, clock, nextTurn } = manualBudget(1);
  assert.ok(budget.take());
  for (let i = 0; i < 5; i++) budget.later(() => {}, "write");
  // Turns that follow each other within YIELD_AFTER_MS go straight on.
  nextTurn();
  clock.ms += YIELD_AFTER_MS / 2;
  nextTurn();
  assert.deepEqual(yields, [false, false, false]);
  // The next one after that waits for the runtime, and the run starts again behind it.
  clock.ms += YIELD_AFTER_MS / 2;
  nextTurn();
  assert.deepEqual(yields.slice(3), [true]);
  nextTurn();
  assert.deepEqual(yields.slice(4), [false]);
  // A run that ends (a turn with nothing to start) starts afresh: no yield for the next one.
  nextTurn();
  nextTurn();
  assert.equal(budget.waiting, 0);
  clock.ms += 10 * YIELD_AFTER_MS;
  assert.ok(budget.take());
  assert.equal(yields.at(-1), false);
});

Deno.test("io_turns: readSlot is immediate while slots last, then resolves in a later turn", async () => {
  const { budget, nextTurn } = manualBudget(1);
  assert.equal(budget.readSlot(), undefined);
  const waiting = budget.readSlot();
  assert.ok(waiting instanceof Promise);
  let resolved = false;
  void waiting.then(() => resolved = true);
  await Promise.resolve();
  assert.equal(resolved, false);
  nextTurn();
  await waiting;
  assert.ok(resolved);
  // The slot it was given is this turn's only one.
  assert.equal(budget.take(), false);
});

/** Waits until the shared budget has nothing waiting and a fresh turn has begun. */
async function quietTurn(): Promise<void> {
  for (let i = 0; i < 100 && socketTurns.waiting > 0; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

Deno.test("io_turns: 300 queues written in one turn start at most a turn's slots, and all arrive", async () => {
  const count = 300;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const clients: Deno.Conn[] = [];
  const servers: Deno.Conn[] = [];
  try {
    for (let i = 0; i < count; i++) {
      clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      servers.push(await listener.accept());
    }
    let writesStarted = 0;
    const queues = servers.map((conn) =>
      new OutboundQueue(
        {
          write: (bytes) => {
            writesStarted++;
            return conn.write(bytes);
          },
        },
        1 << 20,
        (error) => assert.fail(`write failed: ${error}`),
      )
    );
    await quietTurn();
    const encoder = new TextEncoder();
    queues.forEach((queue, i) => assert.ok(queue.push(encoder.encode(`3:line ${i}\n`))));
    // The queues start their writes in a microtask; those past the turn's slots wait.
    await Promise.resolve();
    assert.ok(writesStarted <= OPS_PER_TURN, `${writesStarted} writes started in one turn`);
    assert.ok(socketTurns.waiting >= count - OPS_PER_TURN, `${socketTurns.waiting} waiting`);
    await Promise.all(queues.map((queue) => queue.drained()));
    assert.equal(writesStarted, count);
    const buffer = new Uint8Array(64);
    for (let i = 0; i < count; i++) {
      const n = await clients[i].read(buffer);
      assert.equal(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), `3:line ${i}\n`);
    }
  } finally {
    for (const conn of [...clients, ...servers]) conn.close();
    listener.close();
  }
});
