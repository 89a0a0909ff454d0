/**
 * The kinds of flag the server reads (a word, a choice, a bounded whole number, a switch, a
 * list, an origin), each with its parser: a bad value is a {@linkcode UsageError} that names the
 * flag or variable it came from.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { integer, UsageError } from "./flag_kinds.ts";
 * const port = integer("port", 7777, 0, 65535, "the port");
 * assert.equal(port.parse("8080", "--port"), 8080);
 * assert.throws(() => port.parse("http", "--port"), UsageError);
 * ```
 *
 * @module
 */

import { normalizeOrigin } from "../protocol/origin.ts";
import { AddressList } from "../transport/address_list.ts";

/** A bad flag or value; `main.ts` prints its message and exits non-zero. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What `node:util`'s parseArgs gives for a flag: a word, a switch, or every use of a list. */
export type RawValue = string | boolean | (string | boolean)[];

/**
 * How one setting is read. `list` is a repeatable flag (`--ws-origin A --ws-origin B`), or a
 * comma-separated variable.
 */
export interface Flag<T> {
  /** The flag's name, without `--`. */
  flag: string;
  kind: "string" | "integer" | "boolean" | "list";
  default: T;
  help: string;
  /** How --help shows the default when `default` is only a stand-in (e.g. "" for "worked out"). */
  shownDefault?: string;
  /** Reads a value given as `source` (`--port`, `PARLEY_PORT`); throws {@linkcode UsageError}. */
  parse(raw: RawValue, source: string): T;
}

/** The last use of a flag given more than once wins. */
function last(raw: RawValue): string | boolean {
  return Array.isArray(raw) ? raw[raw.length - 1] : raw;
}

export function text(flag: string, value: string, help: string): Flag<string> {
  return { flag, kind: "string", default: value, help, parse: (raw) => String(last(raw)) };
}

/** A word from a fixed list. */
export function choice<T extends string>(
  flag: string,
  value: T,
  choices: readonly T[],
  help: string,
): Flag<T> {
  const parse = (raw: RawValue, source: string): T => {
    const word = String(last(raw));
    const chosen = choices.find((item) => item === word);
    if (chosen === undefined) {
      throw new UsageError(`${source} must be one of ${choices.join(", ")} (got "${word}")`);
    }
    return chosen;
  };
  return { flag, kind: "string", default: value, help, parse };
}

export function integer(
  flag: string,
  value: number,
  min: number,
  max: number,
  help: string,
): Flag<number> {
  const parse = (raw: RawValue, source: string): number => {
    const word = String(last(raw));
    const number = /^-?\d+$/.test(word.trim()) ? Number(word) : NaN;
    if (!Number.isSafeInteger(number) || number < min || number > max) {
      throw new UsageError(
        `${source} must be a whole number from ${min} to ${max} (got "${word}")`,
      );
    }
    return number;
  };
  return { flag, kind: "integer", default: value, help, parse };
}

/** A switch: off unless given (a variable may say 1/0, true/false, yes/no, on/off). */
export function toggle(flag: string, help: string): Flag<boolean> {
  const parse = (raw: RawValue, source: string): boolean => {
    const value = last(raw);
    if (typeof value === "boolean") return value;
    const word = value.trim().toLowerCase();
    if (["1", "true", "yes", "on"].includes(word)) return true;
    if (["0", "false", "no", "off", ""].includes(word)) return false;
    throw new UsageError(`${source} must be true or false (got "${value}")`);
  };
  return { flag, kind: "boolean", default: false, help, parse };
}

/** A repeatable flag, or a comma-separated variable; empty by default. */
export function list(flag: string, help: string): Flag<string[]> {
  const parse = (raw: RawValue): string[] => {
    const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(",");
    return items.map((item) => item.trim()).filter((item) => item !== "");
  };
  return { flag, kind: "list", default: [], help, parse };
}

/** IP addresses and CIDR blocks, repeatable and comma-separated, each checked. */
export function addresses(flag: string, help: string): Flag<string[]> {
  const parse = (raw: RawValue, source: string): string[] => {
    const items = (Array.isArray(raw) ? raw.map(String) : [String(raw)])
      .flatMap((item) => item.split(",")).map((item) => item.trim()).filter((item) => item !== "");
    try {
      AddressList.parse(items);
    } catch (error) {
      throw new UsageError(`${source}: ${(error as Error).message}`);
    }
    return items;
  };
  return { flag, kind: "list", default: [], help, parse };
}

/** One origin (`scheme://host[:port]`), normalized; "" (the default) for none. */
export function origin(flag: string, help: string): Flag<string> {
  const parse = (raw: RawValue, source: string): string => {
    const word = String(last(raw)).trim();
    if (word === "") return "";
    const normalized = normalizeOrigin(word);
    if (normalized === null) {
      throw new UsageError(
        `${source} must be an origin such as https://chat.example (got "${word}")`,
      );
    }
    return normalized;
  };
  return { flag, kind: "string", default: "", help, parse };
}
