// End to end over TCP: the room list, join-or-create, presence, room passwords, room names, the
// room cap, rooms that outlive a restart, and an operator removing a room (docs/protocol.md, Rooms).
import assert from "node:assert/strict";
import { runCli } from "./helpers.ts";
import { bytes, e2eTest, freshDatabase, USERS, withServer } from "./e2e_support.ts";

e2eTest("room list: 1: with no rooms, and 1:<anything> is accepted", async () => {
  await withServer({}, async (s) => {
    const alice = await s.login("alice");
    for (const line of ["1", "1:", "1:password", "1:a:b:c"]) {
      await alice.ask(line, "1:");
    }
  });
});

e2eTest(
  "room list: rooms sorted by name in byte order, users sorted, empty rooms by name alone",
  async () => {
    await withServer({}, async (s) => {
      // U+FF61 sorts before U+1F600 in UTF-8 byte order, but after it in UTF-16 order.
      const halfwidth = "\u{FF61}";
      const emoji = "\u{1F600}";
      const alice = await s.login("alice");
      for (const room of [emoji, halfwidth, "b"]) {
        await alice.send(`2:${room}`);
        assert.match(await alice.next(), /^2:/);
      }
      const zed = await s.login("Zed");
      await zed.ask("2:b", "2:b:Zed,alice");
      const bob = await s.login("bob");
      for (const room of ["B", "a", "a-"]) {
        await bob.send(`2:${room}`);
        assert.match(await bob.next(), /^2:/);
      }
      const carol = await s.inRoom("carol", "é", "carol");
      const expected = `1:B:a:a-,bob:b,Zed,alice:é,carol:${halfwidth}:${emoji}`;
      for (const client of [alice, bob, carol, zed]) {
        await client.send("1:ignored");
        let line = await client.next();
        while (/^[45]:/.test(line)) line = await client.next(); // presence lines of earlier joins
        assert.equal(line, expected);
      }
    });
  },
);

e2eTest("room list: rooms with a password are not listed (1: lists public rooms)", async () => {
  await withServer({}, async (s) => {
    const alice = await s.login("alice");
    await alice.ask("2:vault:pw", "2:vault:alice");
    await alice.ask("1", "1:");
    const bob = await s.login("bob");
    await bob.ask("2:vault:pw", "2:vault:alice,bob");
    await bob.ask("2:lobby", "2:lobby:bob");
    await bob.ask("1", "1:lobby,bob");
  });
});

e2eTest(
  "join-or-create: 2: with the sorted members, 4: to the others, 5: to the room left",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.login("alice");
      await alice.ask("2:lobby", "2:lobby:alice"); // created
      const bob = await s.inRoom("bob", "lobby", "alice,bob");
      await alice.expect("4:lobby:bob");
      const carol = await s.inRoom("carol", "lobby", "alice,bob,carol");
      await alice.expect("4:lobby:carol");
      await bob.expect("4:lobby:carol");
      const zed = await s.inRoom("Zed", "lobby", "Zed,alice,bob,carol");
      for (const c of [alice, bob, carol]) await c.expect("4:lobby:Zed");

      await alice.ask("2:den", "2:den:alice");
      for (const c of [bob, carol, zed]) await c.expect("5:lobby:alice");
      await bob.ask("2:den", "2:den:alice,bob");
      await alice.expect("4:den:bob");
      for (const c of [carol, zed]) await c.expect("5:lobby:bob");
      // A user is in one room at a time: lobby no longer hears alice and bob.
      await alice.ask("3:0:in den", "3:in den");
      await bob.expect("3:in den");
      // Nobody was told about their own joins, and nothing else arrived.
      await Promise.all([alice, bob, carol, zed].map((c) => c.expectNothing(100)));
    });
  },
);

e2eTest("re-joining the room you are in repeats 2: and tells no one", async () => {
  await withServer({}, async (s) => {
    const [alice, bob] = await s.room("lobby", "alice", "bob");
    await alice.ask("2:lobby", "2:lobby:alice,bob");
    await alice.ask("2:lobby:", "2:lobby:alice,bob");
    await bob.expectNothing(150);
    await alice.expectNothing(0);
  });
});

e2eTest(
  "room passwords: set at creation, checked exactly on every join, the user stays where it was",
  async () => {
    await withServer({}, async (s) => {
      const alice = await s.login("alice");
      await alice.ask("2:vault:open sesame", "2:vault:alice");
      const [bob, carol] = await s.room("lobby", "bob", "carol");

      for (const attempt of ["2:vault", "2:vault:", "2:vault:open", "2:vault:open sesame "]) {
        await bob.ask(attempt, "9:2:room-password");
      }
      // bob is still in lobby, and no one heard anything.
      await bob.send("3:1:still here");
      await carol.expect("3:still here");
      await alice.expectNothing(50);

      await bob.ask("2:vault:open sesame", "2:vault:alice,bob");
      await alice.expect("4:vault:bob");
      await carol.expect("5:lobby:bob");

      // The password is checked on a re-join of the room you are in, too.
      await alice.ask("2:vault", "9:2:room-password");
      await alice.send("3:1:still in vault");
      await bob.expect("3:still in vault");
      await alice.ask("2:vault:open sesame", "2:vault:alice,bob");
      await bob.expectNothing(50);
    });
  },
);

e2eTest("room passwords: a public room given a password refuses the join", async () => {
  await withServer({}, async (s) => {
    const alice = await s.inRoom("alice", "lobby", "alice");
    const bob = await s.inRoom("bob", "den", "bob");
    await bob.ask("2:lobby:secret", "9:2:room-password");
    await alice.expectNothing(50);
    await bob.ask("3:0:in den", "3:in den");
    await bob.ask("2:lobby:", "2:lobby:alice,bob");
  });
});

e2eTest("room passwords: up to 1,024 bytes; longer, or with ':', is malformed", async () => {
  await withServer({}, async (s) => {
    const alice = await s.login("alice");
    const long = "p".repeat(1024);
    await alice.ask(`2:big:${long}`, "2:big:alice");
    await alice.ask(`2:bigger:${long}p`, "9:2:malformed");
    await alice.ask("2:room:pass:word", "9:2:malformed");
    await alice.ask("2", "9:2:malformed");
    const bob = await s.login("bob");
    await bob.ask(`2:big:${long}`, "2:big:alice,bob");
  });
});

const encoder = new TextEncoder();
const BAD_NAMES: readonly (string | Uint8Array)[] = [
  "", // empty
  "a b",
  "a,b",
  "a\tb",
  "\x01",
  "a\x7f",
  "a\u00a0b", // no-break space: white space in Unicode
  "a\u3000b", // ideographic space
  "a\u2028b", // line separator
  "\u0085", // next line: a control character and white space
  "x".repeat(65), // 65 bytes
  "é".repeat(33), // 66 bytes, 33 characters
  bytes([0x61, 0xff]), // not UTF-8
  bytes([0xc0, 0xaf]), // overlong encoding of '/'
  bytes([0xed, 0xa0, 0x80]), // a UTF-16 surrogate
];

e2eTest("bad room names get 9:2:bad-name; the limits themselves are fine", async () => {
  await withServer({}, async (s) => {
    const alice = await s.inRoom("alice", "lobby", "alice");
    for (const name of BAD_NAMES) {
      for (const suffix of ["", ":pw"]) {
        const raw = typeof name === "string" ? encoder.encode(name) : name;
        await alice.write(bytes("2:", raw, suffix, "\n"));
        const got = await alice.next();
        assert.equal(got, "9:2:bad-name", `for ${JSON.stringify(new TextDecoder().decode(raw))}`);
      }
    }
    await alice.ask("3:0:still in lobby", "3:still in lobby");
    for (const good of ["x".repeat(64), "é".repeat(32), "\u{1F600}", "a.b-c_d!#"]) {
      await alice.ask(`2:${good}`, `2:${good}:alice`);
    }
    await alice.send("1");
    const listed = (await alice.next()).slice(2).split(":").sort();
    assert.deepEqual(
      listed,
      ["x".repeat(64), "é".repeat(32), "\u{1F600}", "a.b-c_d!#,alice", "lobby"].sort(),
    );
  });
});

e2eTest(
  "--max-rooms: creating one more room gets 9:2:room-limit; existing rooms still join",
  async () => {
    await withServer({ args: ["--max-rooms", "2"] }, async (s) => {
      const alice = await s.login("alice");
      await alice.ask("2:one", "2:one:alice");
      await alice.ask("2:two", "2:two:alice");
      await alice.ask("2:three", "9:2:room-limit");
      await alice.ask("3:0:still in two", "3:still in two");
      await alice.ask("2:one", "2:one:alice");
      await alice.ask("1", "1:one,alice:two");
    });
  },
);

e2eTest(
  "rooms survive a restart: 1 still lists them, and a password room still demands its password",
  async () => {
    const { db, remove } = await freshDatabase();
    try {
      await withServer({ db, users: { ...USERS } }, async (s) => {
        const alice = await s.login("alice");
        await alice.ask("2:lobby", "2:lobby:alice");
        await alice.ask("2:vault:sesame", "2:vault:alice");
        await alice.ask("2:zoo", "2:zoo:alice");
      });
      await withServer({ db, users: {} }, async (s) => {
        const bob = await s.login("bob");
        await bob.ask("1", "1:lobby:zoo");
        await bob.ask("2:vault", "9:2:room-password");
        await bob.ask("2:vault:wrong", "9:2:room-password");
        await bob.ask("2:vault:sesame", "2:vault:bob");
        await bob.ask("2:lobby:sesame", "9:2:room-password");
      });
      // And the room cap counts rooms read back from the database.
      await withServer({ db, users: {}, args: ["--max-rooms", "3"] }, async (s) => {
        const carol = await s.login("carol");
        await carol.ask("2:new", "9:2:room-limit");
        await carol.ask("2:zoo", "2:zoo:carol");
      });
    } finally {
      await remove();
    }
  },
);

e2eTest(
  "--remove-room while the server runs: the room leaves the list and its members are told",
  async () => {
    await withServer({}, async (s) => {
      const [alice, bob] = await s.room("lobby", "alice", "bob");
      const result = await runCli(["--db", s.server.db, "--remove-room", "lobby"]);
      assert.equal(result.code, 0, result.stderr);
      // Both members hear that they are out of it (each is told of both). The server looks for
      // removed rooms every second; the margin is for a busy machine.
      for (const member of [alice, bob]) {
        const heard = [await member.next(3000), await member.next(3000)].sort();
        assert.deepEqual(heard, ["5:lobby:alice", "5:lobby:bob"]);
      }
      await alice.ask("1", "1:");
      await alice.ask("3:0:x", "9:3:not-in-room");
      await bob.ask("2:lobby", "2:lobby:bob"); // a new, empty room of the same name
    });
  },
);
