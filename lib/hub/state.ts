/**
 * The hub's state, shared by the parts that each do one job with it (joins, messages, the
 * cluster's events): who is connected and logged in here, the rooms, and the view of the other
 * nodes.
 *
 * @module
 */

import { ClusterView } from "./cluster_view.ts";
import type { HubCluster } from "./ports.ts";
import type { Session } from "./room.ts";
import { Rooms } from "./rooms.ts";
import { Tickets } from "./tickets.ts";

/** The limits and settings the hub's parts read. */
export interface HubSettings {
  /** Deliver messages as `3:<sender>:<message>`. */
  readonly stampSender: boolean;
  /** The most rooms there may be. */
  readonly maxRooms: number;
  /** The most rooms one user may have made (default: limits.ts). */
  readonly maxRoomsPerUser?: number;
  /** The most distinct targets of a `3:2`. */
  readonly maxTargets: number;
}

/**
 * Everything a hub holds.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HubState } from "./state.ts";
 * const state = new HubState(null, { stampSender: false, maxRooms: 10, maxTargets: 5 });
 * assert.equal(state.nodeId, ""); // not in a cluster
 * assert.equal(state.rooms.size, 0);
 * ```
 */
export class HubState {
  /** Connections and their unfinished commands. */
  readonly tickets: Tickets = new Tickets();
  /** The sessions on this node, by user. */
  readonly sessions: Map<string, Session> = new Map();
  readonly rooms: Rooms = new Rooms();
  /** The sessions on other nodes. */
  readonly view: ClusterView = new ClusterView();
  /** This node's id in its cluster ("" without one). */
  readonly nodeId: string;

  constructor(readonly cluster: HubCluster | null, readonly settings: HubSettings) {
    this.nodeId = cluster?.nodeId ?? "";
  }
}
