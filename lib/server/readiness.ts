/**
 * `/readyz`: whether this node should be sent new clients. `/healthz` says the process serves;
 * readiness also needs the store to answer and, in a cluster, the bus to be up with presence
 * resynchronised, and is withdrawn while the node drains.
 *
 * @module
 */

import type { Readiness } from "../observe/metrics.ts";

/** How long the store may take to answer before the node counts as not ready. */
export const STORE_CHECK_MS = 1000;

/** What readiness looks at. */
export interface ReadinessParts {
  /** Whether the node is shutting down (its listeners closed, its clients draining). */
  draining(): boolean;
  /** The cluster link's state, or null for a single node. */
  busState(): "down" | "syncing" | "up" | null;
  /** A cheap read of the store; rejects when it does not answer. */
  probeStore(): Promise<unknown>;
}

/**
 * The readiness check for {@linkcode serveMetrics}: null when ready, else why not.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readiness } from "./readiness.ts";
 * const parts = { draining: () => false, busState: () => "up" as const, probeStore: async () => 0 };
 * assert.equal(await readiness(parts)(), null);
 * assert.equal(await readiness({ ...parts, busState: () => "down" })(), "bus down");
 * assert.equal(await readiness({ ...parts, draining: () => true })(), "draining");
 * ```
 */
export function readiness(parts: ReadinessParts): Readiness {
  return async () => {
    if (parts.draining()) return "draining";
    const bus = parts.busState();
    if (bus !== null && bus !== "up") return `bus ${bus}`;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`store silent for ${STORE_CHECK_MS} ms`), STORE_CHECK_MS);
    });
    try {
      return await Promise.race([
        parts.probeStore().then(() => null, (error) => `store: ${String(error?.message ?? error)}`),
        late,
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}
