/**
 * The TLS ports' certificate and key: read once, and turned into a listener (or, with
 * `--proxy-protocol`, checked for the TLS the server starts itself), with errors naming the files.
 *
 * @module
 */

import { createSecureContext } from "node:tls";
import { describeError } from "../observe/log.ts";

/** A TLS file that cannot be read: its message names the file. */
class TlsSetupError extends Error {}

/** A PEM file's text; the error names the file. */
export function readPem(path: string, what: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new TlsSetupError(`cannot read the TLS ${what} ${path}: ${describeError(error)}`);
  }
}

/**
 * A TLS port's listener with the PEMs read once for every TLS port; the error names the files.
 * `plain`: a plain TCP listener, for a port that starts TLS itself (after a PROXY header), with
 * the PEMs checked as `Deno.listenTls` would.
 */
export function listenTls(
  hostname: string,
  port: number,
  pems: { cert: string; key: string },
  files: { tlsCert: string; tlsKey: string },
  plain = false,
): Deno.Listener {
  if (plain) {
    checkPems(pems, files);
    return Deno.listen({ hostname, port });
  }
  try {
    return Deno.listenTls({ hostname, port, ...pems });
  } catch (error) {
    throw new Error(
      `cannot serve TLS with ${files.tlsCert} and ${files.tlsKey}: ${describeError(error)}`,
    );
  }
}

/**
 * Checks that the PEMs make a TLS server (what `Deno.listenTls` checks when it starts), for the
 * TLS the server starts itself over a plain socket; the error names the files.
 */
export function checkPems(
  pems: { cert: string; key: string },
  files: { tlsCert: string; tlsKey: string },
): void {
  try {
    createSecureContext(pems);
  } catch (error) {
    throw new Error(
      `cannot serve TLS with ${files.tlsCert} and ${files.tlsKey}: ${describeError(error)}`,
    );
  }
}
