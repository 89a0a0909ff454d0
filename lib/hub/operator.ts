/**
 * What the operator and the server's stop do to the hub's state at once: remove a room, log
 * everyone out. The hub flushes its pending run before calling these.
 *
 * @module
 */

import { encodeLine, LOGGED_OUT } from "../protocol/codec.ts";
import type { HubState } from "./state.ts";

/**
 * Removes the room `name`: its members (here and elsewhere) move out, each member here told
 * with a `5:` line for every member, itself included.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeRoom } from "./operator.ts";
 * import { HubState } from "./state.ts";
 * const state = new HubState(null, { stampSender: false, maxRooms: 10, maxTargets: 5 });
 * state.rooms.load({ name: "lobby", passwordHash: null });
 * removeRoom(state, "lobby");
 * assert.equal(state.rooms.size, 0);
 * ```
 */
export function removeRoom(state: HubState, name: string): void {
  const room = state.rooms.get(name);
  if (room === undefined) return;
  // Every node removes the room from the same store change: each tells its own members.
  for (const user of [...room.members.keys(), ...room.remote.keys()]) {
    room.broadcast(encodeLine("5", room.nameBytes, user), null);
  }
  for (const member of room.members.values()) member.room = null;
  for (const member of room.remote.values()) member.room = null;
  state.rooms.remove(name);
}

/**
 * Ends every session here with `0:-1`, all at once: no one is told of others leaving before its
 * own `0:-1`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { logoutAll } from "./operator.ts";
 * import { HubState } from "./state.ts";
 * const state = new HubState(null, { stampSender: false, maxRooms: 10, maxTargets: 5 });
 * logoutAll(state);
 * assert.equal(state.sessions.size, 0);
 * ```
 */
export function logoutAll(state: HubState): void {
  state.rooms.clearMembers();
  for (const session of state.sessions.values()) {
    session.room = null;
    session.peer.send(LOGGED_OUT);
  }
  state.sessions.clear();
  for (const client of state.tickets.clients.values()) {
    if (client.session !== null) state.tickets.dropJoin(client, client.session);
    client.session = null;
  }
}
