// A byte flood knocks a slow reader offline (issue "Hostile internet, round two", finding 7):
// `3:2:bob:<65 KB>` lines, well within the line rate, filled bob's pending output past the
// slow-consumer bound although he reads at 1 MB/s. A sender's bytes now have a budget (512 KiB/s,
// 1 MiB burst by default), below what such a reader takes.

import assert from "node:assert/strict";
import { startServer } from "./helpers.ts";
import { flood, PacedReader, rawLogin } from "./attack_support.ts";

const USERS = { alice: "wonderland", bob: "builder" };
/** A line near the 64 KiB line limit. */
const BIG = "3:2:bob:" + "x".repeat(65_000);

Deno.test("hostile bytes: a 65 KB direct flood does not drop bob, who reads 1 MB/s", async () => {
  const server = await startServer({ users: USERS });
  try {
    const bob = new PacedReader(await rawLogin(server.port, "bob", USERS.bob), 1_000_000);
    // 200 lines a second is 13 MB/s, well within the line limit (500 a second): only a byte
    // budget holds it back. (The refusals decay faster than they come: alice stays connected.)
    const alice = await rawLogin(server.port, "alice", USERS.alice);
    const attack = await flood(alice, BIG, 200, 6_000);
    await bob.stop();
    assert.ok(!server.log().includes("slow-consumer"), "bob was dropped as a slow consumer");
    assert.equal(bob.closedAfterMs, null, "bob's connection was closed");
    assert.ok(attack.refused > 0, `alice was never refused (sent ${attack.sent})`);
    // What got through is bounded by the budget: a 1 MiB burst and 512 KiB/s over the flood,
    // with 2 s of margin.
    const through = (attack.sent - attack.refused) * BIG.length;
    const budget = (1 << 20) + (attack.elapsedMs / 1000 + 2) * (512 << 10);
    assert.ok(through < budget, `${through} bytes got through in ${attack.elapsedMs} ms`);
  } finally {
    await server.stop();
  }
});

Deno.test("hostile bytes: a room flood is held to the same budget", async () => {
  const server = await startServer({ users: USERS });
  try {
    const bobConn = await rawLogin(server.port, "bob", USERS.bob);
    await bobConn.write(new TextEncoder().encode("2:den\n"));
    const bob = new PacedReader(bobConn, 1_000_000);
    const alice = await rawLogin(server.port, "alice", USERS.alice);
    await alice.write(new TextEncoder().encode("2:den\n"));
    const attack = await flood(alice, "3:1:" + "y".repeat(65_000), 200, 5_000);
    await bob.stop();
    assert.ok(!server.log().includes("slow-consumer"), "bob was dropped as a slow consumer");
    assert.ok(attack.refused > 0, `alice was never refused (sent ${attack.sent})`);
  } finally {
    await server.stop();
  }
});
