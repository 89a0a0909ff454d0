/**
 * The hub's side of v1.1 (docs/protocol.md): `8:` answered at any time, `6:` logins checked by
 * the edge's checkResume like a password, `7:busy` before the `0:-1` of a login the edge could
 * not check, `7:replaced`/`7:removed` before a kick, and the `from` form of room runs made once
 * for all recipients.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Hub, type HubResults, type HubWork } from "../lib/hub/hub.ts";
import { parseCommand } from "../lib/protocol/codec.ts";
import { RecordingPeer } from "./hub_support.ts";

const encoder = new TextEncoder();

/** A hub whose edge answers only when the test says, recording what it was asked. */
function manualHub() {
  const asked: { kind: string; ticket: number; user: string; secret: string }[] = [];
  const edge: { results?: HubResults } = {};
  const work: HubWork = {
    checkLogin: (ticket, user, password) =>
      asked.push({ kind: "login", ticket, user, secret: new TextDecoder().decode(password) }),
    checkResume: (ticket, user, token) =>
      asked.push({ kind: "resume", ticket, user, secret: token }),
    claim() {},
    storeRoom() {},
    checkRoomPassword() {},
  };
  const hub = new Hub({ work: (results) => (edge.results = results, work) });
  const results = () => edge.results!;
  return { hub, asked, results };
}

/** Hands `line` to the hub for `peer`; whether it finished at once. */
function handle(hub: Hub, peer: RecordingPeer, line: string): boolean {
  const command = parseCommand(encoder.encode(line));
  assert.ok(command !== null);
  return hub.handle(peer, command);
}

Deno.test("hub v1.1: 8: is answered before a login, 9:8:malformed too", () => {
  const { hub } = manualHub();
  const peer = new RecordingPeer("p");
  hub.connect(peer);
  assert.equal(handle(hub, peer, "8:why,nope"), true);
  assert.equal(handle(hub, peer, "8:x,,y"), true);
  assert.equal(handle(hub, peer, "3:0:hi"), true);
  assert.deepEqual(peer.take(), ["8:why", "9:8:malformed", "0:-1"]);
});

Deno.test("hub v1.1: 6: goes to checkResume; accepted, it starts a session like a password", () => {
  const { hub, asked, results } = manualHub();
  const peer = new RecordingPeer("p");
  hub.connect(peer);
  assert.equal(handle(hub, peer, "6:alice:abcdefghijklmnopq"), false);
  assert.deepEqual(asked, [{
    kind: "resume",
    ticket: 1,
    user: "alice",
    secret: "abcdefghijklmnopq",
  }]);
  results().resumeChecked(1, true);
  assert.deepEqual(peer.take(), ["0:1", "@started:alice"]);
});

Deno.test("hub v1.1: a refused or malformed 6: is a failed login", async () => {
  const { hub, results } = manualHub();
  const peer = new RecordingPeer("p");
  hub.connect(peer);
  assert.equal(handle(hub, peer, "6:alice:abcdefghijklmnopq"), false);
  results().resumeChecked(1, false);
  assert.equal(handle(hub, peer, "6:alice:short"), true);
  assert.equal(handle(hub, peer, "6:al ice:abcdefghijklmnopq"), true);
  assert.deepEqual(peer.take(), [
    "0:-1",
    "@ended:login-failed",
    "0:-1",
    "@ended:login-failed",
    "0:-1",
    "@ended:login-failed",
  ]);
  // Without checkResume (an edge that has no tokens) every token is refused.
  const bare = new Hub({
    work: () => ({ checkLogin() {}, claim() {}, storeRoom() {}, checkRoomPassword() {} }),
  });
  const other = new RecordingPeer("o");
  bare.connect(other);
  const done = other.nextDone();
  assert.equal(handle(bare, other, "6:alice:abcdefghijklmnopq"), false);
  await done;
  assert.deepEqual(other.take(), ["0:-1", "@ended:login-failed"]);
});

Deno.test("hub v1.1: with why, a login the edge could not check gets 7:busy first", () => {
  const { hub, results } = manualHub();
  const why = new RecordingPeer("why");
  const v1 = new RecordingPeer("v1");
  hub.connect(why);
  hub.connect(v1);
  handle(hub, why, "8:why");
  why.take();
  handle(hub, why, "0:alice:pw");
  handle(hub, v1, "6:bob:abcdefghijklmnopq");
  results().loginChecked(1, "busy");
  results().resumeChecked(2, "busy");
  assert.deepEqual(why.take(), ["7:busy", "0:-1", "@ended:login-busy"]);
  assert.deepEqual(v1.take(), ["0:-1", "@ended:login-busy"]); // v1: byte for byte
});

Deno.test("hub v1.1: with why, kicks say replaced and removed first", () => {
  const { hub, results } = manualHub();
  const first = new RecordingPeer("first");
  const second = new RecordingPeer("second");
  hub.connect(first);
  hub.connect(second);
  handle(hub, first, "8:why");
  handle(hub, first, "0:alice:pw");
  results().loginChecked(1, true);
  first.take();
  handle(hub, second, "8:why");
  handle(hub, second, "0:alice:pw");
  results().loginChecked(2, true);
  assert.deepEqual(first.take(), ["7:replaced", "0:-1", "@ended:replaced"]);
  hub.removeUser("alice");
  assert.deepEqual(second.take().slice(-3), ["7:removed", "0:-1", "@ended:removed"]);
});

Deno.test("hub v1.1: a room run is encoded once per form, whatever the recipients", () => {
  const work: HubWork = {
    checkLogin() {},
    claim() {},
    storeRoom() {},
    checkRoomPassword() {},
  };
  const edge: { results?: HubResults } = {};
  const tasks: (() => void)[] = [];
  const hub = new Hub({
    work: (results) => (edge.results = results, work),
    schedule: (task) => tasks.push(task),
  });
  hub.loadRooms([{ name: "lobby", passwordHash: null }]);
  const peers = ["a", "b", "c", "d"].map((name) => new RecordingPeer(name));
  peers.forEach((peer, i) => {
    hub.connect(peer);
    if (i % 2 === 0) handle(hub, peer, "8:from");
    handle(hub, peer, `0:${peer.label}:pw`);
    edge.results!.loginChecked(i + 1, true);
    handle(hub, peer, "2:lobby");
  });
  for (const peer of peers) peer.take();
  const chunks = peers.map((peer) => {
    const sent: Uint8Array[] = [];
    const record = peer.send.bind(peer);
    peer.send = (lines) => (sent.push(lines), record(lines));
    return sent;
  });
  handle(hub, peers[1], "3:0:one");
  handle(hub, peers[3], "3:0:two");
  hub.flush();
  const from = peers[0].raw.map((line) => new TextDecoder().decode(line));
  assert.deepEqual(from, ["3:lobby:b:one\n", "3:lobby:d:two\n"]);
  assert.deepEqual(peers[1].take(), ["3:one", "3:two"]);
  assert.deepEqual(peers[2].take(), ["3:lobby:b:one", "3:lobby:d:two"]);
  // One run, one send each: the same bytes for every member asking for the same form.
  assert.deepEqual(chunks.map((c) => c.length), [1, 1, 1, 1]);
  assert.equal(chunks[0][0], chunks[2][0]);
  assert.equal(chunks[1][0], chunks[3][0]);
});
