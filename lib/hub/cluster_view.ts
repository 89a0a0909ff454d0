/**
 * This node's view of the sessions on other nodes, fed by the cluster's events, and the fences
 * that keep stale events from changing it. Routing reads it, so no message costs a round trip.
 *
 * @module
 */

import { RemoteSession } from "./room.ts";

/**
 * Sessions on other nodes by user, how many each node holds, and the newest fence seen for
 * each user here or elsewhere. An event that carries an older fence than the newest one was
 * overtaken by a newer login and changes nothing: this is what keeps a late or replayed event
 * from reviving a session that lost.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClusterView } from "./cluster_view.ts";
 * const view = new ClusterView();
 * view.setFence("bob", 7); // bob's claim on node-2
 * view.add("bob", "node-2", 7);
 * assert.equal(view.get("bob")?.node, "node-2");
 * assert.equal(view.isStale("bob", 6), true);
 * assert.deepEqual(view.nodes(), ["node-2"]);
 * ```
 */
export class ClusterView {
  #sessions = new Map<string, RemoteSession>();
  #fences = new Map<string, number>();
  #perNode = new Map<string, number>();

  /** How many sessions the view holds. */
  get size(): number {
    return this.#sessions.size;
  }

  /** The session of `user` on another node, if the view holds one. */
  get(user: string): RemoteSession | undefined {
    return this.#sessions.get(user);
  }

  /** The newest fence seen for `user` (0: none). */
  fenceOf(user: string): number {
    return this.#fences.get(user) ?? 0;
  }

  /** Whether an event about `user` with `fence` was overtaken by a newer one. */
  isStale(user: string, fence: number): boolean {
    return this.fenceOf(user) > fence;
  }

  /** Records `fence` as the newest seen for `user`. */
  setFence(user: string, fence: number): void {
    this.#fences.set(user, fence);
  }

  /** Forgets `user`'s fence if it is still `fence` (its node was declared down). */
  forgetFence(user: string, fence: number): void {
    if (this.#fences.get(user) === fence) this.#fences.delete(user);
  }

  /** Takes in a session of `user` on `node`. */
  add(user: string, node: string, fence: number): RemoteSession {
    const session = new RemoteSession(user, node, fence);
    this.#sessions.set(user, session);
    this.#perNode.set(node, (this.#perNode.get(node) ?? 0) + 1);
    return session;
  }

  /** Removes `user`'s session from the view and returns it (its room is the caller's to leave). */
  remove(user: string): RemoteSession | undefined {
    const session = this.#sessions.get(user);
    if (session === undefined) return undefined;
    this.#sessions.delete(user);
    const left = (this.#perNode.get(session.node) ?? 1) - 1;
    if (left === 0) this.#perNode.delete(session.node);
    else this.#perNode.set(session.node, left);
    return session;
  }

  /** The sessions the view holds of `node`. */
  sessionsOf(node: string): RemoteSession[] {
    return [...this.#sessions.values()].filter((session) => session.node === node);
  }

  /** The other nodes the view holds sessions of. */
  nodes(): string[] {
    return [...this.#perNode.keys()];
  }
}
