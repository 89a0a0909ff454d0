// End to end over TCP: the three send modes, not-online reporting, target limits, opaque bodies,
// per-sender order and --stamp-sender (docs/protocol.md, Messages, Ordering).
import assert from "node:assert/strict";
import { bytes, e2eTest, withServer } from "./e2e_support.ts";

e2eTest(
  "3:0 goes to everyone in my room, me included; 3:1 to everyone but me; other rooms hear nothing",
  async () => {
    await withServer({}, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      const carol = await s.inRoom("carol", "den", "carol");
      const dave = await s.login("dave"); // in no room

      await alice.ask("3:0:to all", "3:to all");
      await bob.expect("3:to all");
      await alice.send("3:1:to others");
      await bob.expect("3:to others");
      await carol.ask("3:0:den only", "3:den only");
      await Promise.all([alice, bob, carol, dave].map((c) => c.expectNothing(100)));
    });
  },
);

e2eTest("an empty message is allowed in every mode: 3:0: delivers 3:", async () => {
  await withServer({}, async (s) => {
    const [alice, bob] = await s.room("lobby", "alice", "bob");
    await alice.ask("3:0:", "3:");
    await bob.expect("3:");
    await alice.send("3:1:");
    await bob.expect("3:");
    await alice.send("3:2:bob:");
    await bob.expect("3:");
    await alice.expectNothing(50);
  });
});

e2eTest("3:0 and 3:1 outside a room get 9:3:not-in-room", async () => {
  await withServer({}, async (s) => {
    const alice = await s.login("alice");
    const bob = await s.login("bob");
    for (const line of ["3:0:hi", "3:1:hi", "3:0:"]) {
      await alice.ask(line, "9:3:not-in-room");
    }
    await bob.expectNothing(50);
  });
});

e2eTest(
  "3:2 reaches the listed users wherever they are; the message is the text after the last ':'",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.inRoom("alice", "lobby", "alice");
      const bob = await s.inRoom("bob", "den", "bob");
      const carol = await s.login("carol"); // in no room
      const dave = await s.inRoom("dave", "lobby", "alice,dave");
      await alice.expect("4:lobby:dave");
      await alice.send("3:2:bob:carol:aGk=");
      await bob.expect("3:aGk=");
      await carol.expect("3:aGk=");
      await Promise.all([alice, dave].map((c) => c.expectNothing(100)));
    });
  },
);

e2eTest(
  "3:2: duplicates get one copy, the sender gets one if listed, the offline and the unknown are reported alike, in listed order, once",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.login("alice");
      const bob = await s.login("bob");
      // dave exists but is offline; nobody and zz never existed.
      await alice.send("3:2:nobody:bob:dave:bob:alice:nobody:zz:dave:hi");
      await bob.expect("3:hi");
      await alice.expect("3:hi");
      await alice.expect("9:3:not-online:nobody,dave,zz");
      await Promise.all([alice, bob].map((c) => c.expectNothing(100)));
      // All online: no 9: line at all.
      await alice.send("3:2:bob:bob:x");
      await bob.expect("3:x");
      await alice.expectNothing(100);
    });
  },
);

e2eTest("3:2 with no targets or an empty target is 9:3:malformed and sends nothing", async () => {
  await withServer({}, async (s) => {
    const [alice, bob] = await s.room("lobby", "alice", "bob");
    for (const line of ["3:2::hi", "3:2:hi", "3:2:", "3:2:bob::hi", "3:2::", "3:2:bob:::hi"]) {
      await alice.send(line);
      await alice.expect("9:3:malformed", 2000).catch((error) => {
        throw new Error(`${line}: ${error.message}`);
      });
    }
    await bob.expectNothing(100);
  });
});

function names(count: number, prefix = "u"): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

e2eTest(
  "3:2 with more than 100 distinct targets gets 9:3:too-many-targets and nothing is sent",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.login("alice");
      const bob = await s.login("bob");
      await alice.ask(`3:2:bob:${names(100).join(":")}:too many`, "9:3:too-many-targets");
      await bob.expectNothing(100);
      // 100 distinct (and duplicates on top) is fine.
      const ninetyNine = names(99);
      await alice.send(`3:2:bob:${ninetyNine.join(":")}:bob:u0:just enough`);
      await bob.expect("3:just enough");
      await alice.expect(`9:3:not-online:${ninetyNine.join(",")}`);
    });
  },
);

e2eTest(
  "--max-targets: past it, 9:3:too-many-targets and nothing sent; duplicates count once",
  async () => {
    await withServer({ args: ["--max-targets", "3"] }, async (s) => {
      const alice = await s.login("alice");
      const bob = await s.login("bob");
      const carol = await s.login("carol");
      await alice.ask("3:2:bob:carol:dave:zz:hi", "9:3:too-many-targets");
      await Promise.all([bob, carol].map((c) => c.expectNothing(100)));
      await alice.send("3:2:bob:carol:dave:bob:carol:dave:hi");
      await bob.expect("3:hi");
      await carol.expect("3:hi");
      await alice.expect("9:3:not-online:dave");
    });
  },
);

e2eTest(
  "message bodies are opaque: ':', NUL, CR inside, non-UTF-8 and spaces arrive byte-identical",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.connectRaw();
      const bob = await s.connectRaw();
      for (const [client, user] of [[alice, "alice:wonderland"], [bob, "bob:builder"]] as const) {
        await client.write(`0:${user}\n2:lobby\n`);
        assert.match(new TextDecoder().decode(await client.nextLine()), /^0:\d+$/);
        assert.match(new TextDecoder().decode(await client.nextLine()), /^2:lobby:/);
      }
      assert.equal(new TextDecoder().decode(await alice.nextLine()), "4:lobby:bob");

      const body = bytes(" a:b::c ", [0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, 0x0d, 0x09, 0x01], "é  ");
      await alice.write(bytes("3:1:", body, "\n"));
      assert.deepEqual(await bob.nextLine(), bytes("3:", body));
      await alice.write(bytes("3:0:", body, "\r\n")); // only the CR just before the LF is dropped
      assert.deepEqual(await alice.nextLine(), bytes("3:", body));
      assert.deepEqual(await bob.nextLine(), bytes("3:", body));
      await alice.write(bytes("3:1:x", [0x0d, 0x0d], "\r\n"));
      assert.deepEqual(await bob.nextLine(), bytes("3:x", [0x0d, 0x0d]));
      // 3:2: the body is after the last ':', so it holds anything else.
      const direct = bytes([0x00, 0xff, 0x0d], " b a s e 6 4 = ", [0xe2, 0x82]);
      await bob.write(bytes("3:2:alice:", direct, "\n"));
      assert.deepEqual(await alice.nextLine(), bytes("3:", direct));
    });
  },
);

e2eTest(
  "per-sender order: 2,000 messages from one sender arrive in order (default flood limits)",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.login("alice");
      const bob = await s.inRoom("bob", "lobby", "bob");
      const count = 2000;
      // One login line plus 2,000 messages: within the default burst of 2,000 lines (the login's
      // token is back before the burst starts). Sent back to back in one write.
      let text = "";
      for (let i = 0; i < count; i++) text += `3:2:bob:m${i}\n`;
      await alice.write(text);
      for (let i = 0; i < count; i++) {
        const line = await bob.next();
        if (line !== `3:m${i}`) throw new Error(`message ${i}: got ${JSON.stringify(line)}`);
      }
      await alice.expectNothing(100); // no rate-limited replies
      await bob.expectNothing(0);
    });
  },
);

e2eTest("per-sender order: room messages in order to every member", async () => {
  await withServer({ args: ["--rate-burst", "0"] }, async (s) => {
    const [alice, bob, carol] = await s.room("lobby", "alice", "bob", "carol");
    const count = 3000;
    let text = "";
    for (let i = 0; i < count; i++) text += `3:1:${i}\n`;
    await alice.write(text);
    for (const member of [bob, carol]) {
      for (let i = 0; i < count; i++) {
        const line = await member.next();
        if (line !== `3:${i}`) throw new Error(`message ${i}: got ${JSON.stringify(line)}`);
      }
    }
    await alice.expectNothing(50);
  });
});

e2eTest("--stamp-sender: messages arrive as 3:<sender>:<message> in every mode", async () => {
  await withServer({ args: ["--stamp-sender"] }, async (s) => {
    const [alice, bob] = await s.room("lobby", "alice", "bob");
    await alice.ask("3:0:all:of:us", "3:alice:all:of:us");
    await bob.expect("3:alice:all:of:us");
    await bob.send("3:1:");
    await alice.expect("3:bob:");
    await alice.send("3:2:bob:aGk=");
    await bob.expect("3:alice:aGk=");
    await bob.expectNothing(50);
  });
});

e2eTest("without --stamp-sender, messages carry no sender", async () => {
  await withServer({}, async (s) => {
    const alice = await s.login("alice");
    const bob = await s.login("bob");
    await alice.send("3:2:bob:hi");
    await bob.expect("3:hi");
  });
});
