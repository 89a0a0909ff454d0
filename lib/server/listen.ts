/**
 * Opening the server's ports with errors that name their cause: the TLS file that cannot be read,
 * the flag and port in use (`--ws-port 8080`), or `--host` when the address is no good.
 *
 * @module
 */

import { describeError } from "../observe/log.ts";

/**
 * A TLS file's text; the error names the file.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readPem } from "./listen.ts";
 * assert.throws(() => readPem("/nonexistent/cert.pem", "certificate"), /TLS certificate \/nonexistent/);
 * ```
 */
export function readPem(path: string, what: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${describeError(error)}`);
  }
}

/** What bind errors mean: the port (or the address) is the cause, not the TLS files. */
function isBindError(error: unknown): boolean {
  return error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
    error instanceof Deno.errors.PermissionDenied ||
    (error instanceof Error && /lookup|resolve|name or service/i.test(error.message));
}

/**
 * Opens one listener; a failure names its flag and port (`--ws-port 8080`), or `--host` when the
 * address cannot be used, and blames the TLS files only when binding was not the problem.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { openNamed } from "./listen.ts";
 * const first = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = (first.addr as Deno.NetAddr).port;
 * const at = { flag: "ws-port", host: "127.0.0.1", port };
 * let message = "";
 * try {
 *   openNamed(at, () => Deno.listen({ hostname: "127.0.0.1", port }));
 * } catch (error) {
 *   message = (error as Error).message;
 * }
 * assert.equal(message, `--ws-port ${port}: that port is already in use on 127.0.0.1`);
 * first.close();
 * ```
 */
export function openNamed<T>(
  what: { flag: string; host: string; port: number; tlsFiles?: string },
  open: () => T,
): T {
  try {
    return open();
  } catch (error) {
    const reason = describeError(error);
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(`--${what.flag} ${what.port}: that port is already in use on ${what.host}`);
    }
    if (isBindError(error) || what.tlsFiles === undefined) {
      throw new Error(
        `cannot listen on --host ${what.host} --${what.flag} ${what.port}: ${reason}`,
      );
    }
    throw new Error(`cannot serve TLS with ${what.tlsFiles}: ${reason}`);
  }
}
