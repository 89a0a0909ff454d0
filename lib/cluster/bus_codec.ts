/**
 * What cluster nodes say to each other over the bus (lib/cluster/link.ts). Two kinds of payload:
 *
 * - **Deliveries** go to one node's channel as binary records, so message bodies cross the bus
 *   as the exact bytes the sender's node encoded, and several records ride in one PUBLISH:
 *   - room run: `0x01`, u16 room name length, room name, u32 line count, u32 length, the lines
 *   - direct: `0x02`, u16 user count, (u8 length, name) per user, u32 length, the line
 *   (big-endian). The lines are in the v1.1 `from` form, `3:<room>:<sender>:<message>` (the
 *   room empty for a direct one): it holds what every recipient needs, and each node makes the
 *   v1 form from it for its members without `from` (lib/hub/from_form.ts).
 * - **Presence** goes to every node as tab-separated text, one event a PUBLISH. Names cannot
 *   hold a tab (usernames are `A-Z a-z 0-9 _ . -`; room names hold no white space), and some of
 *   these events are written by Lua scripts inside Redis, where text is what is easy.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const ROOM_RUN = 0x01;
const DIRECT = 0x02;

/** A delivery payload that cannot be read: a bug or a foreign publisher. */
export class BusFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BusFrameError";
  }
}

/**
 * Encodes a run of `3:` lines for the members of `room` on the receiving node.
 *
 * @example Usage
 * ```ts
 * import { encodeRoomRun } from "./bus_codec.ts";
 * const record = encodeRoomRun(new TextEncoder().encode("lobby"), new TextEncoder().encode("3:hi\n"), 1);
 * record[0]; // 1
 * ```
 */
export function encodeRoomRun(room: Uint8Array, chunk: Uint8Array, lines: number): Uint8Array {
  const record = new Uint8Array(1 + 2 + room.length + 4 + 4 + chunk.length);
  const view = new DataView(record.buffer);
  record[0] = ROOM_RUN;
  view.setUint16(1, room.length);
  record.set(room, 3);
  let at = 3 + room.length;
  view.setUint32(at, lines);
  view.setUint32(at + 4, chunk.length);
  at += 8;
  record.set(chunk, at);
  return record;
}

/**
 * Encodes one `3:` line for `users` (all on the receiving node).
 *
 * @example Usage
 * ```ts
 * import { encodeDirect } from "./bus_codec.ts";
 * const record = encodeDirect(["bob"], new TextEncoder().encode("3:hi\n"));
 * record[0]; // 2
 * ```
 */
export function encodeDirect(users: readonly string[], line: Uint8Array): Uint8Array {
  let size = 1 + 2 + 4 + line.length;
  for (const user of users) size += 1 + user.length; // usernames are ASCII
  const record = new Uint8Array(size);
  const view = new DataView(record.buffer);
  record[0] = DIRECT;
  view.setUint16(1, users.length);
  let at = 3;
  for (const user of users) {
    record[at++] = user.length;
    at += encoder.encodeInto(user, record.subarray(at)).written;
  }
  view.setUint32(at, line.length);
  record.set(line, at + 4);
  return record;
}

/** What a delivery payload is handed to, record by record. */
export interface DeliveryHandler {
  /** A run of `lines` `3:` lines for the members of `room`. `chunk` is a view: copy to keep. */
  room(room: string, chunk: Uint8Array, lines: number): void;
  /** One `3:` line for `users`. `line` is a view: copy to keep. */
  direct(users: string[], line: Uint8Array): void;
}

/**
 * Reads every record of a delivery payload, in order. Throws {@linkcode BusFrameError} at the
 * first record it cannot read (the records before it have been handed on).
 *
 * @example Usage
 * ```ts
 * import { decodeDeliveries, encodeDirect } from "./bus_codec.ts";
 * decodeDeliveries(encodeDirect(["bob"], new TextEncoder().encode("3:hi\n")), {
 *   room() {},
 *   direct(users, line) { console.log(users, line.length); }, // ["bob"] 5
 * });
 * ```
 */
export function decodeDeliveries(payload: Uint8Array, handler: DeliveryHandler): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const end = payload.length;
  let at = 0;
  const need = (bytes: number) => {
    if (at + bytes > end) throw new BusFrameError(`delivery record cut short at byte ${at}`);
  };
  while (at < end) {
    const kind = payload[at++];
    if (kind === ROOM_RUN) {
      need(2);
      const nameLength = view.getUint16(at);
      at += 2;
      need(nameLength + 8);
      const room = decoder.decode(payload.subarray(at, at + nameLength));
      at += nameLength;
      const lines = view.getUint32(at);
      const length = view.getUint32(at + 4);
      at += 8;
      need(length);
      handler.room(room, payload.subarray(at, at + length), lines);
      at += length;
    } else if (kind === DIRECT) {
      need(2);
      const count = view.getUint16(at);
      at += 2;
      const users: string[] = [];
      for (let i = 0; i < count; i++) {
        need(1);
        const length = payload[at++];
        need(length);
        users.push(decoder.decode(payload.subarray(at, at + length)));
        at += length;
      }
      need(4);
      const length = view.getUint32(at);
      at += 4;
      need(length);
      handler.direct(users, payload.subarray(at, at + length));
      at += length;
    } else {
      throw new BusFrameError(`unknown delivery record kind ${kind} at byte ${at - 1}`);
    }
  }
}

/** A session in a snapshot (see {@linkcode PresenceEvent}). */
export interface SnapshotSession {
  user: string;
  fence: number;
  room: string | null;
  roomPasswordHash: string | null;
}

/**
 * A presence event. `claim` (written by the claim script), `end` (the release script) and
 * `down` (the heartbeat script) come from Redis itself; the others from a node.
 */
export type PresenceEvent =
  /** `user` claimed on `node` with `fence`; `prevNode` held it with `prevFence` ("" if none). */
  | {
    kind: "claim";
    user: string;
    fence: number;
    node: string;
    request: number;
    prevNode: string;
    prevFence: number;
    prevAlive: boolean;
  }
  /** The session (or claim) `fence` of `user` on `node` is over. */
  | { kind: "end"; user: string; fence: number; node: string }
  /** `node` stopped, or missed its heartbeats for longer than its TTL. */
  | { kind: "down"; node: string }
  /** `node` (this incarnation of it) joined or rejoined: everyone answers with a snapshot. */
  | { kind: "hello"; node: string; incarnation: string }
  /**
   * Every session `node` has, as of the claim with fence `watermark`: a claim the node had not
   * seen yet when it wrote this is not in it, and must not be taken as gone.
   */
  | {
    kind: "snapshot";
    node: string;
    incarnation: string;
    watermark: number;
    sessions: SnapshotSession[];
  }
  /** The session `fence` of `user` on `node` joined `room`. */
  | {
    kind: "join";
    user: string;
    fence: number;
    node: string;
    room: string;
    roomPasswordHash: string | null;
  };

/**
 * Writes a presence event as text (`claim`, `end` and `down` too, though Redis writes those in
 * production: the tests use this to check the two agree).
 *
 * @example Usage
 * ```ts
 * import { formatPresence } from "./bus_codec.ts";
 * formatPresence({ kind: "down", node: "n1" }); // "down\tn1"
 * ```
 */
export function formatPresence(event: PresenceEvent): string {
  switch (event.kind) {
    case "claim":
      return [
        "claim",
        event.user,
        event.fence,
        event.node,
        event.request,
        event.prevNode,
        event.prevFence,
        event.prevAlive ? 1 : 0,
      ].join("\t");
    case "end":
      return ["end", event.user, event.fence, event.node].join("\t");
    case "down":
      return `down\t${event.node}`;
    case "hello":
      return `hello\t${event.node}\t${event.incarnation}`;
    case "join":
      return ["join", event.user, event.fence, event.node, event.room, event.roomPasswordHash ?? ""]
        .join("\t");
    case "snapshot":
      return [
        `snap\t${event.node}\t${event.incarnation}\t${event.watermark}`,
        ...event.sessions.map((s) =>
          [s.user, s.fence, s.room ?? "", s.roomPasswordHash ?? ""].join("\t")
        ),
      ].join("\n");
  }
}

function fenceOf(text: string): number {
  const fence = Number(text);
  if (!Number.isSafeInteger(fence) || fence < 0) throw new BusFrameError(`bad fence "${text}"`);
  return fence;
}

/**
 * Reads a presence event. Throws {@linkcode BusFrameError} on text it does not understand.
 *
 * @example Usage
 * ```ts
 * import { parsePresence } from "./bus_codec.ts";
 * parsePresence("end\talice\t17\tn1"); // { kind: "end", user: "alice", fence: 17, node: "n1" }
 * ```
 */
export function parsePresence(text: string): PresenceEvent {
  const lines = text.split("\n");
  const f = lines[0].split("\t");
  const arity = (n: number) => {
    if (f.length !== n) throw new BusFrameError(`presence "${f[0]}" has ${f.length} fields`);
  };
  /** The session an event is about: user, fence and node, its first three fields. */
  const whose = () => ({ user: f[1], fence: fenceOf(f[2]), node: f[3] });
  switch (f[0]) {
    case "claim":
      arity(8);
      return {
        kind: "claim",
        ...whose(),
        request: fenceOf(f[4]),
        prevNode: f[5],
        prevFence: fenceOf(f[6]),
        prevAlive: f[7] === "1",
      };
    case "end":
      arity(4);
      return { kind: "end", ...whose() };
    case "down":
      arity(2);
      return { kind: "down", node: f[1] };
    case "hello":
      arity(3);
      return { kind: "hello", node: f[1], incarnation: f[2] };
    case "join":
      arity(6);
      return {
        kind: "join",
        ...whose(),
        room: f[4],
        roomPasswordHash: f[5] === "" ? null : f[5],
      };
    case "snap": {
      arity(4);
      const sessions = lines.slice(1).map((line) => {
        const s = line.split("\t");
        if (s.length !== 4) throw new BusFrameError(`snapshot line has ${s.length} fields`);
        return {
          user: s[0],
          fence: fenceOf(s[1]),
          room: s[2] === "" ? null : s[2],
          roomPasswordHash: s[3] === "" ? null : s[3],
        };
      });
      return {
        kind: "snapshot",
        node: f[1],
        incarnation: f[2],
        watermark: fenceOf(f[3]),
        sessions,
      };
    }
    default:
      throw new BusFrameError(`unknown presence event "${f[0].slice(0, 20)}"`);
  }
}
