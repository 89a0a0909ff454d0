/**
 * This node's joins on their way round the bus. The hub applies a local join when the bus
 * delivers it back, at the point the bus ordered it among every node's joins; this table
 * makes sure each join is reported back once even if its echo never comes (a lost event, the
 * bus going down, the link closing).
 *
 * @module
 */

/** A local session's join, as published. */
export interface Join {
  user: string;
  fence: number;
  room: string;
  roomPasswordHash: string | null;
}

interface WaitingJoin extends Join {
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The joins published and not yet seen back, oldest first.
 *
 * @example A join that never comes back is reported when its time is up
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Join, JoinEchoes } from "./join_echoes.ts";
 * const reported: Join[] = [];
 * const joins = new JoinEchoes(10, (join) => reported.push(join));
 * joins.wait({ user: "alice", fence: 7, room: "lobby", roomPasswordHash: null });
 * joins.wait({ user: "bob", fence: 8, room: "lobby", roomPasswordHash: null });
 * assert.equal(joins.echoed("alice", 7, "lobby"), true); // the caller reports an echo itself
 * await new Promise((resolve) => setTimeout(resolve, 30));
 * assert.deepEqual(reported.map((join) => join.user), ["bob"]);
 * ```
 */
export class JoinEchoes {
  #waiting: WaitingJoin[] = [];
  #timeoutMs: number;
  #report: (join: Join) => void;

  /** `report` is called for a join whose echo did not come back in `timeoutMs`. */
  constructor(timeoutMs: number, report: (join: Join) => void) {
    this.#timeoutMs = timeoutMs;
    this.#report = report;
  }

  /** Waits for the echo of `join`, which has just been published. */
  wait(join: Join): void {
    const waiting: WaitingJoin = {
      ...join,
      // A lost event must not hold the join for long: the view is as good as it gets by then.
      timer: setTimeout(() => this.#giveUp(waiting), this.#timeoutMs),
    };
    this.#waiting.push(waiting);
  }

  /**
   * This node's join came back. Returns whether it was still waited for (the caller reports
   * every echo to the hub either way; one already reported is a duplicate the hub ignores).
   * Echoes come back in the order published, so this is the oldest unless that one was
   * given up on: matching on the join itself keeps a late echo from taking a newer join's place.
   */
  echoed(user: string, fence: number, room: string): boolean {
    const at = this.#waiting.findIndex((join) =>
      join.user === user && join.fence === fence && join.room === room
    );
    if (at === -1) return false;
    clearTimeout(this.#waiting[at].timer);
    this.#waiting.splice(at, 1);
    return true;
  }

  /** Reports every join still waiting (the bus went down, or the link is closing). */
  giveUpAll(): void {
    for (const join of this.#waiting.splice(0)) {
      clearTimeout(join.timer);
      this.#report(withoutTimer(join));
    }
  }

  #giveUp(join: WaitingJoin): void {
    const at = this.#waiting.indexOf(join);
    if (at === -1) return;
    this.#waiting.splice(at, 1);
    this.#report(withoutTimer(join));
  }
}

function withoutTimer({ user, fence, room, roomPasswordHash }: WaitingJoin): Join {
  return { user, fence, room, roomPasswordHash };
}
