/**
 * Socket reads and writes, spread over turns of the event loop so that none is parked, with the
 * event loop yielding to the runtime often enough that a read waiting for its bytes is answered.
 *
 * Deno starts a read or write inside the call that asks for it, and when the socket is ready the
 * answer comes back in a microtask. But the runtime under it (tokio) grants one turn of the event
 * loop only 128 such operations: past that, every further read or write is parked and answered
 * from a later turn, in no fair order. Under load, with 1,000 busy sockets, 2 % of Parley's writes
 * waited over 100 ms that way and the slowest 2 s, though every socket had room
 * (`bench/op_budget.ts` shows the limit; bench/README.md, "The fairness tail, third session").
 *
 * So each read and write first takes one of this turn's slots, fewer than tokio's budget. One that
 * finds none waits for the next turn (one shared hop of the event loop for all), in order, writes
 * before reads: a write drains what a read would only grow, and a socket whose reads wait leaves its
 * sender's bytes in the kernel, where they push back on the sender.
 *
 * A read or write that finds its socket not ready (a read with no bytes yet, the common case) is
 * answered later, and Deno answers those only when the event loop yields to the runtime, a batch
 * each time. A chain of `setImmediate` turns that start socket operations does not yield, so under
 * load such reads waited up to seconds while their bytes sat in the kernel: most of the many-rooms
 * tail was there (`bench/pending_reads.ts`; bench/README.md, "The fairness tail,
 * fourth session"). So a run of back-to-back turns that has lasted {@linkcode YIELD_AFTER_MS}
 * takes its next turn after a `setTimeout(0)` instead, which lets the runtime answer them.
 *
 * @module
 */

/** Socket operations one turn may start: below tokio's 128, with room for the runtime's own. */
export const OPS_PER_TURN = 96;

/**
 * How long back-to-back turns may run before the next one waits for a timer, so that the runtime
 * answers the reads and writes that waited for their sockets. A yield can cost the timer's delay
 * (about 2 ms here) when nothing else waits; 5 ms measured best of 2, 5, 10 and never
 * (bench/README.md).
 */
export const YIELD_AFTER_MS = 5;

/**
 * Runs `next` in a later turn of the event loop: the next one, or, with `yieldToRuntime`, one
 * after the runtime has answered the operations that waited.
 */
export type TurnScheduler = (next: () => void, yieldToRuntime: boolean) => void;

/** The server's {@linkcode TurnScheduler}: `setImmediate`, or `setTimeout(0)` to yield. */
export const nextTurn: TurnScheduler = (next, yieldToRuntime) => {
  if (yieldToRuntime) setTimeout(next, 0);
  else setImmediate(next);
};

/** Which line a waiting operation stands in: writes go first. */
export type SlotKind = "read" | "write";

/**
 * A budget of socket operations per turn of the event loop, with the operations that found it
 * spent waiting for the next turn.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { TurnBudget } from "./io_turns.ts";
 * const turns: (() => void)[] = [];
 * const budget = new TurnBudget(2, (next) => turns.push(next));
 * assert.ok(budget.take());
 * assert.ok(budget.take());
 * assert.ok(!budget.take()); // this turn's two slots are spent
 * const started: string[] = [];
 * budget.later(() => started.push("read"), "read");
 * budget.later(() => started.push("write"), "write");
 * turns.shift()!(); // the next turn: writes first
 * assert.deepEqual(started, ["write", "read"]);
 * ```
 */
export class TurnBudget {
  readonly #perTurn: number;
  readonly #schedule: TurnScheduler;
  readonly #now: () => number;
  #spent = 0;
  #scheduled = false;
  /** When the current run of back-to-back turns began; -1 when none is running. */
  #runSince = -1;
  #writes: (() => void)[] = [];
  #reads: (() => void)[] = [];

  /**
   * @param perTurn operations a turn may start
   * @param schedule runs its argument in a later turn ({@linkcode nextTurn} in a server)
   * @param now the clock, in milliseconds
   */
  constructor(
    perTurn: number,
    schedule: TurnScheduler = nextTurn,
    now: () => number = () => performance.now(),
  ) {
    this.#perTurn = perTurn;
    this.#schedule = schedule;
    this.#now = now;
  }

  /** Takes a slot of this turn; false when they are spent (then wait with {@linkcode later}). */
  take(): boolean {
    if (this.#spent >= this.#perTurn) return false;
    this.#spent++;
    this.#scheduleTurn();
    return true;
  }

  /**
   * Runs `start` in a later turn, with its slot already taken (`start` must not take another):
   * writes first, each kind in order.
   */
  later(start: () => void, kind: SlotKind): void {
    (kind === "write" ? this.#writes : this.#reads).push(start);
    this.#scheduleTurn();
  }

  /** Undefined if this turn has a slot for a read (taken), else a promise for one. */
  readSlot(): Promise<void> | undefined {
    if (this.take()) return undefined;
    return new Promise((resolve) => this.later(resolve, "read"));
  }

  /** Operations waiting for a later turn. */
  get waiting(): number {
    return this.#writes.length + this.#reads.length;
  }

  #scheduleTurn(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const now = this.#now();
    if (this.#runSince < 0) this.#runSince = now;
    const yieldToRuntime = now - this.#runSince >= YIELD_AFTER_MS;
    if (yieldToRuntime) this.#runSince = -1; // the run starts again behind the timer
    this.#schedule(this.#newTurn, yieldToRuntime);
  }

  #newTurn = (): void => {
    this.#scheduled = false;
    this.#spent = 0;
    this.#startSome(this.#writes);
    this.#startSome(this.#reads);
    // Slots taken in this turn need the count reset again in the next one; a turn that took none
    // ends the run, and the event loop is free to yield.
    if (this.#spent > 0) this.#scheduleTurn();
    else this.#runSince = -1;
  };

  /** Starts the first of `waiting` while slots last; what they queue meanwhile goes behind. */
  #startSome(waiting: (() => void)[]): void {
    const count = Math.min(waiting.length, this.#perTurn - this.#spent);
    if (count <= 0) return;
    this.#spent += count;
    for (const start of waiting.splice(0, count)) start();
  }
}

/** The one budget every socket of the process shares. */
export const socketTurns: TurnBudget = new TurnBudget(OPS_PER_TURN);
