/**
 * The TLS scenarios' certificate: a throwaway self-signed P-256 certificate for localhost and
 * 127.0.0.1, made with openssl once per run in a temporary directory. Every server under test
 * serves it and the generators trust it as their only CA.
 *
 * @module
 */

/** Where a run's certificate and key are, and the certificate's PEM text. */
export interface BenchCert {
  dir: string;
  certFile: string;
  keyFile: string;
  certPem: string;
}

/**
 * Makes the certificate (valid two days) in a new temporary directory; remove `dir` after the run.
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
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  // P-256 rather than RSA: every peer's TLS library (OpenSSL, GnuTLS, Go, rustls) takes it.
  const args = [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:FALSE", // rustls refuses a CA certificate as the server's
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ];
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(
      `openssl could not make the TLS certificate: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { dir, certFile, keyFile, certPem: await Deno.readTextFile(certFile) };
}
