/**
 * The events a client has received and not yet read: a bounded queue that a reader can iterate
 * or wait on with a timeout, and that ends (with the connection's failure, if any) once its
 * last item is read.
 *
 * @module
 */

/**
 * A bounded queue of received items, read in order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventQueue } from "./event_queue.ts";
 * const queue = new EventQueue<string>(2);
 * assert.equal(queue.push("a"), true);
 * assert.equal(queue.push("b"), true);
 * assert.equal(queue.push("c"), false); // full: the caller decides what that means
 * assert.equal(await queue.next(0), "a");
 * queue.end(null);
 * const rest: string[] = [];
 * for await (const item of queue.items()) rest.push(item);
 * assert.deepEqual(rest, ["b"]);
 * assert.equal(await queue.next(), undefined);
 * ```
 */
export class EventQueue<T> {
  readonly capacity: number;
  #items: T[] = [];
  #waiting: (() => void) | null = null;
  #ended = false;
  #failure: Error | null = null;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Adds an item; false (and nothing added) when `capacity` items are unread, or it ended. */
  push(item: T): boolean {
    if (this.#ended || this.#items.length >= this.capacity) return false;
    this.#items.push(item);
    this.#wake();
    return true;
  }

  /** No more items will come; readers get what is queued, then the end (or `failure`). */
  end(failure: Error | null): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    this.#wake();
  }

  /** Every item, as it comes; finishes after the end, throwing the failure if there was one. */
  async *items(): AsyncGenerator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#ended) {
        if (this.#failure) throw this.#failure;
        return;
      }
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
  }

  /** The next item, or `undefined` if none comes within `timeoutMs` or the queue ends first. */
  async next(timeoutMs = Infinity): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#items.length === 0 && !this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiting = resolve;
        if (Number.isFinite(left)) timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#items.shift();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
  }
}
