// The operator's side: /metrics and /healthz, JSON logs, and --backup against a live server.
import assert from "node:assert/strict";
import { ParleyClient } from "../lib/client/client.ts";
import { runCli, startServer, TestClient } from "./helpers.ts";

/** The metrics port the server logged (the line may come just after the "listening" ones). */
async function metricsPort(log: () => string): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const match = /metrics-listening address=127\.0\.0\.1:(\d+)/.exec(log());
    if (match) return Number(match[1]);
    if (Date.now() > deadline) throw new Error(`no metrics address in the log:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function value(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  if (!match) throw new Error(`${name} missing from:\n${text}`);
  return Number(match[1]);
}

Deno.test("metrics: off by default; /metrics and /healthz on 127.0.0.1 when asked", async () => {
  const plain = await startServer();
  try {
    assert.doesNotMatch(plain.log(), /metrics-listening/);
  } finally {
    await plain.stop();
  }

  const server = await startServer({
    users: { alice: "wonderland", bob: "builder" },
    args: ["--metrics-port", "0", "--rate-burst", "5", "--rate-per-second", "1"],
  });
  const clients: ParleyClient[] = [];
  try {
    const port = await metricsPort(server.log);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "ok\n");
    const missing = await fetch(`http://127.0.0.1:${port}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();

    const alice = await ParleyClient.connect({ port: server.port });
    const bob = await ParleyClient.connect({ port: server.port });
    clients.push(alice, bob);
    await assert.rejects(alice.login("alice", "wrong"));
    await alice.login("alice", "wonderland");
    await bob.login("bob", "builder");
    await alice.join("lobby");
    await bob.join("lobby");
    await alice.say("hello", { echo: true }); // alice: 4 lines, within the burst of 5
    const flood = await TestClient.connect(server.port);
    for (let i = 0; i < 8; i++) await flood.send("1"); // past the burst of 5: rate-limited
    for (let i = 0; i < 5; i++) await flood.expect("0:-1");
    await flood.expect("9:1:rate-limited");
    await flood.close();
    await bob.nextEvent(2000);

    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.equal(value(text, "parley_sessions"), 2);
    assert.equal(value(text, "parley_rooms"), 1);
    assert.ok(value(text, "parley_connections") >= 2);
    assert.equal(value(text, "parley_connections_accepted_total"), 3);
    assert.equal(value(text, "parley_failed_logins_total"), 1);
    assert.equal(value(text, "parley_deliveries_total"), 2); // alice and bob got "3:hello"
    assert.ok(value(text, "parley_rate_limited_total") >= 1);
    assert.ok(value(text, "parley_lines_in_total") >= 12);
    assert.ok(value(text, "parley_bytes_in_total") > 50);
    assert.ok(value(text, "parley_bytes_out_total") > 30);
    assert.equal(value(text, "parley_slow_consumer_disconnects_total"), 0);
    assert.ok(value(text, "parley_event_loop_lag_seconds") >= 0);
    assert.match(text, /# TYPE parley_deliveries_total counter/);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("logs: --log-format json writes one JSON object a line", async () => {
  // startServer waits for text-format "listening" lines, so this reads a run of its own.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../main.ts", import.meta.url).pathname,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--db",
      ":memory:",
      "--log-format",
      "json",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const deadline = Date.now() + 10_000;
    while (!log.includes('"event":"listening"') && Date.now() < deadline) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      log += chunk;
    }
    // Signal handlers are installed just after the listeners: give them a moment.
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill("SIGTERM");
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      log += chunk;
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  }
  const lines = log.trim().split("\n").map((line) => JSON.parse(line));
  const events = lines.map((line) => line.event);
  assert.ok(events.includes("starting") && events.includes("listening"), log);
  assert.ok(events.includes("stopped"), log);
  const listening = lines.find((line) => line.event === "listening");
  assert.equal(listening.level, "info");
  assert.equal(listening.transport, "tcp");
  assert.match(listening.time, /^\d{4}-\d\d-\d\dT/);
});

Deno.test("backup: a consistent copy while the server runs and writes", async () => {
  const server = await startServer({ users: { alice: "wonderland" } });
  const out = server.db.replace(/parley\.db$/, "backup.db");
  const alice = await ParleyClient.connect({ port: server.port });
  try {
    await alice.login("alice", "wonderland");
    for (let i = 0; i < 20; i++) await alice.join(`room-${i}`); // rooms are written to the db
    const writing = (async () => {
      for (let i = 20; i < 60; i++) await alice.join(`room-${i}`);
    })();
    const result = await runCli(["--db", server.db, "--backup", out]);
    await writing;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^backed up .* \(1 users, \d+ rooms\)$/m);

    const users = await runCli(["--db", out, "--list-users"]);
    assert.equal(users.stdout, "alice\n");
    const rooms = (await runCli(["--db", out, "--list-rooms"])).stdout.trim().split("\n");
    assert.ok(rooms.length >= 20 && rooms.length <= 60, `${rooms.length} rooms`);
    const copied = Number(/(\d+) rooms/.exec(result.stdout)![1]);
    assert.equal(rooms.length, copied);

    const again = await runCli(["--db", server.db, "--backup", out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /the file exists/);
    const none = await runCli(["--db", `${out}.missing`, "--backup", `${out}.2`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no database at/);
  } finally {
    await alice.close();
    await server.stop();
  }
});

Deno.test("readyz: 200 while serving; 503 draining from the SIGTERM until the node is gone", async () => {
  const server = await startServer({ args: ["--metrics-port", "0", "--drain-ms", "2000"] });
  const clients: TestClient[] = [];
  try {
    const base = `http://127.0.0.1:${await metricsPort(server.log)}`;
    const ready = await fetch(`${base}/readyz`);
    assert.deepEqual([ready.status, await ready.text()], [200, "ready\n"]);
    // Connections to drain a batch at a time over 2 s: the node stays up meanwhile.
    for (let i = 0; i < 4; i++) clients.push(await TestClient.connect(server.port));
    server.process.kill("SIGTERM");
    for (let i = 0;; i++) {
      const answer = await fetch(`${base}/readyz`).then(
        async (r) => [r.status, await r.text()] as const,
        (error) => [0, String(error)] as const,
      );
      if (answer[0] === 503) {
        assert.equal(answer[1], "not ready: draining\n");
        break;
      }
      assert.equal(answer[0], 200, `/readyz during the drain: ${answer[1]}`);
      assert.ok(i < 100, "/readyz still 200 two seconds after SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});
