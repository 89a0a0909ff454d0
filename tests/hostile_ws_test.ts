// Hostile WebSocket clients, no login needed: what one connection can make the server hold stays
// about --max-line-bytes whatever the framing (huge fragmented messages, data after the server's
// close, floods of empty frames while a login is pending, pings it never reads the pongs of), and
// a close ends the TCP connection within 5 s whether or not the peer answers.
// Unbounded, each attack below would cost the server about 128 MiB (the baseline, 1e5eef1, held
// every byte); each test allows 40 MiB of growth of its resident memory.
import assert from "node:assert/strict";
import { USERS } from "./e2e_support.ts";
import {
  emptyFrames,
  holdsSocket,
  rssKiB,
  sendFragments,
  textFrame,
  watchPeakRss,
  writeBefore,
  writeOrGone,
} from "./hostile_support.ts";
import { waitFor } from "./hardening_support.ts";
import { RawWsClient, startWsServer, type WsTestServer } from "./ws_support.ts";

/** The growth of the server's resident memory each attack may cause, in KiB (about 3× a quiet run). */
const GROWTH_BOUND_KIB = 40 * 1024;
/** 16 fragments of 8 MiB: 128 MiB held if fragments were gathered. */
const FRAGMENTS = 16;
const FRAGMENT_BYTES = 8 << 20;
/** The server's close may wait this long for the peer's close frame (CLOSE_TIMEOUT_MS). */
const CLOSE_TIMEOUT_MS = 5000;
/** What a loaded machine may add to it before the socket is seen gone. */
const CLOSE_MARGIN_MS = 4000;

/**
 * A server with a WebSocket port (and `args`) and one raw WebSocket client on it, for `body`;
 * both closed after.
 */
async function withRawWs(
  args: string[],
  body: (attack: { server: WsTestServer; pid: number; raw: RawWsClient }) => Promise<void>,
): Promise<void> {
  const server = await startWsServer({ users: USERS, args });
  const raw = await RawWsClient.connect(server.wsPort);
  try {
    await body({ server, pid: server.process.pid, raw });
  } finally {
    raw.close();
    await server.stop();
  }
}

function port(conn: Deno.Conn): number {
  return (conn.localAddr as Deno.NetAddr).port;
}

Deno.test("hostile ws: 16 fragments of 8 MiB in one message: 9:?:too-long, memory bounded, socket closed", async () => {
  await withRawWs([], async ({ server, pid, raw }) => {
    const before = rssKiB(pid);
    const peak = watchPeakRss(pid);
    const sent = await sendFragments(raw.conn, FRAGMENTS, FRAGMENT_BYTES);
    await waitFor(
      () => !holdsSocket(pid, server.wsPort, port(raw.conn)),
      "the server to close the socket",
      CLOSE_TIMEOUT_MS + CLOSE_MARGIN_MS,
    );
    const growth = peak.stop() - before;
    console.log(`fragments: sent ${(sent / 2 ** 20).toFixed(0)} MiB, RSS +${growth} KiB`);
    assert.ok(growth < GROWTH_BOUND_KIB, `RSS grew ${growth} KiB`);
    assert.equal(await raw.next(), "9:?:too-long");
    assert.match(server.log(), /closing address=127\.0\.0\.1 why="?line too long/);
  });
});

Deno.test("hostile ws: data sent after the server's close is not held, and the socket is gone within 5 s", async () => {
  await withRawWs(["--login-timeout-ms", "500"], async ({ server, pid, raw }) => {
    assert.equal(await raw.next(), null); // the login timeout's close frame; never answered
    const closedAt = Date.now();
    const before = rssKiB(pid);
    const peak = watchPeakRss(pid);
    const sending = sendFragments(raw.conn, FRAGMENTS, FRAGMENT_BYTES);
    await waitFor(
      () => !holdsSocket(pid, server.wsPort, port(raw.conn)),
      "the server to end the socket",
      CLOSE_TIMEOUT_MS + CLOSE_MARGIN_MS,
    );
    const goneAfter = Date.now() - closedAt;
    const sent = await sending;
    const growth = peak.stop() - before;
    console.log(
      `after close: sent ${(sent / 2 ** 20).toFixed(0)} MiB, socket gone in ${goneAfter} ms, ` +
        `RSS +${growth} KiB`,
    );
    assert.ok(growth < GROWTH_BOUND_KIB, `RSS grew ${growth} KiB`);
  });
});

Deno.test("hostile ws: 1M empty frames sent while a login is pending: memory bounded, then served", async () => {
  await withRawWs(["--hash-cost", "14"], async ({ pid, raw }) => {
    // Unknown users first, each a hash at --hash-cost 14, so what checks cost is in the baseline.
    for (let i = 0; i < 5; i++) await raw.send("0:nobody:x");
    for (let i = 0; i < 5; i++) assert.equal(await raw.next(20_000), "0:-1");
    const before = rssKiB(pid);
    const peak = watchPeakRss(pid);
    // The sixth failure in a row waits a second (the failed-login slowdown), then hashes: the
    // login is pending while the frames arrive.
    await raw.send("0:nobody:x");
    const flood = emptyFrames(1_000_000);
    assert.ok(await writeOrGone(raw.conn, flood));
    await raw.send("0:alice:wonderland");
    assert.equal(await raw.next(20_000), "0:-1");
    assert.match((await raw.next(20_000)) ?? "", /^0:[1-9]\d*$/);
    const growth = peak.stop() - before;
    console.log(`empty frames: ${flood.length} bytes, RSS +${growth} KiB`);
    assert.ok(growth < GROWTH_BOUND_KIB, `RSS grew ${growth} KiB`);
  });
});

Deno.test("hostile ws: pings whose pongs are never read drop the client at --max-pending-bytes; socket gone within 5 s", async () => {
  await withRawWs(["--max-pending-bytes", "65536"], async ({ server, pid, raw }) => {
    const before = rssKiB(pid);
    const peak = watchPeakRss(pid);
    // 125-byte pings, never reading: kernel buffers fill, then the pongs pass the bound.
    const ping = new Uint8Array([0x89, 0x80 | 125, 0, 0, 0, 0, ...new Uint8Array(125)]);
    const pings = new Uint8Array(ping.length * 8192);
    for (let i = 0; i < 8192; i++) pings.set(ping, i * ping.length);
    let sentAt = Date.now();
    const stopAt = sentAt + 15_000; // a server that never reads must not hang the test
    for (let i = 0; i < 200 && await writeBefore(raw.conn, pings, stopAt); i++) sentAt = Date.now();
    await waitFor(() => /slow-consumer/.test(server.log()), "the slow-consumer drop");
    await waitFor(
      () => !holdsSocket(pid, server.wsPort, port(raw.conn)),
      "the server to end the socket",
      CLOSE_TIMEOUT_MS + CLOSE_MARGIN_MS,
    );
    const growth = peak.stop() - before;
    console.log(
      `pings: socket gone ${Date.now() - sentAt} ms after the last write, RSS +${growth} KiB`,
    );
    assert.ok(growth < GROWTH_BOUND_KIB, `RSS grew ${growth} KiB`);
    // The server goes on serving others.
    const other = await RawWsClient.connect(server.wsPort);
    await writeOrGone(other.conn, textFrame("0:bob:builder"));
    assert.match((await other.next()) ?? "", /^0:[1-9]\d*$/);
    other.close();
  });
});
