/**
 * The TLS scenarios' certificate: a throwaway self-signed P-256 certificate for localhost and
 * 127.0.0.1, made once per run in a temporary directory by the tests' `makeCert` (openssl). Every
 * server under test serves it and the generators trust it as their only CA.
 *
 * @module
 */

import { makeCert } from "../tests/helpers.ts";

/** Where a run's certificate and key are, and the certificate's PEM text. */
export interface BenchCert {
  dir: string;
  certFile: string;
  keyFile: string;
  certPem: string;
}

/**
 * Makes the certificate (valid one day) in a new temporary directory; remove `dir` after the run.
 * Throws with openssl's message if it fails.
 *
 * @example Usage
 * ```ts ignore
 * const cert = await makeBenchCert();
 * await Deno.remove(cert.dir, { recursive: true });
 * ```
 */
export async function makeBenchCert(): Promise<BenchCert> {
  const dir = await Deno.makeTempDir({ prefix: "parley-bench-tls-" });
  try {
    const cert = await makeCert(dir); // the tests' certificate: P-256, which every peer takes
    return { dir, certFile: cert.certPath, keyFile: cert.keyPath, certPem: cert.pem };
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}
