// lib/client/client.ts against the real server (a subprocess on loopback).
import assert from "node:assert/strict";
import { ParleyClient, ParleyError, type ParleyEvent } from "../lib/client/client.ts";
import { makeCert, startServer, tempDir } from "./helpers.ts";

const USERS = { alice: "wonderland", bob: "builder", carol: "c4rol" };

async function next(client: ParleyClient): Promise<ParleyEvent> {
  const event = await client.nextEvent(5000);
  if (event === undefined) throw new Error("no event within 5 s");
  return event;
}

Deno.test("client: login, rooms, join, the three send modes, presence and errors", async () => {
  const server = await startServer({ users: USERS });
  const clients: ParleyClient[] = [];
  try {
    const alice = await ParleyClient.connect({ port: server.port });
    clients.push(alice);
    await assert.rejects(
      alice.rooms(),
      (e) => e instanceof ParleyError && e.reason === "logged-out",
    );
    assert.deepEqual(await next(alice), { type: "session-ended" });
    await assert.rejects(
      alice.login("alice", "wrong"),
      (e) => e instanceof ParleyError && e.code === "0" && e.reason === "logged-out",
    );
    const id = await alice.login("alice", "wonderland");
    assert.ok(id > 0);
    assert.equal(alice.sessionId, id);
    assert.deepEqual(await alice.rooms(), []);
    assert.deepEqual(await alice.join("lobby"), {
      type: "joined",
      room: "lobby",
      members: ["alice"],
    });
    assert.deepEqual(await next(alice), { type: "joined", room: "lobby", members: ["alice"] });

    const bob = await ParleyClient.connect({ hostname: "127.0.0.1", port: server.port });
    clients.push(bob);
    await bob.login("bob", "builder");
    assert.deepEqual((await bob.join("lobby")).members, ["alice", "bob"]);
    await next(bob); // its own joined event
    assert.deepEqual(await next(alice), {
      type: "presence",
      action: "join",
      room: "lobby",
      user: "bob",
    });
    assert.deepEqual(await alice.rooms(), [{ name: "lobby", members: ["alice", "bob"] }]);

    await alice.say("hello"); // 3:1: bob only
    const hello = await next(bob);
    assert.equal(hello.type, "message");
    assert.equal(hello.type === "message" && hello.text, "hello");
    await alice.say("everyone", { echo: true }); // 3:0: both
    for (const client of [alice, bob]) {
      const event = await next(client);
      assert.equal(event.type === "message" && event.text, "everyone");
    }
    await alice.tell(["bob", "carol"], "aGk=");
    const direct = await next(bob);
    assert.equal(direct.type === "message" && direct.text, "aGk=");
    assert.deepEqual(direct.type === "message" && [direct.sender, direct.room, direct.direct], [
      "alice",
      "",
      true,
    ]);
    assert.deepEqual(await next(alice), {
      type: "error",
      code: "3",
      reason: "not-online",
      detail: "carol",
    });

    await assert.rejects(
      alice.join("a b"),
      (e) => e instanceof ParleyError && e.reason === "bad-name",
    );
    await alice.join("vault", "s3cret");
    await next(alice); // joined vault
    assert.deepEqual(await next(bob), {
      type: "presence",
      action: "leave",
      room: "lobby",
      user: "alice",
    });
    await assert.rejects(
      bob.join("vault", "nope"),
      (e) => e instanceof ParleyError && e.code === "2" && e.reason === "room-password",
    );
    assert.throws(() => alice.tell(["bob"], "a:b"), TypeError);
    assert.throws(() => alice.say("two\nlines"), TypeError);

    // The same user logging in elsewhere ends this session, and with `why` the server says so.
    const again = await ParleyClient.connect({ port: server.port });
    clients.push(again);
    await again.login("alice", "wonderland");
    assert.deepEqual(await next(alice), { type: "reason", reason: "replaced" });
    assert.deepEqual(await next(alice), { type: "session-ended", reason: "replaced" });
    assert.equal(alice.sessionId, null);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("client: v1 only, stamped senders, and the stream ends when the server closes", async () => {
  const server = await startServer({ users: USERS, args: ["--stamp-sender"] });
  const clients: ParleyClient[] = [];
  try {
    // `features: false`: the client never sends `8:`, so it sees v1 byte for byte.
    const v1 = { port: server.port, stampSender: true, features: false };
    const alice = await ParleyClient.connect(v1);
    const bob = await ParleyClient.connect(v1);
    clients.push(alice, bob);
    await alice.login("alice", "wonderland");
    await bob.login("bob", "builder");
    await bob.tell(["alice"], "psst");
    const event = await next(alice);
    assert.equal(event.type, "message");
    if (event.type === "message") {
      assert.equal(event.sender, "bob");
      assert.equal(event.text, "psst");
      assert.deepEqual(event.bytes, new TextEncoder().encode("psst"));
      assert.equal(event.room, undefined); // no `from`: the room is not known
    }
    await server.stop();
    const seen: string[] = [];
    for await (const e of alice) seen.push(e.type); // ends when the server hangs up
    assert.deepEqual(seen, ["session-ended"]); // shutdown logs everyone out with 0:-1
    assert.ok(alice.closed);
    await assert.rejects(alice.rooms());
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("client: TLS", async () => {
  const temp = await tempDir();
  let server;
  const clients: ParleyClient[] = [];
  try {
    const { certPath: cert, keyPath: key, pem } = await makeCert(temp.dir);
    server = await startServer({
      users: USERS,
      args: ["--tls-cert", cert, "--tls-key", key, "--tls-port", "0"],
    });
    const alice = await ParleyClient.connect({
      hostname: "localhost",
      port: server.tlsPort!,
      tls: { caCerts: [pem] },
    });
    clients.push(alice);
    assert.ok(await alice.login("alice", "wonderland") > 0);
    assert.deepEqual((await alice.join("secure")).members, ["alice"]);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server?.stop();
    await temp.remove();
  }
});
