// One address must not take every slot: --max-connections-per-address caps what one address
// holds, counted across transports, and the cap is at most --max-connections less a reserve, so
// a login from another address still gets in.
import assert from "node:assert/strict";
import { parseInvocation, UsageError } from "../lib/server/config.ts";
import { USERS } from "./e2e_support.ts";
import { connectFrom } from "./hardening_support.ts";
import { TestClient } from "./helpers.ts";
import { RawWsClient, startWsServer } from "./ws_support.ts";

const ATTACKER = "127.0.0.2";

/** Opens `count` idle TCP connections from the attacker's address. */
async function fromAttacker(port: number, count: number): Promise<TestClient[]> {
  const conns = await Promise.all(
    Array.from({ length: count }, () => connectFrom(port, ATTACKER)),
  );
  return conns.map((conn) => TestClient.fromConn(conn));
}

Deno.test("hostile address: past --max-connections-per-address one address is refused; another logs in", async () => {
  const server = await startWsServer({
    users: USERS,
    args: ["--max-connections", "50", "--max-connections-per-address", "10"],
  });
  const held: TestClient[] = [];
  const ws: RawWsClient[] = [];
  try {
    // Six TCP and four WebSocket connections: the cap counts both.
    held.push(...await fromAttacker(server.port, 6));
    for (let i = 0; i < 4; i++) {
      ws.push(await RawWsClient.open(await connectFrom(server.wsPort, ATTACKER), "parley"));
      assert.equal(ws[i].status, 101);
    }
    for (const c of held) await c.ask("1", "0:-1"); // served: a line before a login
    const refused = await fromAttacker(server.port, 5);
    for (const c of refused) {
      await c.expect("9:?:server-full");
      await c.expectClosed();
      await c.close();
    }
    const refusedWs = await RawWsClient.open(await connectFrom(server.wsPort, ATTACKER), "parley");
    assert.equal(await refusedWs.next(), "9:?:server-full");
    refusedWs.close();
    assert.match(server.log(), /server-full address=127\.0\.0\.2 transport=tcp limit=per-address/);
    // Another address gets in, on either transport.
    const alice = await TestClient.login(server.port, "alice", USERS.alice);
    await alice.close();
    // A slot the attacker frees is its own again.
    await held.pop()!.close();
    let again: TestClient | undefined;
    for (let tries = 0; again === undefined && tries < 50; tries++) {
      const [c] = await fromAttacker(server.port, 1);
      await c.send("1");
      if (await c.next() === "0:-1") again = c;
      else await c.close();
    }
    assert.ok(again, "a freed slot was never reused");
    held.push(again);
  } finally {
    for (const c of ws) c.close();
    await Promise.all(held.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("hostile address: with the default cap one address still leaves a tenth of --max-connections", async () => {
  // --max-connections 20 and the default cap (256): one address may hold 18.
  const server = await startWsServer({
    users: USERS,
    args: ["--max-connections", "20", "--max-connections-per-address", "256"],
  });
  const held: TestClient[] = [];
  try {
    held.push(...await fromAttacker(server.port, 18));
    for (const c of held) await c.ask("1", "0:-1");
    const [refused] = await fromAttacker(server.port, 1);
    await refused.expect("9:?:server-full");
    await refused.close();
    const alice = await TestClient.login(server.port, "alice", USERS.alice);
    const bob = await TestClient.login(server.port, "bob", USERS.bob);
    await alice.close();
    await bob.close();
  } finally {
    await Promise.all(held.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("hostile address: the flags' bounds, and PARLEY_ variables", () => {
  const config = (args: string[], env: Record<string, string> = {}) => {
    const run = parseInvocation(args, env);
    assert.equal(run.kind, "serve");
    return run.kind === "serve" ? run.config : undefined;
  };
  assert.equal(config([])?.maxConnectionsPerAddress, 256);
  assert.equal(config([])?.headerTimeoutMs, 10_000);
  assert.equal(config(["--max-connections-per-address", "0"])?.maxConnectionsPerAddress, 0);
  assert.equal(config([], { PARLEY_HEADER_TIMEOUT_MS: "500" })?.headerTimeoutMs, 500);
  assert.equal(
    config([], { PARLEY_MAX_CONNECTIONS_PER_ADDRESS: "7" })?.maxConnectionsPerAddress,
    7,
  );
  assert.throws(() => parseInvocation(["--max-connections-per-address", "-1"], {}), UsageError);
  assert.throws(() => parseInvocation(["--header-timeout-ms", "60000"], {}), UsageError);
});
