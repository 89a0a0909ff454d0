/**
 * The steps of a login after its password or resume token was accepted: in a cluster, the
 * claim of the user; then the new resume token (docs/protocol.md, "Resume"), which the edge
 * stores, making every older token of the user useless; then the session starts: `0:<id>`,
 * and `6:<token>` when the connection has `resume` on. Without `resume` the token is stored
 * all the same (and never sent), so a login of any client ends the older tokens. The session
 * starts only once the store has its token: no client holds a token the store does not know,
 * and nothing of the new session (a direct message) can come before its `0:<id>`.
 *
 * @module
 */

import type { HubWork } from "./ports.ts";
import type { HubState } from "./state.ts";
import type { Client } from "./tickets.ts";

/** What the hub does at the end of the steps. */
export interface LoginOutcome {
  /** Starts the session `id` of `user` on `client`, with its token (none: the edge issues none). */
  start(client: Client, user: string, id: number, token?: string): true;
  /** The login fails: "busy" when the token could not be stored (the server's fault). */
  fail(client: Client, outcome?: false | "busy", user?: string): true;
}

/**
 * A login's steps from an accepted password or token to its session. Each step returns
 * whether the login is finished (false: it waits for the edge).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HubState } from "./state.ts";
 * import { LoginSteps } from "./login_steps.ts";
 * const state = new HubState(null, { stampSender: false, maxRooms: 10, maxTargets: 10 });
 * const asked: number[] = [];
 * const started: string[] = [];
 * const steps = new LoginSteps(state, {
 *   checkLogin() {},
 *   claim() {},
 *   storeRoom() {},
 *   checkRoomPassword() {},
 *   issueToken: (ticket) => asked.push(ticket),
 * }, {
 *   start: (_client, user, id, token) => (started.push(`${user} ${id} ${token}`), true),
 *   fail: () => true,
 * });
 * const peer = { send() {}, sessionStarted() {}, sessionEnded() {}, commandDone() {} };
 * const client = state.tickets.connect(peer);
 * assert.equal(steps.passed(client, "alice"), false); // waits for the token
 * steps.tokenIssued(asked[0], "t".repeat(32));
 * assert.deepEqual(started, [`alice 1 ${"t".repeat(32)}`]);
 * ```
 */
export class LoginSteps {
  #state: HubState;
  #work: HubWork;
  #outcome: LoginOutcome;
  #nextSessionId = 1;

  constructor(state: HubState, work: HubWork, outcome: LoginOutcome) {
    this.#state = state;
    this.#work = work;
    this.#outcome = outcome;
  }

  /** The password or token of `user` was accepted on `client`. */
  passed(client: Client, user: string): boolean {
    const tickets = this.#state.tickets;
    if (this.#state.cluster === null) return this.#ready(client, user, this.#nextSessionId++);
    // The cluster answers once no other node has a live session of the user; only then does
    // this one start, so two sessions of a user never receive messages at the same time.
    this.#work.claim(tickets.request(client, { kind: "claim", client, user }), user);
    return false;
  }

  /** See HubResults.claimDecided. */
  claimDecided(ticket: number, fence: number | null): void {
    const { tickets, view, cluster } = this.#state;
    const op = tickets.take(ticket);
    if (op?.kind !== "claim") return;
    const { client, user } = op;
    const current = tickets.current(ticket, client);
    // Refused, overtaken while the grant was on its way (a newer claim), or the connection went.
    if (fence === null || view.isStale(user, fence) || !current) {
      if (fence !== null) cluster?.ended(user, fence);
      if (current) tickets.finish(client, this.#outcome.fail(client, false, user));
      return;
    }
    view.setFence(user, fence);
    tickets.finish(client, this.#ready(client, user, fence));
  }

  /**
   * See HubResults.tokenIssued. The session starts unless the connection went, or a newer
   * claim of the user overtook it meanwhile (in a cluster).
   */
  tokenIssued(ticket: number, token: string | null): void {
    const { tickets, cluster, view } = this.#state;
    const op = tickets.take(ticket);
    if (op?.kind !== "token") return;
    const { client, user, id } = op;
    const current = tickets.current(ticket, client);
    if (token !== null && current && !(cluster !== null && view.isStale(user, id))) {
      return tickets.finish(client, this.#outcome.start(client, user, id, token));
    }
    cluster?.ended(user, id); // the claim granted for it is given up
    if (current) tickets.finish(client, this.#outcome.fail(client, token === null && "busy", user));
  }

  /** Session `id` may start: once its token is stored, or now when the edge issues none. */
  #ready(client: Client, user: string, id: number): boolean {
    if (this.#work.issueToken === undefined) return this.#outcome.start(client, user, id);
    const ticket = this.#state.tickets.request(client, { kind: "token", client, user, id });
    this.#work.issueToken(ticket, user);
    return false;
  }
}
