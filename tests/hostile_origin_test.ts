// DNS rebinding past --ws-origin: a page on http://evil.example:PORT whose name resolves to this
// server sends an Origin and a Host that agree. Only the listed origins (--ws-origin, and the
// page's public origin --web-origin) pass; the Host header is never trusted for it.
import assert from "node:assert/strict";
import { type Config, parseInvocation, UsageError } from "../lib/server/config.ts";
import { RawWsClient, startWsServer } from "./ws_support.ts";

/** The status of an upgrade sent with this `Host` and `Origin` (no Origin when null). */
async function upgradeStatus(port: number, host: string, origin: string | null): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const raw = await RawWsClient.open(conn, host, origin === null ? {} : { Origin: origin });
    return raw.status;
  } finally {
    conn.close();
  }
}

Deno.test("hostile origin: a rebound page whose Host matches its Origin gets 403", async () => {
  const server = await startWsServer({ args: ["--web", "--ws-origin", "https://good.example"] });
  try {
    const port = server.wsPort;
    const statuses = {
      rebound: await upgradeStatus(port, `evil.example:${port}`, `http://evil.example:${port}`),
      // The page loaded from this very address is not listed either: list it to allow it.
      loopback: await upgradeStatus(port, `127.0.0.1:${port}`, `http://127.0.0.1:${port}`),
      listed: await upgradeStatus(port, `evil.example:${port}`, "https://good.example"),
    };
    assert.deepEqual(statuses, { rebound: 403, loopback: 403, listed: 101 });
    assert.match(server.log(), new RegExp(`origin-refused .*origin=http://evil.example:${port}`));
  } finally {
    await server.stop();
  }
});

Deno.test("hostile origin: --web-origin names the page's origin, and only it is added", async () => {
  // The page's public origin need not be this port: a proxy may serve it on 443.
  const server = await startWsServer({
    args: ["--web", "--ws-origin", "https://good.example", "--web-origin", "https://Chat.example/"],
  });
  try {
    const port = server.wsPort;
    const statuses = {
      page: await upgradeStatus(port, "chat.example", "https://chat.example"),
      pageViaAnyHost: await upgradeStatus(port, `127.0.0.1:${port}`, "https://chat.example:443"),
      listed: await upgradeStatus(port, "chat.example", "https://good.example"),
      rebound: await upgradeStatus(port, `evil.example:${port}`, `http://evil.example:${port}`),
      plainScheme: await upgradeStatus(port, "chat.example", "http://chat.example"),
    };
    assert.deepEqual(statuses, {
      page: 101,
      pageViaAnyHost: 101,
      listed: 101,
      rebound: 403,
      plainScheme: 403,
    });
  } finally {
    await server.stop();
  }
});

Deno.test("hostile origin: --web-origin alone turns the check on for the page's origin", async () => {
  const server = await startWsServer({
    args: ["--web"],
    env: { PARLEY_WEB_ORIGIN: "http://127.0.0.1:1" },
  });
  try {
    const port = server.wsPort;
    const statuses = {
      page: await upgradeStatus(port, `127.0.0.1:${port}`, "http://127.0.0.1:1"),
      rebound: await upgradeStatus(port, `evil.example:${port}`, `http://evil.example:${port}`),
      noOrigin: await upgradeStatus(port, `127.0.0.1:${port}`, null), // not a browser
    };
    assert.deepEqual(statuses, { page: 101, rebound: 403, noOrigin: 101 });
  } finally {
    await server.stop();
  }
});

Deno.test("hostile origin: --web-origin is normalized into the allowed list; a bad one is refused", () => {
  const serve = (args: string[], env: Record<string, string> = {}): Config => {
    const run = parseInvocation(args, env);
    if (run.kind !== "serve") throw new Error(`expected serve, got ${run.kind}`);
    return run.config;
  };
  assert.equal(serve([]).webOrigin, "");
  assert.deepEqual(serve([]).wsOrigins, []);
  const both = serve([
    "--ws-origin",
    "https://a.example",
    "--web-origin",
    "HTTPS://Chat.Example:443/",
  ]);
  assert.equal(both.webOrigin, "https://chat.example");
  assert.deepEqual(both.wsOrigins, ["https://a.example", "https://chat.example"]);
  assert.deepEqual(serve([], { PARLEY_WEB_ORIGIN: "http://x.example:8080" }).wsOrigins, [
    "http://x.example:8080",
  ]);
  for (const bad of ["chat.example", "https://chat.example/path", "null", "ftp://chat.example"]) {
    assert.throws(() => parseInvocation(["--web-origin", bad], {}), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /^--web-origin must be an origin/);
      return true;
    });
  }
  assert.throws(
    () => parseInvocation([], { PARLEY_WEB_ORIGIN: "nope" }),
    /^UsageError: PARLEY_WEB_ORIGIN must be an origin/,
  );
});
