// Start-up errors name their cause (issue 15): the flag and port in use, --host, --port -1, the
// TLS file; one line, a non-zero exit, and no "listening" before it (every port and file is
// checked before any is served).
import assert from "node:assert/strict";
import { makeCert, runCli, tempDir } from "./helpers.ts";

Deno.test("start-up errors: one line naming the flag, port, host or file; nothing listens", async () => {
  const temp = await tempDir();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = String((taken.addr as Deno.NetAddr).port);
  try {
    const cert = await makeCert(temp.dir);
    const db = ["--db", `${temp.dir}/p.db`];
    const local = ["--host", "127.0.0.1", ...db];
    const tlsFiles = ["--tls-cert", cert.certPath, "--tls-key", cert.keyPath];
    const cases: [string[], RegExp][] = [
      [
        [...local, "--port", busy],
        new RegExp(`^parley: --port ${busy}: that port is already in use on 127\\.0\\.0\\.1$`),
      ],
      [
        [...local, "--port", "0", "--ws-port", busy],
        new RegExp(`^parley: --ws-port ${busy}: that port is already in use`),
      ],
      [
        [...local, "--port", "0", "--metrics-port", busy],
        new RegExp(`^parley: --metrics-port ${busy}: that port is already in use`),
      ],
      // Not blamed on the certificate: the port is the cause.
      [
        [...local, "--port", "0", ...tlsFiles, "--tls-port", busy],
        new RegExp(`^parley: --tls-port ${busy}: that port is already in use`),
      ],
      [[
        ...local,
        "--port",
        "0",
        "--tls-port",
        "0",
        "--tls-cert",
        `${temp.dir}/nope.pem`,
        "--tls-key",
        cert.keyPath,
      ], /^parley: cannot read the TLS certificate \S*nope\.pem: /],
      [
        [...db, "--host", "nosuchhost.invalid", "--port", "0"],
        /^parley: cannot listen on --host nosuchhost\.invalid --port 0: /,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, i) => {
      const [args, expected] = cases[i];
      const lines = result.stderr.split("\n").filter((l) => l.startsWith("parley:"));
      assert.notEqual(result.code, 0, args.join(" "));
      assert.equal(lines.length, 1, `one line for ${args.join(" ")}:\n${result.stderr}`);
      assert.match(lines[0], expected);
      assert.doesNotMatch(result.stdout + result.stderr, /listening/, args.join(" "));
    });
  } finally {
    taken.close();
    await temp.remove();
  }
});
