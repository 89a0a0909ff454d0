/**
 * The v1.1 client lines of docs/protocol.md: `8:<feature>[,<feature>...]` (turn features on)
 * and `6:<username>:<token>` (log in with a resume token), read into commands; and the
 * server's v1.1 lines (`8:` replies, `7:<reason>` notices). codec.ts hands these lines here.
 *
 * @module
 */

import { isValidUsername } from "./codec.ts";

const COLON = 0x3a;
const encoder = new TextEncoder();

/** The most feature names one `8:` line may hold. */
export const MAX_FEATURE_NAMES = 16;
/** The features this server knows, in no particular order. */
export const KNOWN_FEATURES: readonly string[] = ["from", "why", "resume"];

/** The shortest and longest resume token. */
export const MIN_TOKEN_LENGTH = 16;
export const MAX_TOKEN_LENGTH = 256;

/** Why the server ends a session or closes a connection on its own: a `7:` line's reason. */
export type WhyReason = "replaced" | "removed" | "shutdown" | "idle" | "slow" | "busy";

/** A v1.1 client line, read. */
export type V11Command =
  /** `8:<names>`: the names as sent, in order (empty for `8:`). */
  | { kind: "features"; names: string[] }
  /** `6:<username>:<token>` with a well-formed name and token. */
  | { kind: "resume"; username: string; token: string }
  /** A `6:` line that cannot be a valid resume: answered as a failed login, `0:-1`. */
  | { kind: "bad-resume" }
  /** A malformed `8:` line: `9:8:malformed`. */
  | { kind: "invalid"; code: "8"; reason: "malformed" };

/**
 * Whether `token` has the syntax of a resume token: 16 to 256 of `A-Z a-z 0-9 - _ .`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidToken } from "./v11.ts";
 * assert.equal(isValidToken("abcdefghijklmnop"), true);
 * assert.equal(isValidToken("too-short"), false);
 * ```
 */
export function isValidToken(token: string): boolean {
  return token.length >= MIN_TOKEN_LENGTH && token.length <= MAX_TOKEN_LENGTH &&
    /^[A-Za-z0-9_.-]+$/.test(token);
}

/** Reads ASCII bytes as a string; null when a byte is not ASCII (no valid name or token is). */
function ascii(bytes: Uint8Array): string | null {
  let text = "";
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] >= 0x80) return null;
    text += String.fromCharCode(bytes[i]);
  }
  return text;
}

/**
 * Reads an `8:` line (the whole line, code included).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFeatures } from "./v11.ts";
 * const read = (s: string) => parseFeatures(new TextEncoder().encode(s));
 * assert.deepEqual(read("8:why,from"), { kind: "features", names: ["why", "from"] });
 * assert.deepEqual(read("8:"), { kind: "features", names: [] });
 * assert.equal(read("8:Why").kind, "invalid");
 * ```
 */
export function parseFeatures(line: Uint8Array): V11Command {
  const text = line.length < 2 ? null : ascii(line.subarray(2));
  if (text === null) return MALFORMED_FEATURES;
  if (text === "") return { kind: "features", names: [] };
  const names = text.split(",");
  if (names.length > MAX_FEATURE_NAMES) return MALFORMED_FEATURES;
  for (const name of names) {
    if (!/^[a-z0-9-]{1,32}$/.test(name)) return MALFORMED_FEATURES;
  }
  return { kind: "features", names };
}

/**
 * Reads a `6:` line (the whole line, code included); a malformed one is a failed login.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResume } from "./v11.ts";
 * const read = (s: string) => parseResume(new TextEncoder().encode(s));
 * assert.deepEqual(read("6:alice:abcdefghijklmnop"), {
 *   kind: "resume",
 *   username: "alice",
 *   token: "abcdefghijklmnop",
 * });
 * assert.deepEqual(read("6:alice:short"), { kind: "bad-resume" });
 * ```
 */
export function parseResume(line: Uint8Array): V11Command {
  const nameEnd = line.indexOf(COLON, 2);
  if (line.length < 2 || nameEnd === -1) return BAD_RESUME;
  const username = ascii(line.subarray(2, nameEnd));
  const token = ascii(line.subarray(nameEnd + 1));
  if (username === null || token === null) return BAD_RESUME;
  if (!isValidUsername(username) || !isValidToken(token)) return BAD_RESUME;
  return { kind: "resume", username, token };
}

const MALFORMED_FEATURES: V11Command = { kind: "invalid", code: "8", reason: "malformed" };
const BAD_RESUME: V11Command = { kind: "bad-resume" };

/**
 * The features a connection has turned on, in the order first asked. It is shared by the
 * connection (which reads `why`) and the hub (which reads `from`, and `resume`, and answers
 * `8:` lines): one object for the life of the connection, so features outlive its logins.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Features } from "./v11.ts";
 * const features = new Features();
 * assert.equal(new TextDecoder().decode(features.ask(["why", "color", "from"])), "8:why,from\n");
 * assert.equal(new TextDecoder().decode(features.ask(["from"])), "8:why,from\n");
 * assert.equal(features.from && features.why && !features.resume, true);
 * ```
 */
export class Features {
  /** `3:` lines read `3:<room>:<sender>:<message>`. */
  from = false;
  /** Server-initiated ends are announced with `7:<reason>`. */
  why = false;
  /** Every `0:<id>` is followed by `6:<token>`. */
  resume = false;
  #on: string[] = [];

  /** Turns on the known ones of `names`; returns the `8:` reply. */
  ask(names: readonly string[]): Uint8Array {
    for (const name of names) {
      if (!KNOWN_FEATURES.includes(name) || this.#on.includes(name)) continue;
      this.#on.push(name);
      if (name === "from") this.from = true;
      else if (name === "why") this.why = true;
      else this.resume = true;
    }
    return encoder.encode(`8:${this.#on.join(",")}\n`);
  }
}

const WHY_LINES = new Map<WhyReason, Uint8Array>();

/**
 * The `7:<reason>` line (encoded once per reason).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { whyLine } from "./v11.ts";
 * assert.equal(new TextDecoder().decode(whyLine("idle")), "7:idle\n");
 * ```
 */
export function whyLine(reason: WhyReason): Uint8Array {
  let line = WHY_LINES.get(reason);
  if (line === undefined) WHY_LINES.set(reason, line = encoder.encode(`7:${reason}\n`));
  return line;
}
