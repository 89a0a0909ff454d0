/**
 * Keeps a running server in step with its store: applies what the admin CLI (or another node)
 * changed there (removed users and rooms, rooms made elsewhere), and records which rooms were
 * used, in one write for all of them.
 *
 * @module
 */

import type { Hub } from "../hub/hub.ts";
import { describeError, type Logger } from "../observe/log.ts";
import type { Store } from "../store/store.ts";

/** How often the server looks for changes the admin CLI made (removed users and rooms). */
const CHANGE_POLL_MS = 250;
/**
 * How often the rooms used meanwhile (joined, or with members) are recorded in the store, in one
 * write: --remove-idle-rooms reads it, and refuses durations shorter than a few of these.
 */
const ROOM_USE_FLUSH_MS = 10 * 60_000;

/**
 * Follows the store's change log into the hub, and the hub's room use into the store.
 *
 * @example Usage
 * ```ts ignore
 * const follower = await StoreFollower.start(store, hub, log);
 * // ... the server runs ...
 * await follower.stop(); // records room use one last time
 * ```
 */
export class StoreFollower {
  #store: Store;
  #hub: Hub;
  #log: Logger;
  #changeSeq: number;
  #polling = false;
  #pollFailing = false;
  #stopped = false;
  #pollTimer: ReturnType<typeof setInterval>;
  #roomUseTimer: ReturnType<typeof setInterval>;

  private constructor(store: Store, hub: Hub, log: Logger, changeSeq: number) {
    this.#store = store;
    this.#hub = hub;
    this.#log = log;
    this.#changeSeq = changeSeq;
    this.#pollTimer = setInterval(() => this.#pollChanges(), CHANGE_POLL_MS);
    this.#roomUseTimer = setInterval(() => this.#recordRoomUse(), ROOM_USE_FLUSH_MS);
  }

  /** Starts following from the store's newest change: what came before is in the hub already. */
  static async start(store: Store, hub: Hub, log: Logger): Promise<StoreFollower> {
    return new StoreFollower(store, hub, log, await store.lastChange());
  }

  /** Stops following and records the rooms used since the last time. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#pollTimer);
    clearInterval(this.#roomUseTimer);
    await this.#recordRoomUse();
  }

  /** Records in the store which rooms were used since the last time (one write for all). */
  async #recordRoomUse(): Promise<void> {
    try {
      await this.#store.touchRooms(this.#hub.takeUsedRooms(), Date.now());
    } catch (error) {
      this.#log.error("room-use-not-recorded", { error: describeError(error) });
    }
  }

  /** Applies what the admin CLI changed since the last look: removed users and rooms. */
  async #pollChanges(): Promise<void> {
    if (this.#polling || this.#stopped) return;
    this.#polling = true;
    try {
      for (const change of await this.#store.changesSince(this.#changeSeq)) {
        this.#changeSeq = change.seq;
        if (change.kind === "user-removed") {
          this.#log.info("user-removed", { user: change.name });
          this.#hub.removeUser(change.name);
        } else if (change.kind === "room-removed") {
          this.#log.info("room-removed", { room: change.name });
          this.#hub.removeRoom(change.name);
        } else if (change.kind === "room-added" && !this.#hub.hasRoom(change.name)) {
          const room = await this.#store.findRoom(change.name);
          if (room) this.#hub.loadRooms([room]);
        }
      }
      if (this.#pollFailing) {
        this.#pollFailing = false;
        this.#log.info("change-poll-recovered");
      }
    } catch (error) {
      // Once per outage, not four times a second.
      if (!this.#pollFailing) {
        this.#log.error("change-poll-failed", { error: describeError(error) });
      }
      this.#pollFailing = true;
    } finally {
      this.#polling = false;
    }
  }
}
