// The example session of docs/protocol.md, Example, end to end over TCP against the real server.
import assert from "node:assert/strict";
import { startServer, TestClient } from "./helpers.ts";

/**
 * The example, one step a row: who acts, then either a line it sends (`C`) or a line it must
 * receive next (`S`), in the order the page tells the story.
 */
const EXAMPLE: readonly (readonly ["alice" | "bob", "C" | "S", string])[] = [
  ["alice", "C", "0:alice:wonderland"],
  ["alice", "S", "0:1"],
  ["alice", "C", "2:lobby"],
  ["alice", "S", "2:lobby:alice"],
  ["bob", "C", "0:bob:builder"],
  ["bob", "S", "0:2"],
  ["bob", "C", "2:lobby"],
  ["bob", "S", "2:lobby:alice,bob"],
  ["alice", "S", "4:lobby:bob"],
  ["alice", "C", "3:1:hello"],
  ["bob", "S", "3:hello"],
  ["alice", "C", "1"],
  ["alice", "S", "1:lobby,alice,bob"],
  ["alice", "C", "3:2:bob:carol:aGk="],
  ["bob", "S", "3:aGk="],
  ["alice", "S", "9:3:not-online:carol"],
];

Deno.test("the protocol's example session works as written", async () => {
  const server = await startServer({ users: { alice: "wonderland", bob: "builder" } });
  const clients = {
    alice: await TestClient.connect(server.port),
    bob: await TestClient.connect(server.port),
  };
  try {
    for (const [who, direction, line] of EXAMPLE) {
      if (direction === "C") await clients[who].send(line);
      else await clients[who].expect(line);
    }
    assert.equal(clients.alice.pending.length + clients.bob.pending.length, 0);
  } finally {
    await Promise.all(Object.values(clients).map((c) => c.close()));
    await server.stop();
  }
});
