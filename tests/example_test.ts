// The example session of docs/protocol.md, Example, end to end over TCP against the real server.
import assert from "node:assert/strict";
import { startServer, TestClient } from "./helpers.ts";

Deno.test("the protocol's example session works as written", async () => {
  const server = await startServer({ users: { alice: "wonderland", bob: "builder" } });
  const clients: TestClient[] = [];
  try {
    const alice = await TestClient.connect(server.port);
    clients.push(alice);
    await alice.send("0:alice:wonderland");
    await alice.expect("0:1");
    await alice.send("2:lobby");
    await alice.expect("2:lobby:alice");

    const bob = await TestClient.login(server.port, "bob", "builder");
    clients.push(bob);
    await bob.send("2:lobby");
    await bob.expect("2:lobby:alice,bob");
    await alice.expect("4:lobby:bob");

    await alice.send("3:1:hello");
    await bob.expect("3:hello");
    await alice.send("1");
    await alice.expect("1:lobby,alice,bob");
    await alice.send("3:2:bob:carol:aGk=");
    await bob.expect("3:aGk=");
    await alice.expect("9:3:not-online:carol");
    assert.equal(alice.pending.length + bob.pending.length, 0);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});
