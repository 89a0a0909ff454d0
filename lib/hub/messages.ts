/**
 * Routing of `3:` messages: to a room (batched into runs), to named users here and on other
 * nodes, and what other nodes hand this one to deliver.
 *
 * @module
 */

import { encodeError, encodeMessage } from "../protocol/codec.ts";
import { fromDirect, plainFromRun } from "./from_form.ts";
import type { Room, Session } from "./room.ts";
import { RoomRuns } from "./room_runs.ts";
import type { HubState } from "./state.ts";

/**
 * The hub's message router.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Messages } from "./messages.ts";
 * import { Session } from "./room.ts";
 * import { HubState } from "./state.ts";
 * const got: string[] = [];
 * const peer = {
 *   send: (line: Uint8Array) => got.push(new TextDecoder().decode(line)),
 *   sessionStarted() {},
 *   sessionEnded() {},
 *   commandDone() {},
 * };
 * const alice = new Session(1, "alice", peer);
 * const state = new HubState(null, { stampSender: false, maxRooms: 10, maxTargets: 100 });
 * state.sessions.set("alice", alice);
 * const messages = new Messages(state, () => {});
 * messages.tell(alice, ["alice", "bob"], new TextEncoder().encode("hi"));
 * assert.deepEqual(got, ["3:hi\n", "9:3:not-online:bob\n"]);
 * ```
 */
export class Messages {
  #state: HubState;
  #runs: RoomRuns;
  #deliveries = 0;

  /**
   * @param state the hub's state
   * @param schedule runs a task when the current one ends (sends the pending run)
   */
  constructor(state: HubState, schedule: (task: () => void) => void) {
    this.#state = state;
    this.#runs = new RoomRuns(schedule, (room, forms, lines, except) => {
      this.#deliveries += room.broadcastRun(forms, except) * lines;
      // The sender is on this node, so every member elsewhere gets the whole run; it travels in
      // the from form, which holds everything each node needs to make either form.
      if (room.nodes.size > 0) {
        this.#state.cluster?.roomRun(room.nodes.keys(), room.nameBytes, forms.from(), lines);
      }
    });
  }

  /** How many `3:` messages have been handed to recipients (one per recipient). */
  get deliveries(): number {
    return this.#deliveries;
  }

  /** Sends the pending run of room messages now. */
  flush(): void {
    this.#runs.flush();
  }

  /** `3:0` (`echo`) or `3:1` from `session` to its room. */
  say(session: Session, echo: boolean, body: Uint8Array): void {
    const room = session.room;
    if (room === null) {
      session.peer.send(NOT_IN_ROOM);
      return;
    }
    const stamp = this.#state.settings.stampSender;
    this.#runs.add(room, echo ? null : session, body, session.userBytes, stamp);
  }

  /** `3:2` from `session` to `targets`, wherever they are. */
  tell(session: Session, targets: string[], body: Uint8Array): void {
    this.flush();
    // Short lists (the usual case) are deduplicated in place: no Set per message.
    const distinct = targets.length <= SMALL_TARGET_LIST ? dedupe(targets) : [...new Set(targets)];
    if (distinct.length > this.#state.settings.maxTargets) {
      session.peer.send(TOO_MANY_TARGETS);
      return;
    }
    const sender = session.userBytes;
    const line = encodeMessage(body, this.#state.settings.stampSender ? sender : null);
    let from: Uint8Array | null = null; // made once, if a recipient or another node needs it
    let notOnline: string[] | null = null;
    let elsewhere: Map<string, string[]> | null = null;
    for (let i = 0; i < distinct.length; i++) {
      const target = distinct[i];
      const recipient = this.#state.sessions.get(target);
      if (recipient !== undefined) {
        recipient.peer.send(
          recipient.features.from ? from ??= fromDirect(sender, body) : line,
        );
        this.#deliveries++;
        continue;
      }
      const remote = this.#state.view.get(target);
      if (remote === undefined) (notOnline ??= []).push(target);
      else {
        elsewhere ??= new Map();
        const users = elsewhere.get(remote.node);
        if (users === undefined) elsewhere.set(remote.node, [target]);
        else users.push(target);
      }
    }
    // One message per node that holds recipients, never one per recipient.
    if (elsewhere !== null && this.#state.cluster !== null) {
      from ??= fromDirect(sender, body);
      for (const [node, users] of elsewhere) this.#state.cluster.direct(node, users, from);
    }
    if (notOnline !== null) session.peer.send(encodeError("3", "not-online", notOnline.join(",")));
  }

  /** A run of `3:` lines (the from form) from another node for this node's members of `room`. */
  deliverRoom(room: Room | undefined, chunk: Uint8Array, lines: number): void {
    if (room === undefined) return;
    const forms = this.#formsOf(chunk);
    this.#deliveries += room.broadcastRun(forms, null) * lines;
  }

  /** A `3:` line (the from form) from another node for `users` on this node (those still here). */
  deliverDirect(users: readonly string[], line: Uint8Array): void {
    const forms = this.#formsOf(line);
    for (const user of users) {
      const session = this.#state.sessions.get(user);
      if (session === undefined) continue;
      session.peer.send(session.features.from ? line : forms.plain());
      this.#deliveries++;
    }
  }

  /** The forms of lines that came in the from form: the v1 form made once, when first asked. */
  #formsOf(from: Uint8Array) {
    let plain: Uint8Array | null = null;
    const stamp = this.#state.settings.stampSender;
    return { from: () => from, plain: () => plain ??= plainFromRun(from, stamp) };
  }
}

/** Target lists up to this long are deduplicated by comparing names pairwise. */
const SMALL_TARGET_LIST = 16;

/** `names` without repeats, first occurrences kept in order (the array itself when it has none). */
function dedupe(names: string[]): string[] {
  for (let i = 1; i < names.length; i++) {
    for (let j = 0; j < i; j++) {
      if (names[i] === names[j]) return [...new Set(names)];
    }
  }
  return names;
}

const NOT_IN_ROOM = encodeError("3", "not-in-room");
const TOO_MANY_TARGETS = encodeError("3", "too-many-targets");
