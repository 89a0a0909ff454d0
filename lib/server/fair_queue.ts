/**
 * A work queue that serves its keys (remote addresses) in turn: a few tasks run at once, the
 * rest wait, and the next to run is taken round-robin between the keys that have work waiting,
 * so one key with many tasks waiting delays another key's task by at most one of its own per
 * round. The password hasher runs every scrypt through one (logins, room passwords, new hashes).
 *
 * A queue with `maxWaiting` tasks waiting refuses more with {@linkcode QueueFullError}: a
 * distinct outcome ("busy, try later"), never to be taken for a wrong password.
 *
 * @module
 */

/** Thrown (as a rejection) by {@linkcode FairQueue.run} when the queue is full. */
export class QueueFullError extends Error {
  constructor(message = "the work queue is full") {
    super(message);
    this.name = "QueueFullError";
  }
}

/** Options of {@linkcode FairQueue}. */
export interface FairQueueOptions {
  /** How many tasks may run at once (at least 1). */
  concurrency: number;
  /** How many may wait; past it {@linkcode FairQueue.run} rejects. */
  maxWaiting: number;
  /** The error a full queue rejects with (default: a {@linkcode QueueFullError}). */
  full?: () => QueueFullError;
}

/**
 * Runs tasks a few at a time, round-robin between keys.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FairQueue, QueueFullError } from "./fair_queue.ts";
 * const queue = new FairQueue({ concurrency: 1, maxWaiting: 3 });
 * const order: string[] = [];
 * const task = (name: string) => () => Promise.resolve(void order.push(name));
 * const all = [
 *   queue.run("a", task("a1")), // runs at once
 *   queue.run("a", task("a2")),
 *   queue.run("a", task("a3")),
 *   queue.run("b", task("b1")), // waits behind one of a's, not both
 * ];
 * await assert.rejects(queue.run("c", task("c1")), QueueFullError);
 * await Promise.all(all);
 * assert.deepEqual(order, ["a1", "a2", "b1", "a3"]);
 * ```
 */
export class FairQueue {
  readonly concurrency: number;
  readonly maxWaiting: number;
  #full: () => QueueFullError;
  #running = 0;
  #waiting = 0;
  /** Keys with tasks waiting, in the order they are served; each key's tasks oldest first. */
  #ring = new Map<string, (() => void)[]>();

  constructor(options: FairQueueOptions) {
    this.concurrency = Math.max(1, options.concurrency);
    this.maxWaiting = options.maxWaiting;
    this.#full = options.full ?? (() => new QueueFullError());
  }

  /** How many tasks are running. */
  get running(): number {
    return this.#running;
  }

  /** How many tasks are waiting. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Runs `work` when its turn comes; rejects at once with the queue's error when it is full. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.concurrency) {
      if (this.#waiting >= this.maxWaiting) throw this.#full();
      await new Promise<void>((start) => {
        const line = this.#ring.get(key);
        if (line === undefined) this.#ring.set(key, [start]);
        else line.push(start);
        this.#waiting++;
      });
    } else {
      this.#running++;
    }
    try {
      return await work();
    } finally {
      this.#next();
    }
  }

  /** A task finished: its slot goes to the next key in turn, or is freed. */
  #next(): void {
    const entry = this.#ring.entries().next();
    if (entry.done) {
      this.#running--;
      return;
    }
    const [key, line] = entry.value;
    const start = line.shift()!;
    // The key goes to the back of the ring (if it still has work), so every other key waiting
    // is served before it again.
    this.#ring.delete(key);
    if (line.length > 0) this.#ring.set(key, line);
    this.#waiting--;
    start();
  }
}
