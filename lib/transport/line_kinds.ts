/**
 * What a line or a command is, for a connection's rules: the code a line would be answered
 * under (flood replies, before parsing), and which commands are logins or check a secret (the
 * login clock and the per-address turns of login_throttle.ts).
 *
 * @module
 */

import type { Command, ErrorCode } from "../protocol/codec.ts";

/**
 * The code a line would answer to, read without parsing it.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { codeOf } from "./line_kinds.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * assert.equal(codeOf(bytes("3:1:hi")), "3");
 * assert.equal(codeOf(bytes("1")), "1");
 * assert.equal(codeOf(bytes("5:x")), "?");
 * ```
 */
export function codeOf(line: Uint8Array): ErrorCode {
  const digit = line[0] - 0x30;
  const known = (digit >= 0 && digit <= 3) || digit === 6 || digit === 8;
  if (known && (line.length === 1 || line[1] === 0x3a)) {
    return String(digit) as ErrorCode;
  }
  return "?";
}

/**
 * Whether a command is a login: by password or by resume token, even a malformed one.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "../protocol/codec.ts";
 * import { isLogin } from "./line_kinds.ts";
 * const command = (text: string) => parseCommand(new TextEncoder().encode(text))!;
 * assert.equal(isLogin(command("0:alice:pw")), true);
 * assert.equal(isLogin(command("2:lobby")), false);
 * ```
 */
export function isLogin(command: Command): boolean {
  return command.kind === "login" || command.kind === "bad-login" || checksToken(command);
}

/**
 * Whether a command checks a resume token (`6:`, even a malformed one): a hash and a read, never
 * a password hash.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "../protocol/codec.ts";
 * import { checksToken } from "./line_kinds.ts";
 * const command = (text: string) => parseCommand(new TextEncoder().encode(text))!;
 * assert.equal(checksToken(command("6:alice:abcdefghijklmnop")), true);
 * assert.equal(checksToken(command("0:alice:pw")), false);
 * ```
 */
export function checksToken(command: Command): boolean {
  return command.kind === "resume" || command.kind === "bad-resume";
}

/**
 * Whether a command checks a password (or a token): a login, a join with a password.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "../protocol/codec.ts";
 * import { checksPassword } from "./line_kinds.ts";
 * const command = (text: string) => parseCommand(new TextEncoder().encode(text))!;
 * assert.equal(checksPassword(command("2:vault:secret")), true);
 * assert.equal(checksPassword(command("2:lobby")), false);
 * ```
 */
export function checksPassword(command: Command): boolean {
  return isLogin(command) || (command.kind === "join" && command.password.length > 0);
}
