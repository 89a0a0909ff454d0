/**
 * What the server's lines mean to a client: the typed events and errors `ParleyClient` (client.ts)
 * hands out, and the pure functions that read them from a line. Nothing here touches a socket.
 *
 * @module
 */

const decoder = new TextDecoder();

/** A message for this client (`3:`). */
export interface MessageEvent {
  type: "message";
  /** The message as text (invalid UTF-8 replaced). */
  text: string;
  /** The message's bytes as the sender sent them. */
  bytes: Uint8Array;
  /**
   * The sender: with the `from` feature on (the client asks for it), or when the server stamps
   * senders and `stampSender` is set.
   */
  sender?: string;
  /** The room it was sent to (with `from`); empty for a direct message. */
  room?: string;
  /** A direct (`3:2`) message (with `from`). */
  direct?: boolean;
}

/** This client joined a room (`2:`, the reply to `ParleyClient.join`). */
export interface JoinedEvent {
  type: "joined";
  room: string;
  /** Everyone in the room now, this client included, sorted. */
  members: string[];
}

/** Someone joined (`4:`) or left (`5:`) this client's room. */
export interface PresenceEvent {
  type: "presence";
  action: "join" | "leave";
  room: string;
  user: string;
}

/** A command failed (`9:`) and no request was waiting for the answer (a send, usually). */
export interface ErrorEvent {
  type: "error";
  /** The failed command's code (`0` to `3`), or `?`. */
  code: string;
  /** Why, e.g. `not-online`, `not-in-room`, `rate-limited`. */
  reason: string;
  /** More, e.g. the users who got nothing. */
  detail?: string;
}

/** The server ended this session (`0:-1`): the user logged in elsewhere, or was removed. */
export interface SessionEndedEvent {
  type: "session-ended";
  /** Why, when the server said (`7:`, with `why` on): `replaced`, `removed`, `shutdown`… */
  reason?: string;
}

/** The server is about to end this session or close the connection (`7:<reason>`). */
export interface ReasonEvent {
  type: "reason";
  /** `replaced`, `removed`, `shutdown`, `idle`, `slow`, `busy`, or one this client does not know. */
  reason: string;
}

/** The connection was lost and the client will try again after `delayMs` (with `reconnect`). */
export interface ReconnectingEvent {
  type: "reconnecting";
  /** 1 for the first try after a loss. */
  attempt: number;
  delayMs: number;
}

/** The client is back: logged in again (by token when `resumed`, else by password), in its room. */
export interface ReconnectedEvent {
  type: "reconnected";
  resumed: boolean;
  sessionId: number | null;
}

/**
 * The client stopped for good (with `reconnect`); the event stream ends after it. Reasons:
 * `replaced`, `removed` (the server's), `session-ended` (ended without a reason given),
 * `login-refused`, `no-password`, `gave-up` (too many failed attempts).
 */
export interface EndedEvent {
  type: "ended";
  reason: string;
}

/** Everything the event stream yields. */
export type ParleyEvent =
  | MessageEvent
  | JoinedEvent
  | PresenceEvent
  | ErrorEvent
  | SessionEndedEvent
  | ReasonEvent
  | ReconnectingEvent
  | ReconnectedEvent
  | EndedEvent;

/** A room in the room list. */
export interface RoomInfo {
  name: string;
  /** Who is in it now, sorted. */
  members: string[];
}

/**
 * A request the server refused (`9:` or `0:-1`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParleyError } from "./events.ts";
 * const error = new ParleyError("2", "room-password");
 * assert.equal(error.message, "2:room-password");
 * assert.equal(error.reason, "room-password");
 * ```
 */
export class ParleyError extends Error {
  /** The code of the failed command, `?`, or `0` with reason `logged-out` for `0:-1`. */
  readonly code: string;
  readonly reason: string;
  readonly detail?: string;
  constructor(code: string, reason: string, detail?: string) {
    super(`${code}:${reason}${detail === undefined ? "" : `:${detail}`}`);
    this.name = "ParleyError";
    this.code = code;
    this.reason = reason;
    this.detail = detail;
  }
}

/**
 * A `3:` line's message (the line without its `3:`). With `from` it is `<room>:<sender>:<text>`
 * (the room empty for a direct message); else, with `stampSender`, the text up to the first `:`
 * is the sender. The message bytes are kept exactly, colons and all.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMessage } from "./events.ts";
 * const body = (text: string) => new TextEncoder().encode(text);
 * assert.equal(parseMessage(body("alice:hi: there"), true).sender, "alice");
 * assert.equal(parseMessage(body("alice:hi: there"), true).text, "hi: there");
 * assert.equal(parseMessage(body("alice:hi: there"), false).text, "alice:hi: there");
 * const direct = parseMessage(body(":bob:psst"), false, true);
 * assert.deepEqual([direct.room, direct.sender, direct.text, direct.direct], ["", "bob", "psst", true]);
 * assert.equal(parseMessage(body("lobby:bob:a:b"), false, true).text, "a:b");
 * ```
 */
export function parseMessage(body: Uint8Array, stampSender: boolean, from = false): MessageEvent {
  let bytes = body;
  if (from) {
    const first = bytes.indexOf(0x3a);
    const second = first === -1 ? -1 : bytes.indexOf(0x3a, first + 1);
    if (second !== -1) {
      const room = decoder.decode(bytes.subarray(0, first));
      const sender = decoder.decode(bytes.subarray(first + 1, second));
      bytes = bytes.slice(second + 1);
      return {
        type: "message",
        text: decoder.decode(bytes),
        bytes,
        sender,
        room,
        direct: room === "",
      };
    }
  }
  let sender: string | undefined;
  if (stampSender) {
    const colon = bytes.indexOf(0x3a);
    if (colon !== -1) {
      sender = decoder.decode(bytes.subarray(0, colon));
      bytes = bytes.slice(colon + 1);
    }
  }
  return { type: "message", text: decoder.decode(bytes), bytes, sender };
}

/**
 * A `2:<room>:<members>` line. A room name may hold `:`, member names may not, so the members
 * are after the last one.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseJoined } from "./events.ts";
 * assert.deepEqual(parseJoined("2:lobby:alice,bob"), {
 *   type: "joined",
 *   room: "lobby",
 *   members: ["alice", "bob"],
 * });
 * ```
 */
export function parseJoined(line: string): JoinedEvent {
  const at = line.lastIndexOf(":");
  const members = line.slice(at + 1);
  return {
    type: "joined",
    room: line.slice(2, at),
    members: members === "" ? [] : members.split(","),
  };
}

/**
 * A `1:` line, the room list: `1:<room>,<member>,…:<room>,…`, or `1:` for none.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRooms } from "./events.ts";
 * assert.deepEqual(parseRooms("1:chess,alice:poker,bob,carol"), [
 *   { name: "chess", members: ["alice"] },
 *   { name: "poker", members: ["bob", "carol"] },
 * ]);
 * assert.deepEqual(parseRooms("1:"), []);
 * ```
 */
export function parseRooms(line: string): RoomInfo[] {
  if (line === "1:") return [];
  return line.slice(2).split(":").map((field) => {
    const [name, ...members] = field.split(",");
    return { name, members };
  });
}

/**
 * A `4:<room>:<user>` (joined) or `5:<room>:<user>` (left) line, or `null` if it is not one.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePresence } from "./events.ts";
 * assert.deepEqual(parsePresence("5:lobby:bob"), {
 *   type: "presence",
 *   action: "leave",
 *   room: "lobby",
 *   user: "bob",
 * });
 * assert.equal(parsePresence("4:lobby"), null);
 * ```
 */
export function parsePresence(line: string): PresenceEvent | null {
  const at = line.indexOf(":", 2);
  if (at === -1) return null;
  return {
    type: "presence",
    action: line[0] === "4" ? "join" : "leave",
    room: line.slice(2, at),
    user: line.slice(at + 1),
  };
}

/**
 * A `9:<code>:<reason>[:<detail>]` line (the detail may hold `:`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseError } from "./events.ts";
 * assert.deepEqual(parseError("9:3:not-online:bob:carol"), {
 *   type: "error",
 *   code: "3",
 *   reason: "not-online",
 *   detail: "bob:carol",
 * });
 * ```
 */
export function parseError(line: string): ErrorEvent {
  const [, code = "?", reason = "", ...rest] = line.split(":");
  return { type: "error", code, reason, detail: rest.length > 0 ? rest.join(":") : undefined };
}
