// What a login's answer gives away, at the hub's edge (lib/server/hub_edge.ts) on a real SQLite
// store and the real scrypt hasher: no name oracle when users' hashes were made at a lower cost
// than the server's (finding 6), and a check the hasher had no room for is "busy", which the
// connection does not count as a failed login.
import assert from "node:assert/strict";
import { Connection } from "../lib/transport/connection.ts";
import { hubEdge } from "../lib/server/hub_edge.ts";
import { HasherBusyError, PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { LoginThrottle } from "../lib/transport/login_throttle.ts";
import { Logger } from "../lib/observe/log.ts";
import type { CheckOutcome } from "../lib/hub/ports.ts";
import { makeHub, RecordingPeer, send } from "./hub_support.ts";

const encoder = new TextEncoder();

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The edge of a server at `serverCost` whose user alice's hash was made at `userCost`. */
async function edgeAt(serverCost: number, userCost: number) {
  const store = openSqliteStore(":memory:");
  const old = new PasswordHasher({ params: scryptParams(userCost) });
  await store.addUser("alice", await old.hash(encoder.encode("wonderland")));
  const hasher = new PasswordHasher({ params: scryptParams(serverCost), concurrency: 1 });
  await hasher.prepare();
  const answers = new Map<number, (ok: CheckOutcome) => void>();
  const work = hubEdge({ store, passwords: hasher, onError: (e) => assert.fail(String(e)) })({
    loginChecked: (ticket, ok) => answers.get(ticket)?.(ok),
    resumeChecked() {},
    tokenIssued() {},
    claimDecided() {},
    roomStored() {},
    roomPasswordChecked() {},
  });
  let tickets = 0;
  /** How long (ms) a login of `user` with `password` takes to be answered, and the answer. */
  const login = async (user: string, password: string) => {
    const ticket = ++tickets;
    const answered = new Promise<CheckOutcome>((resolve) => answers.set(ticket, resolve));
    const start = performance.now();
    work.checkLogin(ticket, user, encoder.encode(password), "192.0.2.1");
    const ok = await answered;
    return { ms: performance.now() - start, ok };
  };
  return { store, login };
}

for (const [serverCost, userCost] of [[14, 12], [14, 13]]) {
  Deno.test(`6: users hashed at cost ${userCost}, server at ${serverCost}: a known name and an unknown one answer alike`, async () => {
    const { store, login } = await edgeAt(serverCost, userCost);
    try {
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < 15; i++) {
        // Side by side, interleaved, so a change in the machine's speed touches both alike.
        const a = await login("alice", `guess-${i}`);
        const b = await login("nobody", `guess-${i}`);
        assert.equal(a.ok, false);
        assert.equal(b.ok, false);
        known.push(a.ms);
        unknown.push(b.ms);
      }
      const ratio = median(unknown) / median(known);
      console.log(
        `known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms ` +
          `(ratio ${ratio.toFixed(2)})`,
      );
      assert.ok(ratio < 1.5 && ratio > 1 / 1.5, `medians differ by ${ratio.toFixed(2)}×`);
    } finally {
      await store.close();
    }
  });
}

Deno.test("6: a right password re-hashes at the current cost, once; the password still works, a wrong one does not", async () => {
  const { store, login } = await edgeAt(11, 10);
  try {
    assert.equal((await login("alice", "wonderland")).ok, true);
    const deadline = Date.now() + 10_000;
    let hash = "";
    while (!(hash = (await store.findUser("alice"))!.passwordHash).startsWith("scrypt$11$")) {
      assert.ok(Date.now() < deadline, `not re-hashed: ${hash.slice(0, 10)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal((await login("alice", "wonderland")).ok, true);
    assert.equal((await login("alice", "wonderlan")).ok, false);
    assert.equal((await store.findUser("alice"))!.passwordHash, hash, "re-hashed only once");
    // A hash changed meanwhile (a --set-password) is never overwritten by a re-hash.
    assert.equal(await store.upgradePasswordHash("alice", "scrypt$10$old", "x"), false);
    assert.equal((await store.findUser("alice"))!.passwordHash, hash);
  } finally {
    await store.close();
  }
});

/** A hasher that is always full. */
const busy = {
  verify: () => Promise.reject(new HasherBusyError()),
  hash: () => Promise.reject(new HasherBusyError()),
};

Deno.test("3: a login the hasher had no room for is answered 0:-1 as busy, not as a failed login", async () => {
  const { hub, store, errors } = await makeHub({ passwords: busy });
  try {
    const peer = new RecordingPeer("p");
    hub.connect(peer);
    await send(hub, peer, "0:alice:pw");
    assert.deepEqual(peer.take(), ["0:-1", "@ended:login-busy"]);
    assert.deepEqual(errors, [], "busy is not a server error");

    // On a connection: a dozen busy answers neither close it (10 failures would) nor slow the
    // address; each is logged as login-busy.
    const logged: string[] = [];
    const throttle = new LoginThrottle();
    const connection = new Connection({
      remoteAddress: "192.0.2.9",
      pendingBytes: 0,
      send: () => true,
      drained: () => Promise.resolve(),
      close() {},
    }, {
      hub,
      limits: {
        maxLineBytes: 1024,
        loginTimeoutMs: 30_000,
        maxPendingBytes: 1 << 20,
        rateBurst: 0,
        ratePerSecond: 0,
        readBufferBytes: 4096,
      },
      throttle,
      log: new Logger("info", (line) => logged.push(line)),
      closed: () => {},
    });
    connection.start();
    for (let i = 0; i < 12; i++) await connection.handleLine(encoder.encode("0:alice:pw"));
    assert.equal(connection.isClosed, false);
    assert.equal(throttle.delayMs("192.0.2.9", 0), 0);
    assert.equal(logged.filter((line) => line.includes("login-busy")).length, 12);
    assert.ok(!logged.some((line) => line.includes("login-failed")));
    connection.close();
  } finally {
    await store.close();
  }
});
