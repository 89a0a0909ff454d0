// TLS for testing (issue 15): the self-signed certificate command in docs/deploy.md makes one
// Parley's client accepts; one made the OpenSSL 3 default way (CA:TRUE) or not trusted is refused
// with an error that says what to do.
import assert from "node:assert/strict";
import { ParleyClient } from "../lib/client/client.ts";
import { startServer, tempDir } from "./helpers.ts";

const DEPLOY = new URL("../docs/deploy.md", import.meta.url);

/** The `openssl req` command of docs/deploy.md, with its continuation lines. */
async function docsCommand(): Promise<string> {
  const text = await Deno.readTextFile(DEPLOY);
  const match = /^openssl req -x509 (?:.*\\\n)*.*$/m.exec(text);
  if (match === null) throw new Error("docs/deploy.md shows no openssl req command");
  return match[0];
}

async function sh(command: string, cwd: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-c", command], cwd, stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`${command}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A server on TLS only, with the certificate in `dir`; runs `body` with its TLS port and PEM. */
async function withTls(dir: string, body: (port: number, pem: string) => Promise<void>) {
  const server = await startServer({
    users: { alice: "wonderland" },
    args: [
      "--port=-1",
      "--tls-port",
      "0",
      "--tls-cert",
      `${dir}/cert.pem`,
      "--tls-key",
      `${dir}/key.pem`,
    ],
  });
  try {
    await body(server.tlsPort!, await Deno.readTextFile(`${dir}/cert.pem`));
  } finally {
    await server.stop();
  }
}

Deno.test("TLS: the docs' test certificate works; CA:TRUE and untrusted ones say what to do", async () => {
  const temp = await tempDir();
  try {
    const docs = `${temp.dir}/docs`;
    const usual = `${temp.dir}/usual`;
    await Deno.mkdir(docs);
    await Deno.mkdir(usual);
    await sh(await docsCommand(), docs);
    // The usual OpenSSL 3 way: a self-signed certificate is a CA (CA:TRUE) unless told otherwise.
    await sh(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 " +
        "-keyout key.pem -out cert.pem -subj /CN=localhost " +
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1",
      usual,
    );

    await withTls(docs, async (port, pem) => {
      const client = await ParleyClient.connect({ port, tls: { caCerts: [pem] } });
      try {
        assert.ok(await client.login("alice", "wonderland") > 0);
      } finally {
        await client.close();
      }
      await assert.rejects(
        () => ParleyClient.connect({ port, tls: true }),
        /not signed by a CA this client trusts: .*--ca FILE/,
      );
    });
    await withTls(usual, async (port, pem) => {
      await assert.rejects(
        () => ParleyClient.connect({ port, tls: { caCerts: [pem] } }),
        /a CA certificate \(CA:TRUE\).*basicConstraints=critical,CA:FALSE/,
      );
    });
  } finally {
    await temp.remove();
  }
});
