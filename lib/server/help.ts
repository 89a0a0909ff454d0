/**
 * What the program says about itself: its version (`--version`) and `--help`, every flag with its
 * default and its environment variable.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };
import { ADMIN_FLAGS, envName, SERVER_FLAGS } from "./flags.ts";

/** Parley's version, as deno.json gives it (the one place it is written). */
export const VERSION: string = denoJson.version;

/** Flag names and their arguments are padded to this column; the help text starts there. */
const HELP_COLUMN = 26;

/**
 * The text of `--help`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./help.ts";
 * const help = helpText();
 * assert.match(help, /--port N +plain TCP port/);
 * assert.ok(help.includes("default: 7777; env: PARLEY_PORT"));
 * ```
 */
export function helpText(): string {
  const lines = [
    `Parley ${VERSION}: a text-protocol chat and lobby server.`,
    "",
    "Usage:",
    "  parley [flags]                          run the server",
    "  parley --db FILE --add-user NAME        an admin command (see below), then exit",
    "  parley chat HOST[:PORT] --user NAME     the terminal client (parley chat --help)",
    "",
    "Server flags (each also read from the environment variable shown):",
  ];
  for (const spec of SERVER_FLAGS) {
    const arg = spec.kind === "boolean" ? "" : spec.kind === "integer" ? " N" : " VALUE";
    const shown = spec.shownDefault ??
      (spec.default === "" || (Array.isArray(spec.default) && !spec.default.length)
        ? "none"
        : String(spec.default));
    lines.push(`  --${spec.flag}${arg}`.padEnd(HELP_COLUMN) + spec.help);
    lines.push(" ".repeat(HELP_COLUMN) + `default: ${shown}; env: ${envName(spec.flag)}`);
  }
  lines.push("", "Admin commands (run against --db, then exit):");
  for (const [flag, spec] of Object.entries(ADMIN_FLAGS)) {
    const arg = "arg" in spec ? ` ${spec.arg}` : spec.takesName ? " NAME" : "";
    lines.push(`  --${flag}${arg}`.padEnd(HELP_COLUMN) + spec.help);
  }
  lines.push("", "Other:", "  --help".padEnd(HELP_COLUMN) + "print this and exit");
  lines.push("  --version".padEnd(HELP_COLUMN) + "print the version and exit");
  return lines.join("\n");
}
