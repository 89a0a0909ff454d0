// Unit tests of lib/server/fair_queue.ts, deterministic: every task is a promise the test settles
// by hand, so the order tasks start in is read, never timed.
import assert from "node:assert/strict";
import { FairQueue, QueueFullError } from "../lib/server/fair_queue.ts";

/** A queue and tasks the test finishes by hand, recording the order they started in. */
function harness(concurrency: number, maxWaiting: number) {
  const queue = new FairQueue({ concurrency, maxWaiting });
  const started: string[] = [];
  /** The tasks running, by name: what finishes each. */
  const running = new Map<string, () => void>();
  let mostRunning = 0;
  const submit = (key: string, name: string) =>
    queue.run(key, () => {
      started.push(name);
      const { promise, resolve } = Promise.withResolvers<string>();
      running.set(name, () => resolve(name));
      mostRunning = Math.max(mostRunning, running.size);
      return promise;
    });
  /** Lets the queue start what it will: a few turns of the microtask queue. */
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  /** Finishes the running task `name` and lets the next start. */
  const finish = async (name: string) => {
    const resolve = running.get(name);
    assert.ok(resolve, `${name} is not running`);
    running.delete(name);
    resolve();
    await settle();
  };
  /** Finishes whatever runs, the oldest first, until nothing is left. */
  const drain = async () => {
    while (running.size > 0) await finish(running.keys().next().value!);
  };
  return {
    queue,
    started,
    submit,
    settle,
    finish,
    drain,
    get mostRunning() {
      return mostRunning;
    },
  };
}

Deno.test("fair queue: waiting keys are served round-robin, not first come first served", async () => {
  const h = harness(1, 100);
  const all = [
    ...["a1", "a2", "a3", "a4", "a5"].map((n) => h.submit("a", n)),
    ...["b1", "b2"].map((n) => h.submit("b", n)),
    h.submit("c", "c1"),
  ];
  await h.settle();
  assert.deepEqual(h.started, ["a1"]);
  await h.drain();
  assert.deepEqual(await Promise.all(all), ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "c1"]);
  assert.deepEqual(h.started, ["a1", "a2", "b1", "c1", "a3", "b2", "a4", "a5"]);
});

Deno.test("fair queue: a key arriving behind a thousand of another's waits for one of them", async () => {
  const h = harness(1, 2000);
  const flood = Array.from({ length: 1000 }, (_, i) => h.submit("flood", `f${i}`));
  await h.settle();
  const late = h.submit("late", "late");
  await h.finish("f0"); // the running one
  await h.finish("f1"); // the flood's turn
  assert.deepEqual(h.started, ["f0", "f1", "late"]);
  await h.drain();
  await Promise.all([...flood, late]);
});

Deno.test("fair queue: no more than `concurrency` run at once; a slot freed goes to the next", async () => {
  const h = harness(3, 100);
  const all = Array.from({ length: 10 }, (_, i) => h.submit(`k${i % 4}`, `t${i}`));
  await h.settle();
  assert.equal(h.queue.running, 3);
  assert.equal(h.queue.waiting, 7);
  await h.drain();
  await Promise.all(all);
  assert.equal(h.mostRunning, 3);
  assert.equal(h.started.length, 10);
  assert.equal(h.queue.running, 0);
  assert.equal(h.queue.waiting, 0);
});

Deno.test("fair queue: full is its own error, the refused work never runs, and room comes back", async () => {
  const h = harness(1, 2);
  const accepted = [h.submit("a", "a1"), h.submit("a", "a2"), h.submit("b", "b1")];
  await assert.rejects(h.submit("c", "c1"), QueueFullError);
  await h.settle();
  assert.ok(!h.started.includes("c1"));
  await h.finish("a1"); // b1 or a2 starts: one place free
  const again = h.submit("c", "c2");
  await h.drain();
  await Promise.all([...accepted, again]);
  assert.deepEqual(h.started, ["a1", "a2", "b1", "c2"]);

  class Busy extends QueueFullError {}
  const custom = new FairQueue({ concurrency: 1, maxWaiting: 0, full: () => new Busy() });
  const { promise, resolve } = Promise.withResolvers<void>();
  const holder = custom.run("a", () => promise);
  await assert.rejects(custom.run("b", () => Promise.resolve()), Busy);
  resolve();
  await holder;
});

Deno.test("fair queue: a task that fails frees its slot for the next", async () => {
  const queue = new FairQueue({ concurrency: 1, maxWaiting: 10 });
  const failing = queue.run("a", () => Promise.reject(new Error("boom")));
  const next = queue.run("b", () => Promise.resolve("ran"));
  await assert.rejects(failing, /boom/);
  assert.equal(await next, "ran");
  assert.equal(queue.running, 0);
});
