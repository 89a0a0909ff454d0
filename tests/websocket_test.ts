// The WebSocket transport end to end: WebSocket and TCP users in the same rooms, the framing, the
// limits (frame size, slow consumers, flood control, login timeout, max connections across
// transports), the Origin check, wss, the page, and the flags.
import assert from "node:assert/strict";
import { type Config, helpText, parseInvocation, UsageError } from "../lib/server/config.ts";
import { normalizeOrigin, originAllowed } from "../lib/protocol/origin.ts";
import { makeCert, tempDir, TestClient } from "./helpers.ts";
import { RawWsClient, startWsServer, WsClient } from "./ws_support.ts";

const USERS = { alice: "wonderland", bob: "builder", carol: "singer" };

Deno.test("ws: a WebSocket user and a TCP user share rooms, messages, presence and the kick", async () => {
  const server = await startWsServer({ users: USERS });
  const ws: WsClient[] = [];
  const tcp: TestClient[] = [];
  try {
    const alice = await WsClient.login(server.wsPort, "alice", "wonderland");
    ws.push(alice);
    alice.send("2:lobby");
    await alice.expect("2:lobby:alice");

    const bob = await TestClient.login(server.port, "bob", "builder");
    tcp.push(bob);
    await bob.send("2:lobby");
    await bob.expect("2:lobby:alice,bob");
    await alice.expect("4:lobby:bob");

    // The three kinds of message, both ways.
    alice.send("3:0:to all of us");
    await alice.expect("3:to all of us");
    await bob.expect("3:to all of us");
    await bob.send("3:1:from tcp, not echoed");
    await alice.expect("3:from tcp, not echoed");
    alice.send("3:2:bob:carol:aGk=");
    await bob.expect("3:aGk=");
    await alice.expect("9:3:not-online:carol");
    await bob.send("3:2:alice:direct from tcp");
    await alice.expect("3:direct from tcp");
    alice.send("1");
    await alice.expect("1:lobby,alice,bob");

    // Presence: a TCP user leaves and comes back; the WebSocket user hears both.
    await bob.send("2:elsewhere");
    await bob.expect("2:elsewhere:bob");
    await alice.expect("5:lobby:bob");
    await bob.send("2:lobby");
    await bob.expect("2:lobby:alice,bob");
    await alice.expect("4:lobby:bob");

    // The kick across transports: bob logs in over WebSocket, so his TCP session ends.
    const bob2 = await WsClient.login(server.wsPort, "bob", "builder");
    ws.push(bob2);
    await bob.expect("0:-1");
    await alice.expect("5:lobby:bob");
    assert.equal(bob.closed, false); // the kicked connection stays open, logged out
    await bob.send("3:1:still here?");
    await bob.expect("0:-1");

    // And the other way: alice logs in over TCP, her WebSocket session ends.
    bob2.send("2:lobby");
    await bob2.expect("2:lobby:alice,bob");
    await alice.expect("4:lobby:bob");
    const alice2 = await TestClient.login(server.port, "alice", "wonderland");
    tcp.push(alice2);
    await alice.expect("0:-1");
    await bob2.expect("5:lobby:alice");

    // A WebSocket closing ends its session: the TCP user in the room is told.
    await alice2.send("2:lobby");
    await alice2.expect("2:lobby:alice,bob");
    await bob2.expect("4:lobby:alice");
    await bob2.close();
    await alice2.expect("5:lobby:bob");
    assert.equal(alice.pending.length + bob.pending.length + alice2.pending.length, 0);
  } finally {
    await Promise.all([...ws.map((c) => c.close()), ...tcp.map((c) => c.close())]);
    await server.stop();
  }
});

Deno.test("ws: a frame may hold several lines; CRs before LF and blank lines are dropped", async () => {
  const server = await startWsServer({ users: USERS });
  const clients: WsClient[] = [];
  try {
    const alice = await WsClient.connect(server.wsPort);
    clients.push(alice);
    alice.send("0:alice:wonderland\r\n\n2:lobby\r\n1\r");
    await alice.expect("0:1");
    await alice.expect("2:lobby:alice");
    await alice.expect("1:lobby,alice");
    alice.send("3:0:trailing LF is fine\n");
    await alice.expect("3:trailing LF is fine");
    // A binary frame is read as the bytes of lines, like a text frame.
    alice.send(new TextEncoder().encode("3:0:binary\n3:0:frame"));
    await alice.expect("3:binary");
    await alice.expect("3:frame");
    // Message text is opaque bytes: a body that is not UTF-8 reaches a WebSocket peer unchanged,
    // in a binary frame (a text frame could not carry it).
    const raw = await RawWsClient.connect(server.wsPort);
    try {
      await raw.send("0:bob:builder\n2:lobby");
      assert.equal(await raw.next(), "0:2");
      assert.equal(await raw.next(), "2:lobby:alice,bob");
      await alice.expect("4:lobby:bob");
      alice.send(new Uint8Array([...new TextEncoder().encode("3:1:"), 0xff, 0xfe]));
      const frame = await raw.nextFrame();
      assert.equal(frame?.opcode, 2);
      assert.deepEqual([...frame!.payload], [0x33, 0x3a, 0xff, 0xfe]);
      alice.send("3:1:text again");
      const text = await raw.nextFrame();
      assert.equal(text?.opcode, 1);
      assert.equal(new TextDecoder().decode(text!.payload), "3:text again");
    } finally {
      raw.close();
    }
    await alice.expect("5:lobby:bob");
    alice.send("7:nonsense");
    await alice.expect("9:?:malformed");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("ws: a frame longer than --max-line-bytes gets 9:?:too-long and the socket closes", async () => {
  const server = await startWsServer({ users: USERS, args: ["--max-line-bytes", "64"] });
  const clients: WsClient[] = [];
  try {
    const alice = await WsClient.login(server.wsPort, "alice", "wonderland");
    clients.push(alice);
    alice.send("2:lobby");
    await alice.expect("2:lobby:alice");
    alice.send("3:0:" + "a".repeat(60)); // exactly 64 bytes
    await alice.expect("3:" + "a".repeat(60));
    alice.send("3:0:" + "b".repeat(60) + "\n"); // 64 and a trailing LF: still fine
    await alice.expect("3:" + "b".repeat(60));
    alice.send("3:0:" + "c".repeat(61)); // 65 bytes
    await alice.expect("9:?:too-long");
    await alice.expectClosed();

    // Counted in UTF-8 bytes, not characters: 20 three-byte characters are 60 bytes.
    const bob = await WsClient.login(server.wsPort, "bob", "builder");
    clients.push(bob);
    bob.send("2:lobby");
    await bob.expect("2:lobby:bob");
    bob.send("3:0:" + "€".repeat(20));
    await bob.expect("3:" + "€".repeat(20));
    bob.send("3:0:" + "€".repeat(21));
    await bob.expect("9:?:too-long");
    await bob.expectClosed();
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("ws: only the configured origins may upgrade; none configured lets any in", async () => {
  const open = await startWsServer({ users: USERS });
  try {
    const any = await RawWsClient.connect(open.wsPort, { Origin: "https://anyone.example" });
    any.close();
    assert.equal(any.status, 101);
  } finally {
    await open.stop();
  }

  const server = await startWsServer({
    users: USERS,
    args: ["--ws-origin", "https://game.example", "--ws-origin", "http://localhost:8080"],
    env: { PARLEY_WS_ORIGIN: "https://ignored.example" }, // the flags win over the variable
  });
  const statuses: Record<string, number> = {};
  try {
    for (
      const origin of [
        "https://game.example",
        "https://GAME.example:443",
        "http://localhost:8080",
        "https://evil.example",
        "http://game.example",
        "https://ignored.example",
        "null",
        "",
      ]
    ) {
      const raw = await RawWsClient.connect(server.wsPort, origin ? { Origin: origin } : {});
      raw.close();
      statuses[origin || "(none)"] = raw.status;
    }
    assert.deepEqual(statuses, {
      "https://game.example": 101,
      "https://GAME.example:443": 101,
      "http://localhost:8080": 101,
      "https://evil.example": 403,
      "http://game.example": 403,
      "https://ignored.example": 403,
      "null": 403,
      "(none)": 101, // not a browser page: see docs/websocket.md
    });
    // An allowed origin really gets a working session.
    const alice = await WsClient.connect(server.wsPort, { origin: "https://game.example" });
    try {
      alice.send("0:alice:wonderland");
      await alice.expect("0:1");
    } finally {
      await alice.close();
    }
    assert.match(server.log(), /origin-refused .*origin=https:\/\/evil.example/);
  } finally {
    await server.stop();
  }
});

Deno.test("ws: --max-connections counts TCP and WebSocket connections together", async () => {
  const server = await startWsServer({ users: USERS, args: ["--max-connections", "2"] });
  const ws: WsClient[] = [];
  const tcp: TestClient[] = [];
  try {
    tcp.push(await TestClient.login(server.port, "alice", "wonderland"));
    ws.push(await WsClient.login(server.wsPort, "bob", "builder"));
    const third = await WsClient.connect(server.wsPort);
    ws.push(third);
    await third.expect("9:?:server-full");
    await third.expectClosed();
    const fourth = await TestClient.connect(server.port);
    tcp.push(fourth);
    await fourth.expect("9:?:server-full");
    await fourth.expectClosed();
    // A slot frees when the WebSocket goes away, and either transport may take it.
    await ws[0].close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const carol = await WsClient.login(server.wsPort, "carol", "singer");
    ws.push(carol);
  } finally {
    await Promise.all([...ws.map((c) => c.close()), ...tcp.map((c) => c.close())]);
    await server.stop();
  }
});

Deno.test("ws: the login timeout and flood control apply to WebSocket clients", async () => {
  const server = await startWsServer({
    users: USERS,
    args: ["--login-timeout-ms", "300", "--rate-burst", "5", "--rate-per-second", "1"],
  });
  const clients: WsClient[] = [];
  try {
    const idle = await WsClient.connect(server.wsPort);
    clients.push(idle);
    const started = Date.now();
    await idle.expectClosed(3000);
    assert.ok(Date.now() - started >= 250, "closed before the login timeout");

    const alice = await WsClient.login(server.wsPort, "alice", "wonderland"); // 1 token
    clients.push(alice);
    alice.send("2:lobby\n1\n1\n1\n1"); // 5 more lines in one frame: the 6th is one too many
    await alice.expect("2:lobby:alice");
    for (let i = 0; i < 3; i++) await alice.expect("1:lobby,alice");
    await alice.expect("9:1:rate-limited");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("ws: a WebSocket client that stops reading is dropped once its unsent output passes the bound", async () => {
  const server = await startWsServer({
    users: USERS,
    args: ["--max-pending-bytes", "65536", "--rate-burst", "0"],
  });
  const tcp: TestClient[] = [];
  const raw = await RawWsClient.connect(server.wsPort);
  try {
    await raw.send("0:carol:singer\n2:lobby");
    assert.equal(await raw.next(), "0:1");
    assert.equal(await raw.next(), "2:lobby:carol");
    // carol reads nothing from here on.
    const bob = await TestClient.login(server.port, "bob", "builder");
    tcp.push(bob);
    await bob.send("2:lobby");
    await bob.expect("2:lobby:bob,carol");
    const body = "x".repeat(60_000);
    let sent = 0;
    const deadline = Date.now() + 20_000;
    // Kernel buffers take a few megabytes first; then the server's own bound trips.
    while (bob.pending.length === 0 && sent < 2000 && Date.now() < deadline) {
      await bob.send(`3:1:${body}`);
      sent++;
      if (sent % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await bob.expect("5:lobby:carol", 5000);
    assert.match(server.log(), /slow-consumer/);
    // bob carries on.
    await bob.send("1");
    await bob.expect("1:lobby,bob");
  } finally {
    raw.close();
    await Promise.all(tcp.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("ws: wss on the WebSocket port when the TLS flags are given", async () => {
  const temp = await tempDir();
  let server;
  try {
    const { certPath: cert, keyPath: key, pem } = await makeCert(temp.dir);
    server = await startWsServer({
      users: USERS,
      args: ["--tls-cert", cert, "--tls-key", key, "--tls-port", "0"],
    });
    assert.match(server.log(), /listening transport=wss address=/);
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: server.wsPort,
      caCerts: [pem],
    });
    let alice: RawWsClient;
    try {
      alice = await RawWsClient.open(conn, `localhost:${server.wsPort}`);
    } catch (error) {
      conn.close();
      throw error;
    }
    try {
      assert.equal(alice.status, 101);
      await alice.send("0:alice:wonderland");
      assert.equal(await alice.next(), "0:1");
    } finally {
      alice.close();
    }
    // Plain ws on the same port is refused: it is TLS only.
    const plain = await Deno.connect({ hostname: "127.0.0.1", port: server.wsPort });
    try {
      await assert.rejects(RawWsClient.open(plain, "127.0.0.1"));
    } finally {
      try {
        plain.close();
      } catch { /* closed by the failed upgrade */ }
    }
  } finally {
    await server?.stop();
    await temp.remove();
  }
});

Deno.test("ws: --web serves the page, script and style; without it / says to use a WebSocket", async () => {
  const web = await startWsServer({ users: USERS, args: ["--web", "--stamp-sender"] });
  try {
    const base = `http://127.0.0.1:${web.wsPort}`;
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /^text\/html/);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/app.js">/);
    assert.match(html, /name="parley-stamp-sender" content="true"/);
    const script = await fetch(`${base}/app.js`);
    assert.match(script.headers.get("content-type")!, /^text\/javascript/);
    assert.match(await script.text(), /new WebSocket/);
    const style = await fetch(`${base}/style.css`);
    assert.match(style.headers.get("content-type")!, /^text\/css/);
    assert.match(await style.text(), /@media/);
    const missing = await fetch(`${base}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await web.stop();
  }
  const bare = await startWsServer({ users: USERS });
  try {
    const root = await fetch(`http://127.0.0.1:${bare.wsPort}/`);
    assert.equal(root.status, 426);
    await root.body?.cancel();
    const script = await fetch(`http://127.0.0.1:${bare.wsPort}/app.js`);
    assert.equal(script.status, 404);
    await script.body?.cancel();
  } finally {
    await bare.stop();
  }
});

Deno.test("ws: the server shuts down cleanly with WebSocket clients connected", async () => {
  const server = await startWsServer({ users: USERS });
  const alice = await WsClient.login(server.wsPort, "alice", "wonderland");
  try {
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0);
    await alice.expect("0:-1"); // logged out before the socket closed
    await alice.expectClosed();
  } finally {
    await alice.close();
    await server.stop();
  }
});

Deno.test("ws: flags — port, repeatable origins, the variable as a list, --web, --help", () => {
  const serve = (args: string[], env: Record<string, string> = {}): Config => {
    const run = parseInvocation(args, env);
    if (run.kind !== "serve") throw new Error(`expected serve, got ${run.kind}`);
    return run.config;
  };
  const defaults = serve([]);
  assert.equal(defaults.wsPort, -1);
  assert.deepEqual(defaults.wsOrigins, []);
  assert.equal(defaults.web, false);
  const set = serve([
    "--ws-port",
    "0",
    "--web",
    "--ws-origin",
    "https://A.example/",
    "--ws-origin",
    "http://b.example:8080",
  ]);
  assert.equal(set.wsPort, 0);
  assert.equal(set.web, true);
  assert.deepEqual(set.wsOrigins, ["https://a.example", "http://b.example:8080"]);
  const fromEnv = serve([], {
    PARLEY_WS_PORT: "8081",
    PARLEY_WS_ORIGIN: "https://a.example, https://b.example,",
  });
  assert.equal(fromEnv.wsPort, 8081);
  assert.deepEqual(fromEnv.wsOrigins, ["https://a.example", "https://b.example"]);
  assert.throws(() => parseInvocation(["--web"], {}), UsageError);
  assert.throws(() => parseInvocation(["--ws-origin", "game.example"], {}), UsageError);
  assert.throws(() => parseInvocation(["--ws-origin", "https://a.example/path"], {}), UsageError);
  assert.throws(() => parseInvocation(["--ws-port", "65536"], {}), UsageError);
  const help = helpText();
  assert.match(help, /--ws-port/);
  assert.match(
    help,
    /--ws-origin.*repeatable; env: comma-separated\); none given: any origin is allowed/,
  );
  assert.match(help, /--web /);
});

Deno.test("ws: origin rules", () => {
  assert.equal(normalizeOrigin("https://Game.Example:443/"), "https://game.example");
  assert.equal(normalizeOrigin("http://localhost:8080"), "http://localhost:8080");
  assert.equal(normalizeOrigin("file:///tmp/x.html"), null);
  assert.equal(normalizeOrigin("null"), null);
  const list = ["https://game.example"];
  assert.equal(originAllowed("https://game.example", []), true);
  assert.equal(originAllowed("https://other.example", []), true);
  assert.equal(originAllowed(null, list), true);
  assert.equal(originAllowed("https://game.example", list), true);
  assert.equal(originAllowed("https://other.example", list), false);
  assert.equal(originAllowed("null", list), false);
  // The page's own origin passes only when listed (--web-origin): see hostile_origin_test.ts.
});

Deno.test("ws: room messages a TCP client writes at once reach a WebSocket user one frame each", async () => {
  const server = await startWsServer({ users: USERS });
  let alice: WsClient | undefined;
  let bob: TestClient | undefined;
  try {
    alice = await WsClient.login(server.wsPort, "alice", "wonderland");
    alice.send("2:lobby");
    await alice.expect("2:lobby:alice");
    bob = await TestClient.login(server.port, "bob", "builder");
    await bob.send("2:lobby");
    await bob.expect("2:lobby:alice,bob");
    await alice.expect("4:lobby:bob");
    await bob.write("3:1:one\n3:1:two\n3:0:three\n"); // one write: the hub sends runs
    for (const line of ["3:one", "3:two", "3:three"]) await alice.expect(line);
    await bob.expect("3:three");
  } finally {
    await alice?.close();
    await bob?.close();
    await server.stop();
  }
});
