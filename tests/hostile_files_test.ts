// Running out of files: with a low open-file limit and --max-connections above it, more sockets
// than the limit (half-sent HTTP heads on the WebSocket port, idle plain TCP connections) must
// not crash the server, spin its accept loop or flood its log; a session already in keeps
// chatting; half-sent heads are closed at --header-timeout-ms; and once the attackers go, new
// clients get in again.
import assert from "node:assert/strict";
import { USERS } from "./e2e_support.ts";
import {
  alive,
  closeAll,
  countEvents,
  cpuSeconds,
  endsWithin,
  HALF_HEAD,
  limitFiles,
  openMany,
} from "./hostile_support.ts";
import { sleep, TestClient } from "./helpers.ts";
import { startWsServer, WsClient } from "./ws_support.ts";

const FILE_LIMIT = 256;
const HEADER_TIMEOUT_MS = 2000;

Deno.test("hostile files: past the file limit the server lives, backs off, logs boundedly, and recovers", async () => {
  const server = await startWsServer({
    users: USERS,
    args: ["--max-connections", "2000", "--header-timeout-ms", String(HEADER_TIMEOUT_MS)],
  });
  const pid = server.process.pid;
  const attackers: Deno.Conn[] = [];
  let alice: TestClient | undefined;
  try {
    alice = await TestClient.login(server.port, "alice", USERS.alice);
    await alice.ask("2:lobby", "2:lobby:alice");
    await limitFiles(pid, FILE_LIMIT);
    // Half-sent heads first, then plain TCP connections that send nothing: 500 sockets in all,
    // about twice what the server can hold open.
    attackers.push(...await openMany(server.wsPort, 300, HALF_HEAD));
    attackers.push(...await openMany(server.port, 200));
    const wsAttackers = attackers.slice(0, 300);
    await sleep(500); // the server has accepted all it can, and failed on the rest
    const logBefore = countEvents(server.log(), "accept-error");
    const cpuBefore = cpuSeconds(pid);
    const startedAt = Date.now();
    await sleep(3000);
    const cpu = cpuSeconds(pid) - cpuBefore;
    const seconds = (Date.now() - startedAt) / 1000;
    const errorLines = countEvents(server.log(), "accept-error") - logBefore;
    console.log(
      `at the file limit: ${cpu.toFixed(2)} s of CPU in ${seconds.toFixed(1)} s, ` +
        `${errorLines} accept-error lines, ${countEvents(server.log(), "accept-error")} in all`,
    );
    assert.ok(alive(pid), "the server died");
    assert.ok(/accept-error/.test(server.log()), "the file limit was never reached");
    assert.ok(cpu < seconds / 3, `the server used ${cpu} s of CPU in ${seconds} s`);
    // At most one line a second per listener (two listeners), and a margin.
    assert.ok(errorLines <= 2 * (seconds + 1) + 2, `${errorLines} accept-error lines`);
    // The session already in still works.
    await alice.ask("1", "1:lobby,alice");
    // Every half-sent head is closed by its deadline once accepted (those waiting in the backlog
    // are accepted as others close): none is held for good.
    const ends = await Promise.all(wsAttackers.map((conn) => endsWithin(conn, 20_000)));
    assert.equal(ends.filter((ended) => !ended).length, 0, "half-sent heads left open");
    assert.match(
      server.log(),
      /accept-error transport=(ws|tcp) error=.*(Too many open files|EMFILE)/,
    );
    closeAll(attackers);
    // New clients get in again, on both ports (a moment for the server to see the closes).
    let bob: TestClient | undefined;
    for (let tries = 0; bob === undefined && tries < 50; tries++) {
      bob = await TestClient.login(server.port, "bob", USERS.bob).catch(() => undefined);
      if (bob === undefined) await sleep(100);
    }
    assert.ok(bob, "no TCP login after the attack");
    await bob.close();
    const carol = await WsClient.login(server.wsPort, "carol", USERS.carol);
    await carol.close();
    assert.ok(alive(pid));
  } finally {
    closeAll(attackers);
    await alice?.close();
    await server.stop();
  }
});
