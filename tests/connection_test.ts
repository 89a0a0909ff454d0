// The per-connection timing rules of lib/transport/connection.ts on a fake clock: the login
// timeout (docs/protocol.md, Sessions), flood control (Flood control and limits) and the login
// throttle's delay. Time moves only when the test says, so no assertion depends on a fast machine.
import assert from "node:assert/strict";
import { Logger } from "../lib/observe/log.ts";
import { Connection } from "../lib/transport/connection.ts";
import type { Transport } from "../lib/transport/connection_context.ts";
import { LoginThrottle } from "../lib/transport/login_throttle.ts";
import { FakeClock } from "./fake_clock.ts";
import { makeHub } from "./hub_support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A transport that keeps what the connection sends, and whether it hung up. */
class RecordingTransport implements Transport {
  readonly remoteAddress = "192.0.2.1";
  readonly pendingBytes = 0;
  lines: string[] = [];
  closed = false;
  /** Whether the unread output is past the bound: only a forced line is queued. */
  full = false;
  send(output: Uint8Array, force = false): boolean {
    if (this.full && !force) return false;
    this.lines.push(...decoder.decode(output).split("\n").filter((line) => line !== ""));
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
  take(): string[] {
    const lines = this.lines;
    this.lines = [];
    return lines;
  }
}

const LIMITS = {
  maxLineBytes: 1024,
  loginTimeoutMs: 30_000,
  maxPendingBytes: 1 << 20,
  rateBurst: 10,
  ratePerSecond: 5,
  readBufferBytes: 4096,
};

async function connected(limits: Partial<typeof LIMITS> = {}) {
  const clock = new FakeClock();
  const { hub, store } = await makeHub();
  const throttle = new LoginThrottle({ clock });
  const transport = new RecordingTransport();
  const connection = new Connection(transport, {
    hub,
    limits: { ...LIMITS, ...limits },
    throttle,
    log: new Logger("error", () => {}),
    closed: () => {},
    clock,
  });
  connection.start();
  const line = async (text: string) => {
    const pending = connection.handleLine(encoder.encode(text));
    if (pending !== undefined) await pending;
  };
  return { clock, store, transport, connection, line };
}

/** The connection stays open until `ms` from now on `clock`, and closes right then. */
function assertClosesAt(clock: FakeClock, connection: Connection, ms: number, why: string): void {
  clock.advance(ms - 1);
  assert.equal(connection.isClosed, false, `still open 1 ms before: ${why}`);
  clock.advance(1);
  assert.equal(connection.isClosed, true, why);
}

Deno.test("connection: after 7:slow nothing more is queued, even once the client reads below the bound", async () => {
  const { transport, connection, line } = await connected();
  await line("8:why");
  assert.deepEqual(transport.take(), ["8:why"]);
  transport.full = true;
  connection.send(encoder.encode("3:one\n")); // past the bound: 7:slow, then the close
  transport.full = false; // the client reads before the close: there is room again
  connection.send(encoder.encode("3:two\n"));
  assert.deepEqual(transport.take(), ["7:slow"]);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the flush (instant here), the close
  assert.equal(connection.isClosed, true);
  assert.equal(transport.closed, true);
});

Deno.test("connection: the login clock closes an idle connection at the timeout, not before", async () => {
  const { clock, store, transport, connection } = await connected();
  try {
    clock.advance(29_999);
    assert.equal(connection.isClosed, false);
    clock.advance(1);
    assert.equal(connection.isClosed, true);
    assert.equal(transport.closed, true);
  } finally {
    await store.close();
  }
});

Deno.test("connection: a session stops the login clock; a failed login starts it again", async () => {
  const { clock, store, transport, connection, line } = await connected();
  try {
    clock.advance(20_000);
    await line("0:alice:pw");
    assert.match(transport.take()[0], /^0:[0-9]+$/);
    clock.advance(60_000);
    assert.equal(connection.isClosed, false, "a logged-in connection has no login clock");
    await line("0:alice:wrong");
    assert.deepEqual(transport.take(), ["0:-1"]);
    assertClosesAt(clock, connection, 30_000, "the clock restarted at the failed login");
  } finally {
    await store.close();
  }
});

Deno.test("connection: flood control lets a burst through, then the sustained rate", async () => {
  const { clock, store, transport, line } = await connected({ rateBurst: 10, ratePerSecond: 5 });
  try {
    for (let i = 0; i < 10; i++) await line("1");
    assert.deepEqual(transport.take(), Array(10).fill("0:-1"), "the burst is answered");
    await line("1");
    assert.deepEqual(transport.take(), ["9:1:rate-limited"]);
    clock.advance(1000); // five more tokens
    for (let i = 0; i < 6; i++) await line("2:x");
    assert.deepEqual(transport.take(), [...Array(5).fill("0:-1"), "9:2:rate-limited"]);
  } finally {
    await store.close();
  }
});

Deno.test("connection: a flood far past the burst closes the connection", async () => {
  const { store, connection, line } = await connected({ rateBurst: 10, ratePerSecond: 5 });
  try {
    for (let i = 0; i < 10 + 11 && !connection.isClosed; i++) await line("1");
    assert.equal(connection.isClosed, true);
  } finally {
    await store.close();
  }
});

Deno.test("connection: after failed logins the next one waits for the throttle's delay", async () => {
  const { clock, store, transport, line } = await connected();
  try {
    // Three failures are free: the login after them is not slowed.
    for (let i = 0; i < 4; i++) await line("0:alice:wrong");
    assert.deepEqual(transport.take(), ["0:-1", "0:-1", "0:-1", "0:-1"]);
    assert.equal(clock.pending, 1, "only the login clock waits");
    let answered = false;
    const held = line("0:alice:pw").then(() => answered = true);
    await new Promise((resolve) => setTimeout(resolve, 10)); // real time changes nothing
    assert.equal(answered, false, "held for the delay");
    clock.advance(249);
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(answered, false, "still held 1 ms before the delay ends");
    clock.advance(1); // the first delay past the free failures: 250 ms
    await held;
    assert.match(transport.take()[0], /^0:[0-9]+$/);
  } finally {
    await store.close();
  }
});

Deno.test("connection: the login clock waits for a login being checked, then starts again", async () => {
  const { clock, store, transport, connection, line } = await connected();
  try {
    const checking = line("0:alice:wrong"); // the check takes real time; the clock is fake
    clock.advance(60_000);
    assert.equal(connection.isClosed, false, "closed while its login was being checked");
    await checking;
    assert.deepEqual(transport.take(), ["0:-1"]);
    assertClosesAt(clock, connection, 30_000, "the clock restarted when the check was answered");
  } finally {
    await store.close();
  }
});

Deno.test("connection: with why, the login clock says 7:idle before the close", async () => {
  const { clock, store, transport, connection, line } = await connected();
  try {
    await line("8:why");
    assert.deepEqual(transport.take(), ["8:why"]);
    clock.advance(30_000);
    await connection.closeAfterFlush(); // what the clock started: written, then closed
    assert.deepEqual(transport.take(), ["7:idle"]);
    assert.equal(transport.closed, true);
  } finally {
    await store.close();
  }
});
