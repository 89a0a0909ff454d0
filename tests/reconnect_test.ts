// lib/client/client.ts with `reconnect`: backoff with jitter and a cap (a tiny fake server, an
// injected random and sleep), a server restart on the same port and database (the client resumes
// and is back in its room), and a newer login elsewhere (the client stops and never fights back).
import assert from "node:assert/strict";
import { ParleyClient, type ParleyEvent } from "../lib/client/client.ts";
import { runCli, startServer, waitFor } from "./helpers.ts";
import { startRestartable } from "./restart_support.ts";

const USERS = { alice: "wonderland", bob: "builder" };

/** Reads events until one matches `want` (10 s at most); returns them all, that one last. */
async function until(
  client: ParleyClient,
  want: (event: ParleyEvent) => boolean,
): Promise<ParleyEvent[]> {
  const seen: ParleyEvent[] = [];
  for (;;) {
    const event = await client.nextEvent(10_000);
    if (event === undefined) {
      throw new Error(`the wanted event never came; saw ${JSON.stringify(seen)}`);
    }
    seen.push(event);
    if (want(event)) return seen;
  }
}

/**
 * A one-connection fake server speaking v1.1: it answers `8:` and one login (with a token), then
 * hangs up and stops listening, so every later try fails to connect.
 */
function oneShotServer(): { port: number; done: Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    const say = (line: string) => conn.write(new TextEncoder().encode(line + "\n"));
    const lines = conn.readable.pipeThrough(new TextDecoderStream());
    let buffer = "";
    for await (const chunk of lines) {
      buffer += chunk;
      if (buffer.includes("8:from,why,resume\n") && !buffer.includes("answered8")) {
        buffer += "answered8";
        await say("8:from,why,resume");
      }
      if (buffer.includes("0:alice:wonderland\n")) {
        await say("0:1");
        await say("6:tok-aaaaaaaaaaaaaaaa");
        break;
      }
    }
    try {
      conn.close();
    } catch { /* leaving the loop cancelled the stream, which closed it */ }
  })();
  return { port: listener.addr.port, done };
}

Deno.test("reconnect: the delay grows with full jitter, is capped, and the client gives up", async () => {
  const fake = oneShotServer();
  const slept: number[] = [];
  const client = await ParleyClient.connect({
    port: fake.port,
    reconnect: {
      baseMs: 100,
      capMs: 1000,
      maxAttempts: 7,
      random: () => 0.5, // the middle of each window: the growth shows exactly
      sleep: (ms) => {
        slept.push(ms);
        return Promise.resolve(); // an instant clock: no test waits on real time
      },
    },
  });
  try {
    assert.deepEqual([...client.features], ["from", "why", "resume"]);
    assert.equal(await client.login("alice", "wonderland"), 1);
    const seen = await until(client, (e) => e.type === "ended");
    await fake.done;
    assert.equal(client.token, "tok-aaaaaaaaaaaaaaaa", "the newest 6: token is kept");
    const tries = seen.filter((e) => e.type === "reconnecting");
    assert.deepEqual(tries.map((e) => e.type === "reconnecting" && e.attempt), [
      1,
      2,
      3,
      4,
      5,
      6,
      7,
    ]);
    // Half of min(cap, base * 2^(attempt-1)): 50, 100, 200, 400, then the 1000 ms cap.
    assert.deepEqual(slept, [50, 100, 200, 400, 500, 500, 500]);
    assert.deepEqual(seen.at(-1), { type: "ended", reason: "gave-up" });
    assert.ok(client.closed);
  } finally {
    await client.close();
  }
});

Deno.test("reconnect: after a server restart the client resumes and is back in its room", async () => {
  const restartable = await startRestartable({ users: USERS });
  const clients: ParleyClient[] = [];
  try {
    const alice = await ParleyClient.connect({
      port: restartable.port,
      reconnect: { baseMs: 100, capMs: 1000 },
    });
    clients.push(alice);
    await alice.login("alice", "wonderland");
    await alice.join("den", "s3cret");
    await until(alice, (e) => e.type === "joined"); // the join's own event
    await waitFor(() => alice.token !== null, "a resume token after the login");

    await restartable.restart();
    const seen = await until(alice, (e) => e.type === "joined");
    const types = seen.map((e) => e.type);
    assert.ok(types.includes("reconnecting"), JSON.stringify(seen));
    const back = seen.find((e) => e.type === "reconnected");
    assert.deepEqual(back && back.type === "reconnected" && back.resumed, true);
    assert.deepEqual(seen.at(-1), { type: "joined", room: "den", members: ["alice"] });
    assert.ok(alice.connected);
    assert.notEqual(alice.sessionId, null); // a new process counts its ids from 1 again

    // Back in the room for real: bob joins and the two talk, with senders and rooms.
    const bob = await ParleyClient.connect({ port: restartable.port });
    clients.push(bob);
    await bob.login("bob", "builder");
    assert.deepEqual((await bob.join("den", "s3cret")).members, ["alice", "bob"]);
    await alice.say("hello again");
    const [heard] = (await until(bob, (e) => e.type === "message")).slice(-1);
    assert.equal(heard.type === "message" && heard.text, "hello again");
    assert.equal(heard.type === "message" && heard.sender, "alice");
    assert.equal(heard.type === "message" && heard.room, "den");
    await bob.tell(["alice"], "psst");
    const [direct] = (await until(alice, (e) => e.type === "message")).slice(-1);
    assert.equal(direct.type === "message" && direct.direct, true);
    assert.equal(direct.type === "message" && direct.sender, "bob");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await restartable.stop();
  }
});

Deno.test("reconnect: a refused token falls back to the password, asked through onPassword", async () => {
  const restartable = await startRestartable({ users: USERS });
  const asked: string[] = [];
  const alice = await ParleyClient.connect({
    port: restartable.port,
    reconnect: {
      baseMs: 100,
      keepPassword: false,
      onPassword: () => {
        asked.push("alice");
        return "new-wonderland";
      },
    },
  });
  try {
    await alice.login("alice", "wonderland");
    await waitFor(() => alice.token !== null, "a resume token after the login");
    // A changed password makes every older token useless.
    await restartable.restart(async (db) => {
      const set = await runCli(["--db", db, "--set-password", "alice"], {
        stdin: "new-wonderland",
      });
      assert.equal(set.code, 0, set.stderr);
    });
    const seen = await until(alice, (e) => e.type === "reconnected");
    assert.deepEqual(seen.at(-1), {
      type: "reconnected",
      resumed: false,
      sessionId: alice.sessionId,
    });
    assert.deepEqual(asked, ["alice"]);
    await waitFor(() => alice.token !== null, "a new token after the password login");
  } finally {
    await alice.close();
    await restartable.stop();
  }
});

Deno.test("reconnect: replaced by a newer login, the client stops with the reason", async () => {
  const server = await startServer({ users: USERS });
  const clients: ParleyClient[] = [];
  try {
    const alice = await ParleyClient.connect({ port: server.port, reconnect: { baseMs: 10 } });
    clients.push(alice);
    await alice.login("alice", "wonderland");
    const newer = await ParleyClient.connect({ port: server.port });
    clients.push(newer);
    await newer.login("alice", "wonderland");

    const seen: ParleyEvent[] = [];
    for await (const event of alice) seen.push(event); // the stream ends: the client stopped
    assert.deepEqual(seen, [
      { type: "reason", reason: "replaced" },
      { type: "session-ended", reason: "replaced" },
      { type: "ended", reason: "replaced" },
    ]);
    assert.ok(alice.closed);
    // It never fought back: the newer session is still in.
    assert.equal(await newer.nextEvent(300), undefined);
    assert.deepEqual(await newer.rooms(), []);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("reconnect: removed by the operator, the client stops with the reason", async () => {
  const server = await startServer({ users: USERS });
  const alice = await ParleyClient.connect({ port: server.port, reconnect: { baseMs: 10 } });
  try {
    await alice.login("alice", "wonderland");
    const removed = await runCli(["--db", server.db, "--remove-user", "alice"]);
    assert.equal(removed.code, 0, removed.stderr);
    const seen = await until(alice, (e) => e.type === "ended");
    assert.deepEqual(seen.at(-1), { type: "ended", reason: "removed" });
    assert.ok(!seen.some((e) => e.type === "reconnecting"), JSON.stringify(seen));
    assert.ok(alice.closed);
  } finally {
    await alice.close();
    await server.stop();
  }
});
