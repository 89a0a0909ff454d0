// Issue 3, limits: slow consumers, flood control, login throttling, max connections, keepalive.
// Each test starts the real server and fails when the limit it is about stops holding.
import assert from "node:assert/strict";
import { startServer, TestClient } from "./helpers.ts";
import { connectFrom, rssKiB, sleep, tcpTimer, waitFor } from "./hardening_support.ts";

async function closeAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

Deno.test("slow consumer: a client that never reads is dropped and logged; the others get everything, fast, and memory stays bounded", async () => {
  // Defaults (--max-pending-bytes 4 MiB, burst 2,000) but for the byte budget, which would hold
  // one sender to 512 KiB/s: this test is about many senders' worth of output (hostile_bytes_test).
  const server = await startServer({
    users: { sleepy: "pw", fast: "pw", sender: "pw", other: "pw", probe: "pw" },
    args: ["--rate-burst-bytes", "0"],
  });
  const clients: TestClient[] = [];
  let sleepy: Deno.Conn | undefined;
  try {
    // sleepy logs in and joins, then never reads a byte: the kernel buffers fill, then the
    // server's outbound queue does.
    sleepy = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await sleepy.write(new TextEncoder().encode("0:sleepy:pw\n2:room\n"));
    const fast = await TestClient.login(server.port, "fast", "pw");
    const sender = await TestClient.login(server.port, "sender", "pw");
    const other = await TestClient.login(server.port, "other", "pw");
    clients.push(fast, sender, other);
    for (let i = 0; i < 50; i++) {
      const probe = await TestClient.login(server.port, "probe", "pw");
      await probe.send("1");
      const list = await probe.next();
      await probe.close();
      if (list === "1:room,sleepy") break;
      await sleep(20);
    }
    await fast.send("2:room");
    await fast.expect("2:room:fast,sleepy");
    await sender.send("2:room");
    await sender.expect("2:room:fast,sender,sleepy");
    await fast.expect("4:room:sender");
    const rssBefore = rssKiB(server.process.pid);

    const messages = 1500;
    const body = "x".repeat(32 * 1024); // 1,500 × 32 KiB ≈ 47 MiB toward the sleepy client
    const started = performance.now();
    // 50 messages (1.6 MiB) every 20 ms: far more than sleepy's bound in total, but paced so
    // that fast, a reader in a test process sharing two cores, keeps up. Settles to the write's
    // error, if any, so a failure below is not hidden by this promise.
    const sending = (async () => {
      for (let i = 0; i < messages; i += 50) {
        const batch: string[] = [];
        for (let j = i; j < i + 50; j++) batch.push(`3:1:${j}:${body}\n`);
        await sender.write(batch.join(""));
        await sleep(20);
      }
    })().then(() => null, (error) => error);
    // Meanwhile a client outside the room is answered at once.
    const pingStart = performance.now();
    await other.send("1");
    assert.match(await other.next(), /^1:/);
    const pingMs = performance.now() - pingStart;
    let sleepyLeft = false; // 5:room:sleepy comes in the middle of the stream, when it is dropped
    for (let i = 0; i < messages; i++) {
      const line = await fast.next(10_000);
      if (line === "5:room:sleepy" && !sleepyLeft) {
        sleepyLeft = true;
        i--;
        continue;
      }
      assert.equal(line.slice(0, line.indexOf(":", 2) + 1), `3:${i}:`, `message ${i} out of order`);
      assert.equal(line.length, `3:${i}:`.length + body.length);
    }
    assert.equal(await sending, null);
    const elapsed = performance.now() - started;
    await waitFor(() => /slow-consumer/.test(server.log()), "the slow-consumer log line");
    const rssAfter = rssKiB(server.process.pid);
    assert.match(server.log(), /warn slow-consumer address=127\.0\.0\.1 pending=\d+/);
    // The room lost sleepy (5:room:sleepy); fast and sender carry on.
    assert.ok(sleepyLeft, "sleepy was never dropped");
    await sender.expect("5:room:sleepy");
    await sender.send("3:1:still here");
    await fast.expect("3:still here");
    console.log(
      `slow consumer: ${messages} × 32 KiB to fast in ${elapsed.toFixed(0)} ms, ` +
        `ping meanwhile ${pingMs.toFixed(0)} ms, server RSS ${rssBefore} → ${rssAfter} KiB`,
    );
    assert.ok(elapsed < 20_000, `the fast reader was slowed: ${elapsed} ms`);
    assert.ok(pingMs < 2000, `a client outside the room waited ${pingMs} ms`);
    // 47 MiB went through; the server kept at most the 4 MiB bound for sleepy plus batches.
    assert.ok(rssAfter - rssBefore < 64 * 1024, `RSS grew from ${rssBefore} to ${rssAfter} KiB`);
  } finally {
    try {
      sleepy?.close();
    } catch { /* the server closed it */ }
    await closeAll(clients);
    await server.stop();
  }
});

Deno.test("flood control: 2,000 lines back to back are all served; beyond gets 9:<code>:rate-limited; sustained abuse closes", async () => {
  const server = await startServer({ users: { alice: "pw", bob: "pw" } });
  const clients: TestClient[] = [];
  try {
    const alice = await TestClient.login(server.port, "alice", "pw");
    clients.push(alice);
    await alice.send("2:solo");
    await alice.expect("2:solo:alice");
    await sleep(50); // the two lines above are refilled (500 a second)

    // Exactly the documented burst: 1,999 messages and a room list, in one write.
    await alice.write("3:1:x\n".repeat(1999) + "1\n");
    await alice.expect("1:solo,alice", 10_000);
    await alice.expectNothing(300); // not one rate-limited line

    // Far beyond the burst at once: the excess is refused line by line, the connection stays.
    await sleep(4100); // the bucket refills completely (2,000 at 500 a second)
    await alice.write("3:1:x\n".repeat(2500) + "2:solo\n7\n");
    let limited = 0;
    const seen = new Set<string>();
    for (;;) {
      const line = await alice.next(5000);
      if (line === "9:?:rate-limited") break; // the last line, "7", also refused
      seen.add(line);
      if (line.endsWith(":rate-limited")) limited++;
    }
    assert.deepEqual([...seen].sort(), ["9:2:rate-limited", "9:3:rate-limited"]);
    assert.ok(limited >= 400 && limited <= 502, `rate-limited ${limited} of 2,502 lines`);
    await sleep(500); // 250 tokens back
    await alice.send("1");
    await alice.expect("1:solo,alice");

    // Sustained abuse: 20,000 lines as fast as the socket takes them. The connection is closed.
    const flooder = await TestClient.login(server.port, "bob", "pw");
    clients.push(flooder);
    await flooder.write("3:0:x\n".repeat(20_000)).catch(() => {}); // the server may hang up first
    await flooder.expectClosed(10_000);
    assert.match(server.log(), /closing address=127\.0\.0\.1 why=flooding/);
    // The abuser's closing did not touch alice.
    await alice.send("1");
    await alice.expect("1:solo,alice");
  } finally {
    await closeAll(clients);
    await server.stop();
  }
});

Deno.test("login throttling: failures get slower then close the connection; the same address stays slowed, another address is not", async () => {
  const server = await startServer({
    users: { alice: "pw" },
    args: ["--max-login-failures", "6"], // default 10; 6 keeps the test short (delays 250, 500)
  });
  const clients: TestClient[] = [];
  try {
    const attacker = await TestClient.connect(server.port);
    clients.push(attacker);
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const sent = performance.now();
      await attacker.send("0:alice:guess" + i);
      await attacker.expect("0:-1", 10_000);
      times.push(Math.round(performance.now() - sent));
    }
    await attacker.expectClosed(3000);
    assert.ok(times.slice(0, 3).every((t) => t < 200), `free failures were slow: ${times}`);
    assert.ok(times[4] >= 240, `the 5th failure was not slowed: ${times}`);
    assert.ok(times[5] >= 490, `the 6th failure was not slowed more: ${times}`);

    // A new connection from the same address (127.0.0.1) is slowed from its first login:
    // six failures on record, decaying with a one-minute half-life (just under 6 now), so
    // 250 × 2^(5-4) = 500 ms.
    const same = await TestClient.connect(server.port);
    clients.push(same);
    let sent = performance.now();
    await same.send("0:alice:pw");
    assert.match(await same.next(10_000), /^0:[1-9]\d*$/);
    const sameMs = performance.now() - sent;

    // Another address (127.0.0.2, bound with node:net) logs in at full speed, and its own
    // failures are free.
    const elsewhere = TestClient.fromConn(await connectFrom(server.port, "127.0.0.2"));
    clients.push(elsewhere);
    sent = performance.now();
    await elsewhere.send("0:alice:wrong");
    await elsewhere.expect("0:-1");
    await elsewhere.send("0:alice:pw");
    assert.match(await elsewhere.next(), /^0:[1-9]\d*$/);
    const elsewhereMs = performance.now() - sent;
    assert.match(
      server.log(),
      /login-failed user=alice address=127\.0\.0\.2 transport=tcp failures=1/,
    );
    console.log(
      `login throttling: replies ${times.join(", ")} ms then closed; same address ` +
        `${sameMs.toFixed(0)} ms, other address ${elsewhereMs.toFixed(0)} ms`,
    );
    assert.ok(sameMs >= 450, `the same address was not slowed: ${sameMs} ms`);
    assert.ok(elsewhereMs < 300, `another address was slowed: ${elsewhereMs} ms`);
  } finally {
    await closeAll(clients);
    await server.stop();
  }
});

Deno.test("max connections: the server holds the limit, the next gets 9:?:server-full and is closed, a freed slot is reused", async () => {
  const limit = 500;
  const server = await startServer({ args: ["--max-connections", String(limit)] });
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < limit; i += 100) {
      clients.push(
        ...await Promise.all(
          Array.from({ length: Math.min(100, limit - i) }, () => TestClient.connect(server.port)),
        ),
      );
    }
    // Every one of them is served (a line before a login gets 0:-1).
    await Promise.all(clients.map((c) => c.send("1")));
    for (const c of clients) await c.expect("0:-1");
    const extra = await TestClient.connect(server.port);
    await extra.expect("9:?:server-full");
    await extra.expectClosed();
    await extra.close();
    assert.match(server.log(), /warn server-full address=127\.0\.0\.1/);

    await clients.pop()!.close();
    // The slot frees once the server sees the close: retry briefly.
    let again: TestClient | undefined;
    for (let tries = 0; again === undefined && tries < 50; tries++) {
      const c = await TestClient.connect(server.port);
      await c.send("1");
      const line = await c.next();
      if (line === "0:-1") again = c;
      else {
        await c.close();
        await sleep(20);
      }
    }
    assert.ok(again, "a freed slot was never reused");
    clients.push(again);
    console.log(`max connections: held ${limit}, refused the next, reused a freed slot`);
  } finally {
    await closeAll(clients);
    await server.stop();
  }
});

Deno.test("TCP keepalive is on for every accepted TCP connection (the kernel's keepalive timer is armed)", async () => {
  const server = await startServer();
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 3; i++) clients.push(await TestClient.connect(server.port));
    await Promise.all(clients.map((c) => c.send("1")));
    for (const c of clients) await c.expect("0:-1");
    for (const c of clients) {
      const clientPort = (c.conn.localAddr as Deno.NetAddr).port;
      // The server's end: local = the server's port, remote = the client's.
      assert.equal(tcpTimer(server.port, clientPort), 2, "no keepalive timer on the server side");
      // The test client does not set keepalive: the check can tell the difference.
      assert.equal(tcpTimer(clientPort, server.port), 0);
    }
  } finally {
    await closeAll(clients);
    await server.stop();
  }
});
