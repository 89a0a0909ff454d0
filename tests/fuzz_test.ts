// Issue 3, the network fuzz test: hostile bytes over real sockets while two honest clients chat.
// Every message of theirs must arrive, exactly once, in order. Bounded (about 15 s), loopback only.
// The property-based tests of the codec and splitter are in codec_property_test.ts.
import assert from "node:assert/strict";
import { startServer, TestClient } from "./helpers.ts";
import { rssKiB, sleep } from "./hardening_support.ts";

const encoder = new TextEncoder();

/** A seeded xorshift generator, so a failing run can be replayed (the seed is printed). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

Deno.test("network fuzz: random bytes, NULs, lone CRs, huge lines, slowloris, abrupt closes, connect storms — two honest clients lose nothing", async () => {
  const seed = Number(Deno.env.get("PARLEY_FUZZ_SEED") ?? Date.now() % 1_000_000);
  const random = rng(seed);
  const server = await startServer({
    users: { alice: "a-pw", bob: "b-pw" },
    args: ["--login-timeout-ms", "3000"],
  });
  const honest: TestClient[] = [];
  const cases: Record<string, number> = {};
  const count = (name: string, n = 1) => cases[name] = (cases[name] ?? 0) + n;
  try {
    const alice = await TestClient.login(server.port, "alice", "a-pw");
    const bob = await TestClient.login(server.port, "bob", "b-pw");
    honest.push(alice, bob);
    await alice.send("2:chat");
    await alice.expect("2:chat:alice");
    await bob.send("2:chat");
    await bob.expect("2:chat:alice,bob");
    await alice.expect("4:chat:bob");

    // The chat: each sends `perClient` messages at about 300 a second (under the 500/s floor).
    const perClient = 3000;
    const chat = async (me: TestClient, tag: string) => {
      for (let i = 0; i < perClient; i += 30) {
        const lines: string[] = [];
        for (let j = i; j < i + 30; j++) lines.push(`3:1:${tag}-${j}\n`);
        await me.write(lines.join(""));
        await sleep(100);
      }
    };
    const receive = async (me: TestClient, tag: string) => {
      for (let expected = 0; expected < perClient;) {
        const line = await me.next(20_000);
        if (line.startsWith("3:")) {
          assert.equal(line, `3:${tag}-${expected}`, `seed ${seed}`);
          expected++;
        } else {
          assert.fail(`unexpected line for an honest client: ${line} (seed ${seed})`);
        }
      }
    };
    const chatting = Promise.all([
      chat(alice, "a"),
      chat(bob, "b"),
      receive(alice, "b"),
      receive(bob, "a"),
    ]);

    const open = async () => await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const closeQuietly = (c: Deno.Conn) => {
      try {
        c.close();
      } catch { /* closed by the server */ }
    };
    /** Writes, reads whatever comes back until EOF or `ms`, and closes. */
    const hit = async (payload: Uint8Array, ms = 300) => {
      const c = await open();
      try {
        await c.write(payload).catch(() => {});
        const buffer = new Uint8Array(64 * 1024);
        const deadline = Date.now() + ms;
        while (Date.now() < deadline) {
          const n = await Promise.race([c.read(buffer).catch(() => null), sleep(50).then(() => 0)]);
          if (n === null) break;
        }
      } finally {
        closeQuietly(c);
      }
    };
    const randomBytes = (n: number) => {
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = Math.floor(random() * 256);
      return bytes;
    };

    const attacks: Promise<void>[] = [];
    // 1. Random bytes, in many connections, some of them starting like real commands.
    attacks.push((async () => {
      for (let i = 0; i < 200; i++) {
        const prefix = ["", "0:", "1:", "2:", "3:0:", "3:2:", "9:"][i % 7];
        const body = randomBytes(1 + Math.floor(random() * 4096));
        await hit(new Uint8Array([...encoder.encode(prefix), ...body, 0x0a]), 30);
        count("random bytes");
      }
    })());
    // 2. NULs, lone CRs, thousands of fields, CR floods and a 1 MB line.
    attacks.push((async () => {
      const shapes = [
        () => new Uint8Array(5000).fill(0),
        () => encoder.encode("0:\0alice\0:\0\n2:\0\r\n3:0:\r\r\r\n\r\n\r"),
        () => encoder.encode("3:2:" + "u:".repeat(20_000) + "x\n"),
        () => encoder.encode(":".repeat(30_000) + "\n"),
        () => encoder.encode("\r".repeat(60_000) + "\n"),
        () => encoder.encode("1:" + "x".repeat(1 << 20) + "\n"), // 1 MB: 9:?:too-long, closed
        () => encoder.encode("\n".repeat(50_000)),
      ];
      for (let i = 0; i < 70; i++) {
        await hit(shapes[i % shapes.length](), 100);
        count(
          [
            "NULs",
            "NULs and lone CRs",
            "20,000 targets",
            "30,000 fields",
            "CR flood",
            "1 MB line",
            "blank lines",
          ][i % shapes.length],
        );
      }
    })());
    // 3. Slowloris: connections that dribble a byte at a time and never finish a line.
    const slow: Deno.Conn[] = [];
    attacks.push((async () => {
      for (let i = 0; i < 50; i++) slow.push(await open());
      count("slowloris connections", slow.length);
      for (let round = 0; round < 20; round++) {
        await Promise.all(slow.map((c) => c.write(encoder.encode("x")).catch(() => 0)));
        await sleep(100);
      }
    })());
    // 4. Half lines, then an abrupt close (and a reset-ish close mid-write).
    attacks.push((async () => {
      for (let i = 0; i < 300; i++) {
        const c = await open();
        await c.write(encoder.encode(["0:alice:a-", "2:cha", "3:1:half a mess", "3:2:bob"][i % 4]))
          .catch(() => {});
        closeQuietly(c);
        count("half line then close");
      }
    })());
    // 5. Connect storms: thousands of connects and disconnects, 100 at a time.
    attacks.push((async () => {
      for (let i = 0; i < 30; i++) {
        const batch = await Promise.all(Array.from({ length: 100 }, () => open()));
        batch.forEach(closeQuietly);
        count("connect and disconnect", batch.length);
      }
    })());
    // 6. Garbage after a valid login attempt and rate-limit floods from an unauthenticated peer.
    attacks.push((async () => {
      for (let i = 0; i < 10; i++) {
        await hit(encoder.encode("1\n".repeat(5000) + "2:x\n".repeat(1000)), 200);
        count("unauthenticated flood");
      }
    })());

    await Promise.all(attacks);
    await chatting; // every message of both honest clients, in order, nothing else
    // The slowloris peers are closed by the login timeout (3 s here), not kept forever.
    const slowClosed = await Promise.all(slow.map(async (c) => {
      const buffer = new Uint8Array(64);
      const deadline = Date.now() + 6000;
      while (Date.now() < deadline) {
        const n = await Promise.race([
          c.read(buffer).catch(() => null),
          sleep(6000).then(() => -1),
        ]);
        if (n === null) return true;
        if (n === -1) return false;
      }
      return false;
    }));
    slow.forEach(closeQuietly);
    assert.ok(slowClosed.every(Boolean), "a slowloris connection outlived the login timeout");
    // The honest pair still works after the storm.
    await alice.send("3:1:after");
    await bob.expect("3:after");
    const rss = rssKiB(server.process.pid);
    const total = Object.values(cases).reduce((a, b) => a + b, 0);
    console.log(
      `fuzz (seed ${seed}): ${total} hostile cases (${JSON.stringify(cases)}); ` +
        `honest: ${2 * perClient} messages, all delivered in order; server RSS after: ${rss} KiB`,
    );
    assert.ok(rss < 512 * 1024, `server RSS ${rss} KiB after the fuzz run`);
  } finally {
    await Promise.all(honest.map((c) => c.close()));
    const status = await server.stop();
    assert.equal(status.code, 0, "the server did not stop cleanly after the fuzz run");
  }
});
