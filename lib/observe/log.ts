/**
 * One-line logs on stderr: `<time> <level> <event> key=value ...`. Only events worth an
 * operator's eye are logged; passwords never are.
 *
 * @module
 */

/** Log levels, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** How a log line is written: `text` (`<time> <level> <event> key=value ...`) or `json`. */
export type LogFormat = "text" | "json";

/** Extra fields of a log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/**
 * An error as one log field: its message's first line (a stack or a driver's detail would
 * break the one-line-per-event format).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError } from "./log.ts";
 * assert.equal(describeError(new Error("disk full\n  at write")), "disk full");
 * assert.equal(describeError("refused"), "refused");
 * ```
 */
export function describeError(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/**
 * Writes log lines at or above a level.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Logger } from "./log.ts";
 * const lines: string[] = [];
 * const log = new Logger("info", (line) => lines.push(line));
 * log.info("listening", { address: "127.0.0.1:7777", note: "two words" });
 * log.debug("ignored"); // below the level
 * assert.equal(lines.length, 1);
 * assert.match(lines[0], /^\S+ info listening address=127\.0\.0\.1:7777 note="two words"$/);
 *
 * const json: string[] = [];
 * new Logger("info", (line) => json.push(line), "json").warn("slow", { ms: 120 });
 * assert.deepEqual({ ...JSON.parse(json[0]), time: "-" }, {
 *   time: "-",
 *   level: "warn",
 *   event: "slow",
 *   ms: 120,
 * });
 * ```
 */
export class Logger {
  #minimum: number;
  #write: (line: string) => void;
  #json: boolean;

  /**
   * @param level the least severe level written
   * @param write where lines go (stderr by default)
   * @param format `text` (the default) or `json`: one object a line, `time`, `level`, `event` first
   */
  constructor(
    level: LogLevel = "info",
    write?: (line: string) => void,
    format: LogFormat = "text",
  ) {
    this.#minimum = RANK[level];
    this.#write = write ?? ((line) => console.error(line));
    this.#json = format === "json";
  }

  /**
   * Fields written at the end of every line from now on (a cluster node's id, so the logs of
   * several nodes can be read together).
   */
  context: LogFields = {};

  /** Logs at `level`. */
  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (RANK[level] < this.#minimum) return;
    fields = { ...fields, ...this.context };
    if (this.#json) {
      this.#write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
      return;
    }
    let line = `${new Date().toISOString()} ${level} ${event}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const text = String(value);
      line += ` ${key}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
    }
    this.#write(line);
  }

  /** Logs a debug line. */
  debug(event: string, fields?: LogFields): void {
    this.log("debug", event, fields);
  }

  /** Logs an info line. */
  info(event: string, fields?: LogFields): void {
    this.log("info", event, fields);
  }

  /** Logs a warning. */
  warn(event: string, fields?: LogFields): void {
    this.log("warn", event, fields);
  }

  /** Logs an error. */
  error(event: string, fields?: LogFields): void {
    this.log("error", event, fields);
  }
}
