// End to end over TCP: lines, CRLF, blank lines, the line limit, bytes left at close, unreadable
// and malformed lines, flood control and the connection cap (docs/protocol.md, Framing, Errors,
// Flood control and limits).
import assert from "node:assert/strict";
import { e2eTest, sessionId, USERS, withServer } from "./e2e_support.ts";

e2eTest("unknown codes get 9:?:malformed, before and after a login", async () => {
  await withServer({}, async (s) => {
    const anon = await s.connect();
    const alice = await s.login("alice");
    const lines = ["4", "4:x", "9:3:malformed", "x", "12", "01", "-1", " 1", "1 ", ":", "a:b", "é"];
    for (const client of [anon, alice]) {
      for (const line of lines) {
        await client.send(line);
        const got = await client.next();
        assert.equal(got, "9:?:malformed", `for ${JSON.stringify(line)}`);
      }
    }
    // The line was refused, not the connection: both carry on.
    await alice.ask("1", "1:");
    await anon.ask("1", "0:-1");
  });
});

e2eTest("a known code with wrong fields gets 9:<code>:malformed", async () => {
  await withServer({}, async (s) => {
    const alice = await s.inRoom("alice", "lobby", "alice");
    const cases: [string, string][] = [
      ["2", "9:2:malformed"],
      ["2:lobby:pw:extra", "9:2:malformed"],
      ["3", "9:3:malformed"],
      ["3:", "9:3:malformed"],
      ["3:0", "9:3:malformed"],
      ["3:1", "9:3:malformed"],
      ["3:3:hi", "9:3:malformed"],
      ["3:01:hi", "9:3:malformed"],
      ["3:x:hi", "9:3:malformed"],
      ["3:2:hi", "9:3:malformed"],
      ["0:alice", "0:-1"], // 0: lines answer 0:-1 (and end the session)
    ];
    for (const [line, reply] of cases) {
      await alice.send(line);
      assert.equal(await alice.next(), reply, `for ${JSON.stringify(line)}`);
    }
  });
});

e2eTest("blank lines are ignored (LF and CRLF alike), before and after a login", async () => {
  await withServer({}, async (s) => {
    const client = await s.connect();
    await client.write("\n\r\n\n");
    await client.expectNothing(100);
    await client.write(`\n0:alice:${USERS.alice}\n\n\r\n1\n\n`);
    sessionId(await client.next());
    await client.expect("1:");
    await client.expectNothing(100);
  });
});

e2eTest("CRLF lines work (nc -C) and the CR is not part of a field or a body", async () => {
  await withServer({}, async (s) => {
    const alice = await s.connect();
    const bob = await s.login("bob");
    await alice.write(`0:alice:${USERS.alice}\r\n`);
    sessionId(await alice.next());
    await alice.write("2:vault:pw\r\n");
    await alice.expect("2:vault:alice");
    await bob.send("2:vault:pw"); // the room's password has no CR
    await bob.expect("2:vault:alice,bob");
    await alice.expect("4:vault:bob");
    await alice.write("3:1:hello\r\n3:2:bob:direct\r\n1\r\n");
    await bob.expect("3:hello");
    await bob.expect("3:direct");
    await alice.expect("1:");
    await alice.write("2:lobby\r\n");
    await alice.expect("2:lobby:alice");
    await bob.expect("5:vault:alice");
    await alice.write("3:0:\r\n");
    await alice.expect("3:");
  });
});

e2eTest("bytes after the last LF when the peer closes are ignored", async () => {
  await withServer({}, async (s) => {
    const [alice, bob] = await s.room("lobby", "alice", "bob");
    await bob.write("3:1:complete\n3:1:partial");
    await (bob.conn as Deno.TcpConn).closeWrite();
    await alice.expect("3:complete");
    await alice.expect("5:lobby:bob");
    await alice.expectNothing(100);
  });
});

const LIMIT = ["--max-line-bytes", "1024"];

e2eTest(
  "line limit: a line of exactly the limit is fine, CR counted; one byte more gets 9:?:too-long and a close",
  async () => {
    await withServer({ args: LIMIT }, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      const fill = (n: number) => "x".repeat(n);
      // 1,024 bytes before the LF: "3:1:" and 1,020 bytes of body.
      await alice.send(`3:1:${fill(1020)}`);
      await bob.expect(`3:${fill(1020)}`);
      // 1,024 bytes before the LF, a CR included.
      await alice.send(`3:1:${fill(1019)}\r`);
      await bob.expect(`3:${fill(1019)}`);
      // 1,025 bytes before the LF because of the CR: too long.
      await alice.ask(`3:1:${fill(1020)}\r`, "9:?:too-long");
      await alice.expectClosed();
      await bob.expect("5:lobby:alice");
      await bob.expectNothing(50);
    });
  },
);

e2eTest(
  "line limit: 1,025 bytes with no LF at all get 9:?:too-long and a close; 1,024 wait",
  async () => {
    await withServer({ args: LIMIT }, async (s) => {
      const waits = await s.login("alice");
      await waits.write("3:2:alice:" + "y".repeat(1014)); // 1,024 bytes, no LF
      await waits.expectNothing(200);
      assert.equal(waits.closed, false);
      await waits.write("\n"); // completes a line of exactly the limit
      await waits.expect(`3:${"y".repeat(1014)}`);

      const anon = await s.connect(); // before a login too, in one write
      await anon.write("z".repeat(1025));
      await anon.expect("9:?:too-long");
      await anon.expectClosed();

      const pieces = await s.login("bob"); // across several writes
      await pieces.write("3:0:" + "z".repeat(600));
      await pieces.expectNothing(100);
      await pieces.write("z".repeat(421));
      await pieces.expect("9:?:too-long");
      await pieces.expectClosed();
    });
  },
);

e2eTest("line limit: the default is 65,536 bytes", async () => {
  await withServer({}, async (s) => {
    const alice = await s.login("alice");
    const body = "b".repeat(65536 - "3:2:alice:".length);
    await alice.ask(`3:2:alice:${body}`, `3:${body}`);
    await alice.ask(`3:2:alice:${body}b`, "9:?:too-long");
    await alice.expectClosed();
  });
});

e2eTest("flood control: past the burst, lines get 9:<code>:rate-limited", async () => {
  await withServer({ args: ["--rate-burst", "5", "--rate-per-second", "1"] }, async (s) => {
    const alice = await s.login("alice"); // one line
    await alice.write("1\n1\n1\n1\n1\n3:0:x\n7\n");
    for (let i = 0; i < 4; i++) await alice.expect("1:");
    await alice.expect("9:1:rate-limited");
    await alice.expect("9:3:rate-limited");
    await alice.expect("9:?:rate-limited");
  });
});

e2eTest("--max-connections: one more connection gets 9:?:server-full and is closed", async () => {
  await withServer({ args: ["--max-connections", "1"] }, async (s) => {
    const alice = await s.login("alice");
    const extra = await s.connect();
    await extra.expect("9:?:server-full");
    await extra.expectClosed();
    await alice.ask("1", "1:");
  });
});
