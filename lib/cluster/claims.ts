/**
 * This node's claims still being decided: each waits for its fence (its event coming back on
 * the bus) and then, when another node held the user, for that node to let go (its `end`
 * event) or to be gone. A claim is granted with its fence or refused with null, once.
 *
 * @module
 */

/** A claim waiting to be decided. */
interface PendingClaim {
  user: string;
  request: number;
  /** 0 until the claim's own event came back. */
  fence: number;
  /** The owner to wait for ("" when not waiting). */
  prevNode: string;
  prevFence: number;
  resolve: (fence: number | null) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Options of {@linkcode PendingClaims}. */
export interface PendingClaimsOptions {
  /** How long a claim may wait before it is refused. */
  timeoutMs: number;
  /** Gives back a fence a refused claim already got, so nobody waits for it. */
  giveBack(user: string, fence: number): void;
}

/**
 * The table of this node's undecided claims, keyed by request number.
 *
 * @example A claim granted when the previous owner lets go
 * ```ts
 * import assert from "node:assert/strict";
 * import { PendingClaims } from "./claims.ts";
 * const claims = new PendingClaims({ timeoutMs: 1000, giveBack: () => {} });
 * const { request, decided } = claims.open("alice");
 * claims.fenced(request, 42, { node: "n2", fence: 7 }); // n2 holds alice: wait for it
 * claims.ended("alice", "n2", 7);
 * assert.equal(await decided, 42);
 * ```
 */
export class PendingClaims {
  #timeoutMs: number;
  #giveBack: (user: string, fence: number) => void;
  #nextRequest = 1;
  #claims = new Map<number, PendingClaim>();

  constructor(options: PendingClaimsOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#giveBack = options.giveBack;
  }

  /** Opens a claim of `user`: `decided` resolves to its fence, or to null when refused. */
  open(user: string): { request: number; decided: Promise<number | null> } {
    const { promise, resolve } = Promise.withResolvers<number | null>();
    const request = this.#nextRequest++;
    const claim: PendingClaim = {
      user,
      request,
      fence: 0,
      prevNode: "",
      prevFence: 0,
      resolve,
      // The previous owner answers at once when alive and connected; when it is not, its
      // heartbeat stops and it is declared down within the TTL.
      timer: setTimeout(() => this.#refuse(claim), this.#timeoutMs),
    };
    this.#claims.set(request, claim);
    return { request, decided: promise };
  }

  /** Refuses claim `request` (its script failed), if it is still undecided. */
  refuse(request: number): void {
    const claim = this.#claims.get(request);
    if (claim !== undefined) this.#refuse(claim);
  }

  /**
   * `user` was claimed with `fence`: this node's older claims of the user lost to it. Returns
   * whether one of them held `prevFence` (its ending released the previous owner's fence).
   */
  overtaken(user: string, fence: number, prevFence: number): boolean {
    let heldPrev = false;
    for (const claim of [...this.#claims.values()]) {
      if (claim.user === user && claim.fence !== 0 && claim.fence < fence) {
        if (claim.fence === prevFence) heldPrev = true;
        this.#refuse(claim);
      }
    }
    return heldPrev;
  }

  /**
   * Claim `request` got `fence`: granted now, or once `waitFor` (the live previous owner on
   * another node) lets go. Returns false when the claim was refused before (a timeout): the
   * caller gives the fence back.
   */
  fenced(request: number, fence: number, waitFor: { node: string; fence: number } | null): boolean {
    const claim = this.#claims.get(request);
    if (claim === undefined) return false;
    claim.fence = fence;
    if (waitFor === null) {
      this.#grant(claim);
    } else {
      claim.prevNode = waitFor.node;
      claim.prevFence = waitFor.fence;
    }
    return true;
  }

  /** `node` ended `user`'s session `fence`: a claim waiting for that goes ahead. */
  ended(user: string, node: string, fence: number): void {
    for (const claim of [...this.#claims.values()]) {
      if (claim.user === user && claim.prevNode === node && claim.prevFence === fence) {
        this.#grant(claim);
      }
    }
  }

  /** `node` is gone: claims waiting for it go ahead. */
  nodeGone(node: string): void {
    for (const claim of [...this.#claims.values()]) {
      if (claim.prevNode === node) this.#grant(claim);
    }
  }

  /** The claims that have their fence: the others count them in as this node's sessions. */
  *withFence(): Iterable<{ user: string; fence: number }> {
    for (const claim of this.#claims.values()) {
      if (claim.fence !== 0) yield { user: claim.user, fence: claim.fence };
    }
  }

  /** Refuses every claim, giving back the fences they got (the link is closing). */
  refuseAll(): void {
    for (const claim of [...this.#claims.values()]) this.#refuse(claim);
  }

  /**
   * Refuses every claim without giving fences back: the bus is down, so claims cannot finish,
   * and their fences are given back on the next claim of each user.
   */
  abandonAll(): void {
    for (const claim of [...this.#claims.values()]) {
      clearTimeout(claim.timer);
      this.#claims.delete(claim.request);
      claim.resolve(null);
    }
  }

  #grant(claim: PendingClaim): void {
    clearTimeout(claim.timer);
    this.#claims.delete(claim.request);
    claim.resolve(claim.fence);
  }

  #refuse(claim: PendingClaim): void {
    if (!this.#claims.delete(claim.request)) return;
    clearTimeout(claim.timer);
    if (claim.fence !== 0) this.#giveBack(claim.user, claim.fence);
    claim.resolve(null);
  }
}
