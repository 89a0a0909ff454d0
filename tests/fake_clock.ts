/**
 * A clock the test moves by hand: timers fire only when {@linkcode FakeClock.advance} passes
 * their time, in time order, so a timing rule is checked without waiting and without depending
 * on how fast the machine is.
 *
 * @module
 */

import type { Clock } from "../lib/observe/clock.ts";

export class FakeClock implements Clock {
  #now = 0;
  #next = 1;
  #timers = new Map<number, { at: number; task: () => void }>();

  now(): number {
    return this.#now;
  }

  after(ms: number, task: () => void): () => void {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), task });
    return () => this.#timers.delete(id);
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time on by `ms`, firing each timer that falls due, earliest first. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      let due: [number, { at: number; task: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= until && (due === undefined || entry[1].at < due[1].at)) due = entry;
      }
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].task();
    }
    this.#now = until;
  }
}
