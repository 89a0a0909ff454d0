// Unit tests of lib/hub/hub.ts, driven directly with recording peers, on the real SQLite store (in
// memory) and the real scrypt hasher at a low cost. One scenario or more per rule of the
// Sessions, Rooms and Messages sections of docs/protocol.md.
import assert from "node:assert/strict";
import { parseCommand } from "../lib/protocol/codec.ts";
import { Hub } from "../lib/hub/hub.ts";
import { hubEdge } from "../lib/server/hub_edge.ts";
import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import {
  hasher,
  inRoom,
  loggedIn,
  makeHub,
  RecordingPeer,
  send,
  type TestHubOptions,
  USERS,
  withHub,
} from "./hub_support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/**
 * One step of a scenario: a connection sends a line (or `!close` to disconnect; connection `hub`
 * runs an operator call: `removeUser NAME`, `removeRoom NAME`, `logoutAll`), then every
 * connection must have received exactly what `expect` lists for it (nothing if not listed).
 */
type Step = [conn: string, line: string, expect: Record<string, string[]>];

interface Scenario {
  rule: string;
  options?: TestHubOptions;
  /** Lines sent before the steps, their replies discarded (`[conn, line]`). */
  setup?: [string, string][];
  steps: Step[];
}

async function runScenario(scenario: Scenario): Promise<void> {
  const { hub, store, errors } = await makeHub(scenario.options);
  const peers = new Map<string, RecordingPeer>();
  const peer = (label: string) => {
    let p = peers.get(label);
    if (p === undefined) {
      p = new RecordingPeer(label);
      peers.set(label, p);
      hub.connect(p);
    }
    return p;
  };
  const act = async (conn: string, line: string) => {
    if (conn === "hub") {
      const [op, arg] = line.split(" ");
      if (op === "removeUser") hub.removeUser(arg);
      else if (op === "removeRoom") {
        await store.removeRoom(arg); // as the server does: the store first, then the hub
        hub.removeRoom(arg);
      } else if (op === "logoutAll") hub.logoutAll();
      else throw new Error(`unknown hub op ${op}`);
    } else if (line === "!close") {
      hub.disconnect(peer(conn));
    } else {
      await send(hub, peer(conn), line);
    }
  };
  try {
    for (const [conn, line] of scenario.setup ?? []) await act(conn, line);
    for (const p of peers.values()) p.take();
    for (const [i, [conn, line, expect]] of scenario.steps.entries()) {
      for (const label of Object.keys(expect)) peer(label);
      await act(conn, line);
      for (const [label, p] of peers) {
        assert.deepEqual(
          p.take(),
          expect[label] ?? [],
          `step ${i + 1} (${conn}: ${line}): what ${label} got`,
        );
      }
    }
    assert.deepEqual(errors, [], "no server errors");
  } finally {
    await store.close();
  }
}

/** Logs `conn` in as `user` (setup shorthand). */
const login = (conn: string, user: string): [string, string] => [conn, `0:${user}:pw`];
/** Logs each user in on the connection named by its first letter (alice on a, Zed on z). */
const logins = (...users: string[]) => users.map((user) => login(user[0].toLowerCase(), user));
/** Has each connection join `room` (`name` or `name:password`), in order. */
const joins = (room: string, ...conns: string[]) =>
  conns.map((conn): [string, string] => [conn, `2:${room}`]);
/** The most common setup: alice on a and bob on b, both in lobby. */
const ALICE_AND_BOB_IN_LOBBY = [...logins("alice", "bob"), ...joins("lobby", "a", "b")];

const SCENARIOS: Scenario[] = [
  // ---- Sessions
  {
    rule: "login replies 0:<id>; ids are positive and increase",
    steps: [
      ["a", "0:alice:pw", { a: ["0:1", "@started:alice"] }],
      ["b", "0:bob:pw", { b: ["0:2", "@started:bob"] }],
      ["c", "0:carol:pw", { c: ["0:3", "@started:carol"] }],
      ["a", "0:dave:pw", { a: ["0:4", "@started:dave"] }],
      ["a", "0:dave:pw", { a: ["0:5", "@started:dave"] }],
    ],
  },
  {
    rule: "a new login on the same connection ends the old session (5: to its room)",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "0:carol:pw", { a: ["0:3", "@started:carol"], b: ["5:lobby:alice"] }],
      ["a", "3:0:x", { a: ["9:3:not-in-room"] }], // the new session is in no room
      ["b", "3:2:alice:carol:x", { a: ["3:x"], b: ["9:3:not-online:alice"] }],
      ["b", "1", { b: ["1:lobby,bob"] }],
    ],
  },
  {
    rule: "logging in again as the same user on the same connection starts a new session",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "0:alice:pw", { a: ["0:3", "@started:alice"], b: ["5:lobby:alice"] }],
      ["b", "3:2:alice:x", { a: ["3:x"] }],
    ],
  },
  {
    rule: "a login elsewhere kicks the old session: 0:-1, 5: to its room, connection stays open",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      [
        "a2",
        "0:alice:pw",
        { a: ["0:-1", "@ended:replaced"], b: ["5:lobby:alice"], a2: ["0:3", "@started:alice"] },
      ],
      ["a", "3:0:still there?", { a: ["0:-1"] }],
      ["b", "3:0:hi", { b: ["3:hi"] }], // alice is no longer in lobby
      ["b", "3:2:alice:hi", { a2: ["3:hi"] }], // alice is the new connection
      ["a2", "2:lobby", { a2: ["2:lobby:alice,bob"], b: ["4:lobby:alice"] }],
      // The kicked connection can log in again, kicking the newer one in turn.
      [
        "a",
        "0:alice:pw",
        { a: ["0:4", "@started:alice"], a2: ["0:-1", "@ended:replaced"], b: ["5:lobby:alice"] },
      ],
    ],
  },
  {
    rule: "a failed login replies 0:-1 (wrong password, unknown user, malformed)",
    steps: [
      ["a", "0:alice:wrong", { a: ["0:-1", "@ended:login-failed"] }],
      ["a", "0:nobody:pw", { a: ["0:-1", "@ended:login-failed"] }],
      ["a", "0:alice", { a: ["0:-1", "@ended:login-failed"] }],
      ["a", "0:alice:", { a: ["0:-1", "@ended:login-failed"] }],
      ["a", "0:bad name:pw", { a: ["0:-1", "@ended:login-failed"] }],
      ["a", "0", { a: ["0:-1", "@ended:login-failed"] }],
      ["a", "0:ALICE:pw", { a: ["0:-1", "@ended:login-failed"] }], // names are case-sensitive
      ["a", "0:alice:pw", { a: ["0:1", "@started:alice"] }],
    ],
  },
  {
    rule: "a failed login ends the connection's session (5: to its room) and kicks no one else",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "0:bob:wrong", { a: ["0:-1", "@ended:login-failed"], b: ["5:lobby:alice"] }],
      ["a", "3:0:x", { a: ["0:-1"] }],
      ["b", "3:2:alice:bob:x", { b: ["3:x", "9:3:not-online:alice"] }],
    ],
  },
  {
    rule: "a malformed login line also ends the connection's session",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "0:alice:", { a: ["0:-1", "@ended:login-failed"], b: ["5:lobby:alice"] }],
      ["a", "1", { a: ["0:-1"] }],
    ],
  },
  {
    rule: "1, 2 and 3 lines before a login get 0:-1, even malformed ones",
    steps: [
      ["a", "1", { a: ["0:-1"] }],
      ["a", "1:password", { a: ["0:-1"] }],
      ["a", "2:lobby", { a: ["0:-1"] }],
      ["a", "2:lobby:pw", { a: ["0:-1"] }],
      ["a", "2", { a: ["0:-1"] }],
      ["a", "2:", { a: ["0:-1"] }],
      ["a", "2:a b", { a: ["0:-1"] }],
      ["a", "3:0:hi", { a: ["0:-1"] }],
      ["a", "3:1:hi", { a: ["0:-1"] }],
      ["a", "3:2:bob:hi", { a: ["0:-1"] }],
      ["a", "3", { a: ["0:-1"] }],
      ["a", "3:9:x", { a: ["0:-1"] }],
      ["a", "3:2::hi", { a: ["0:-1"] }],
      // Nothing was created by the join attempts.
      ["a", "0:alice:pw", { a: ["0:1", "@started:alice"] }],
      ["a", "1", { a: ["1:"] }],
    ],
  },
  {
    rule: "an unknown code before a login gets 9:?:malformed",
    steps: [
      ["a", "4", { a: ["9:?:malformed"] }],
      ["a", "10:x", { a: ["9:?:malformed"] }],
      ["a", "hello", { a: ["9:?:malformed"] }],
    ],
  },
  {
    rule: "after a kick or a failed login, commands get 0:-1 again",
    setup: [...logins("alice"), login("a2", "alice"), ["b", "0:bob:nope"]],
    steps: [
      ["a", "2:lobby", { a: ["0:-1"] }],
      ["b", "3:0:hi", { b: ["0:-1"] }],
    ],
  },
  {
    rule: "malformed commands after a login get 9:<code>:malformed or the codec's reason",
    setup: [...logins("alice")],
    steps: [
      ["a", "4", { a: ["9:?:malformed"] }],
      ["a", "2", { a: ["9:2:malformed"] }],
      ["a", "2:r:a:b", { a: ["9:2:malformed"] }],
      ["a", "2:", { a: ["9:2:bad-name"] }],
      ["a", "2:a,b", { a: ["9:2:bad-name"] }],
      ["a", "3:9:x", { a: ["9:3:malformed"] }],
      ["a", "3:2:hi", { a: ["9:3:malformed"] }],
      ["a", "3:2::hi", { a: ["9:3:malformed"] }],
    ],
  },
  {
    rule: "closing the connection ends its session (5: to its room)",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "!close", { b: ["5:lobby:alice"] }],
      ["b", "3:2:alice:x", { b: ["9:3:not-online:alice"] }],
      ["b", "1", { b: ["1:lobby,bob"] }],
      ["c", "!close", {}], // a connection with no session tells no one
      ["a2", "0:alice:pw", { a2: ["0:3", "@started:alice"] }], // no one to kick
    ],
  },

  // ---- Rooms
  {
    rule: "the room list is 1: when there are no rooms",
    setup: [...logins("alice")],
    steps: [["a", "1", { a: ["1:"] }], ["a", "1:anything", { a: ["1:"] }]],
  },
  {
    rule: "the room list is sorted by byte order, members sorted, empty rooms listed",
    setup: [
      login("a", "alice"),
      login("b", "bob"),
      login("c", "carol"),
      login("z", "Zed"),
      ["c", "2:zeta"],
      ["b", "2:alpha"],
      ["z", "2:alpha"],
      ["a", "2:alpha"],
      ["a", "2:\u{1F600}"], // sorts before U+FF61 in UTF-16, after it in byte order
      ["a", "2:\uFF61"],
      ["a", "2:Beta"],
      ["a", "2:alpha"],
      ["c", "2:alpha"],
    ],
    steps: [
      ["a", "1", { a: ["1:Beta:alpha,Zed,alice,bob,carol:zeta:\uFF61:\u{1F600}"] }],
      ["a", "1:password", { a: ["1:Beta:alpha,Zed,alice,bob,carol:zeta:\uFF61:\u{1F600}"] }],
    ],
  },
  {
    rule: "the room list shows public rooms only (a room with a password is not public)",
    setup: [...logins("alice", "bob"), ...joins("vault:key", "a"), ...joins("pub", "b")],
    steps: [["a", "1", { a: ["1:pub,bob"] }]],
  },
  {
    rule: "joining creates the room: 2: to the joiner (sorted, self included), 4: to the others",
    setup: [...logins("alice", "bob", "carol", "Zed")],
    steps: [
      ["b", "2:lobby", { b: ["2:lobby:bob"] }],
      ["c", "2:lobby", { c: ["2:lobby:bob,carol"], b: ["4:lobby:carol"] }],
      ["a", "2:lobby", {
        a: ["2:lobby:alice,bob,carol"],
        b: ["4:lobby:alice"],
        c: ["4:lobby:alice"],
      }],
      [
        "z",
        "2:lobby",
        {
          z: ["2:lobby:Zed,alice,bob,carol"],
          a: ["4:lobby:Zed"],
          b: ["4:lobby:Zed"],
          c: ["4:lobby:Zed"],
        },
      ],
    ],
  },
  {
    rule: "joining another room leaves the old one: 5: to the old room, 4: to the new",
    setup: [...logins("alice", "bob", "carol"), ...joins("lobby", "a", "b"), ...joins("den", "c")],
    steps: [
      ["a", "2:den", { a: ["2:den:alice,carol"], c: ["4:den:alice"], b: ["5:lobby:alice"] }],
      ["b", "2:den", { b: ["2:den:alice,bob,carol"], a: ["4:den:bob"], c: ["4:den:bob"] }], // lobby now empty: no 5:
      ["a", "1", { a: ["1:den,alice,bob,carol:lobby"] }],
      ["a", "3:1:hi", { b: ["3:hi"], c: ["3:hi"] }],
    ],
  },
  {
    rule: "joining the room you are in repeats the 2: reply and tells no one",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "2:lobby", { a: ["2:lobby:alice,bob"] }],
      ["a", "2:lobby:", { a: ["2:lobby:alice,bob"] }],
      ["a", "1", { a: ["1:lobby,alice,bob"] }],
    ],
  },
  {
    rule: "room passwords: wrong or missing gets 9:2:room-password and the user stays put",
    setup: [
      ...logins("alice", "bob", "carol"),
      ...joins("vault:key", "a"),
      ...joins("lobby", "b", "c"),
    ],
    steps: [
      ["b", "2:vault", { b: ["9:2:room-password"] }],
      ["b", "2:vault:", { b: ["9:2:room-password"] }],
      ["b", "2:vault:wrong", { b: ["9:2:room-password"] }],
      ["b", "2:vault:KEY", { b: ["9:2:room-password"] }],
      ["b", "2:vault:key2", { b: ["9:2:room-password"] }],
      ["b", "2:vault:ke", { b: ["9:2:room-password"] }],
      ["b", "3:1:still in lobby", { c: ["3:still in lobby"] }],
      ["b", "2:vault:key", { b: ["2:vault:alice,bob"], a: ["4:vault:bob"], c: ["5:lobby:bob"] }],
    ],
  },
  {
    rule: "a public room's password is empty: a non-empty one is refused",
    setup: [...logins("alice", "bob"), ...joins("lobby", "a")],
    steps: [
      ["b", "2:lobby:x", { b: ["9:2:room-password"] }],
      ["b", "2:lobby:", { b: ["2:lobby:alice,bob"], a: ["4:lobby:bob"] }],
    ],
  },
  {
    rule: "the room password is checked on every join, the room you are in included",
    setup: [...logins("alice", "bob"), ...joins("vault:key", "a", "b")],
    steps: [
      ["a", "2:vault", { a: ["9:2:room-password"] }],
      ["a", "2:vault:nope", { a: ["9:2:room-password"] }],
      ["a", "3:1:still here", { b: ["3:still here"] }],
      ["a", "2:vault:key", { a: ["2:vault:alice,bob"] }],
      ["b", "2:lobby:x", { b: ["2:lobby:bob"], a: ["5:vault:bob"] }], // creating sets the password
      ["b", "2:lobby", { b: ["9:2:room-password"] }],
    ],
  },
  {
    rule: "the number of rooms is capped: 9:2:room-limit, and the user stays where it was",
    options: { maxRooms: 2 },
    setup: [...logins("alice", "bob"), ...joins("r1", "b")],
    steps: [
      ["a", "2:r2", { a: ["2:r2:alice"] }],
      ["a", "2:r3", { a: ["9:2:room-limit"] }],
      ["a", "3:0:in r2", { a: ["3:in r2"] }],
      ["a", "2:r1", { a: ["2:r1:alice,bob"], b: ["4:r1:alice"] }], // existing rooms still join
      ["a", "1", { a: ["1:r1,alice,bob:r2"] }],
    ],
  },
  {
    rule: "with a cap of 0 rooms no room can be made",
    options: { maxRooms: 0 },
    setup: [...logins("alice")],
    steps: [["a", "2:lobby", { a: ["9:2:room-limit"] }], ["a", "1", { a: ["1:"] }]],
  },
  {
    rule: "the operator removing a room: every member gets 5: for each member, and it is gone",
    setup: [...logins("alice", "bob", "carol"), ...joins("lobby", "a", "b"), ...joins("den", "c")],
    steps: [
      ["hub", "removeRoom lobby", {
        a: ["5:lobby:alice", "5:lobby:bob"],
        b: ["5:lobby:alice", "5:lobby:bob"],
      }],
      ["a", "3:0:x", { a: ["9:3:not-in-room"] }],
      ["a", "1", { a: ["1:den,carol"] }],
      ["hub", "removeRoom nosuch", {}],
      ["a", "2:lobby", { a: ["2:lobby:alice"] }], // can be made anew
    ],
  },
  {
    rule: "the operator removing a user logs it out with 0:-1 (5: to its room)",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["hub", "removeUser alice", { a: ["0:-1", "@ended:removed"], b: ["5:lobby:alice"] }],
      ["a", "1", { a: ["0:-1"] }],
      ["b", "3:2:alice:x", { b: ["9:3:not-online:alice"] }],
      ["hub", "removeUser nobody", {}],
      ["hub", "removeUser carol", {}], // exists, not online
    ],
  },

  // ---- Messages
  {
    rule: "3:0 goes to everyone in my room, me included; 3:1 to everyone but me",
    setup: [
      ...logins("alice", "bob", "carol", "dave"),
      ...joins("lobby", "a", "b", "c"),
      ...joins("den", "d"),
    ],
    steps: [
      ["a", "3:0:hello", { a: ["3:hello"], b: ["3:hello"], c: ["3:hello"] }],
      ["a", "3:1:hello", { b: ["3:hello"], c: ["3:hello"] }],
      ["d", "3:0:alone", { d: ["3:alone"] }],
      ["d", "3:1:alone", {}],
    ],
  },
  {
    rule: "an empty message is allowed in every mode (3:0: delivers 3:)",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "3:0:", { a: ["3:"], b: ["3:"] }],
      ["a", "3:1:", { b: ["3:"] }],
      ["a", "3:2:bob:", { b: ["3:"] }],
    ],
  },
  {
    rule: "message text is delivered unchanged (colons, spaces)",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "3:1: a:b::c: ", { b: ["3: a:b::c: "] }],
      ["a", "3:2:bob: x ", { b: ["3: x "] }],
    ],
  },
  {
    rule: "3:0 and 3:1 outside a room get 9:3:not-in-room",
    setup: [...logins("alice", "bob"), ...joins("lobby", "b")],
    steps: [
      ["a", "3:0:hi", { a: ["9:3:not-in-room"] }],
      ["a", "3:1:hi", { a: ["9:3:not-in-room"] }],
      ["a", "3:2:bob:hi", { b: ["3:hi"] }], // 3:2 needs no room
    ],
  },
  {
    rule: "3:2 delivers to each listed online user wherever they are, each once",
    setup: [...logins("alice", "bob", "carol"), ...joins("lobby", "b"), ...joins("den", "c")],
    steps: [
      ["a", "3:2:bob:carol:hi", { b: ["3:hi"], c: ["3:hi"] }],
      ["a", "3:2:bob:bob:carol:bob:hi", { b: ["3:hi"], c: ["3:hi"] }],
      ["a", "3:2:alice:hi", { a: ["3:hi"] }], // the sender too, if listed
      ["a", "3:2:alice:bob:alice:hi", { a: ["3:hi"], b: ["3:hi"] }],
      ["a", "3:2:bob:a:b:c", { b: ["3:c"], a: ["9:3:not-online:a,b"] }], // body after the LAST ':'
    ],
  },
  {
    rule: "3:2 names the users not online in one line, in the order listed, each once",
    setup: [...logins("alice", "bob")],
    steps: [
      [
        "a",
        "3:2:dave:bob:nobody:dave:Zed:nobody:carol:hi",
        { b: ["3:hi"], a: ["9:3:not-online:dave,nobody,Zed,carol"] },
      ],
      // Unknown users are reported exactly like known offline ones.
      ["a", "3:2:carol:hi", { a: ["9:3:not-online:carol"] }],
      ["a", "3:2:ghost:hi", { a: ["9:3:not-online:ghost"] }],
      ["a", "3:2:no body:hi", { a: ["9:3:not-online:no body"] }],
    ],
  },
  {
    rule: "3:2 with more distinct targets than the cap: too-many-targets, nothing delivered",
    options: { maxTargets: 3 },
    setup: [...logins("alice", "bob", "carol", "dave")],
    steps: [
      ["a", "3:2:bob:carol:dave:Zed:hi", { a: ["9:3:too-many-targets"] }],
      ["a", "3:2:bob:carol:dave:ghost:hi", { a: ["9:3:too-many-targets"] }],
      // Exactly the cap, duplicates not counted: delivered.
      ["a", "3:2:bob:carol:dave:bob:carol:hi", { b: ["3:hi"], c: ["3:hi"], d: ["3:hi"] }],
      ["a", "3:2:bob:carol:Zed:hi", { b: ["3:hi"], c: ["3:hi"], a: ["9:3:not-online:Zed"] }],
    ],
  },
  {
    rule: "--stamp-sender delivers 3:<sender>:<message> in every mode",
    options: { stampSender: true },
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [
      ["a", "3:0:hi", { a: ["3:alice:hi"], b: ["3:alice:hi"] }],
      ["a", "3:1:a:b", { b: ["3:alice:a:b"] }],
      ["b", "3:2:alice:bob:", { a: ["3:bob:"], b: ["3:bob:"] }],
    ],
  },
  {
    rule: "without --stamp-sender the sender is not named",
    setup: ALICE_AND_BOB_IN_LOBBY,
    steps: [["a", "3:1:hi", { b: ["3:hi"] }]],
  },
];

for (const scenario of SCENARIOS) {
  Deno.test(`hub: ${scenario.rule}`, () => runScenario(scenario));
}

// ---------------------------------------------------------------------------------------------
// Rules that need more than a list of steps.

Deno.test("hub: session ids stay unique and increasing across many logins and kicks", () =>
  withHub({}, async ({ hub, errors }) => {
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      const peer = new RecordingPeer(`p${i}`);
      hub.connect(peer);
      await send(hub, peer, `0:${USERS[i % USERS.length]}:pw`);
      const reply = peer.take().find((l) => l.startsWith("0:"))!;
      ids.push(Number(reply.slice(2)));
      if (i % 3 === 0) hub.disconnect(peer);
    }
    assert.ok(ids.every((id) => Number.isSafeInteger(id) && id > 0));
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `${ids}`);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(errors, []);
  }));

Deno.test("hub: the counts follow connections, sessions and rooms", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const idle = new RecordingPeer("idle");
    hub.connect(idle);
    assert.equal(hub.connectionCount, 2);
    assert.equal(hub.sessionCount, 1);
    await send(hub, a, "2:lobby");
    assert.equal(hub.roomCount, 1);
    assert.ok(hub.hasRoom("lobby"));
    hub.disconnect(a);
    assert.equal(hub.connectionCount, 1);
    assert.equal(hub.sessionCount, 0);
    assert.equal(hub.roomCount, 1); // rooms outlive emptiness
  }));

Deno.test("hub: rooms are stored when created, public with no hash, private with a hash", () =>
  withHub({}, async ({ hub, store, errors }) => {
    const a = await loggedIn(hub, "alice");
    await send(hub, a, "2:lobby");
    await send(hub, a, "2:vault:key");
    await send(hub, a, "2:lobby"); // joining an existing room writes nothing
    await send(hub, a, "2:日本");
    const rooms = await store.listRooms();
    assert.deepEqual(rooms.map((r) => r.name), ["lobby", "vault", "日本"]);
    assert.equal(rooms[0].passwordHash, null);
    const hash = rooms[1].passwordHash;
    assert.ok(hash !== null && hash.startsWith("scrypt$"));
    assert.ok(!hash.includes("key"), "the room password is not stored in plain text");
    assert.equal(await hasher.verify(encoder.encode("key"), hash), true);
    assert.equal(await hasher.verify(encoder.encode("nope"), hash), false);
    assert.deepEqual(errors, []);
  }));

Deno.test("hub: a room is answered only after it is in the store", () =>
  withHub({}, async ({ hub, store }) => {
    const a = await loggedIn(hub, "alice");
    const original = store.addRoom.bind(store);
    let storedBeforeReply = false;
    store.addRoom = async (name, hash) => {
      await original(name, hash);
      storedBeforeReply = a.log.length === 0;
    };
    await send(hub, a, "2:lobby");
    assert.ok(storedBeforeReply);
    assert.deepEqual(a.take(), ["2:lobby:alice"]);
  }));

Deno.test("hub: a room the store fails to write is not made, and the error is reported", () =>
  withHub({}, async ({ hub, store, errors }) => {
    const a = await loggedIn(hub, "alice");
    store.addRoom = () => Promise.reject(new Error("disk full"));
    await send(hub, a, "2:lobby");
    assert.deepEqual(a.take(), ["9:2:server-error"]);
    assert.equal(hub.hasRoom("lobby"), false);
    assert.equal(errors.length, 1);
  }));

Deno.test("hub: loadRooms makes stored rooms listable and joinable with their passwords", () =>
  withHub({}, async ({ hub, store, errors }) => {
    await store.addRoom("r4", null);
    await store.addRoom("vault", await hasher.hash(encoder.encode("key")));
    hub.loadRooms(await store.listRooms());
    hub.loadRooms(await store.listRooms()); // loading again adds nothing
    assert.equal(hub.roomCount, 2);
    const a = await loggedIn(hub, "alice");
    await send(hub, a, "1");
    assert.deepEqual(a.take(), ["1:r4"]); // the room list shows public rooms only
    await send(hub, a, "2:vault");
    await send(hub, a, "2:vault:key");
    await send(hub, a, "2:r4");
    assert.deepEqual(a.take(), ["9:2:room-password", "2:vault:alice", "2:r4:alice"]);
    assert.equal((await store.listRooms()).length, 2);
    assert.deepEqual(errors, []); // no duplicate insert was attempted
  }));

Deno.test("hub: loaded rooms count toward the room cap", () =>
  withHub({ maxRooms: 1 }, async ({ hub, store }) => {
    await store.addRoom("old", null);
    hub.loadRooms(await store.listRooms());
    const a = await loggedIn(hub, "alice");
    await send(hub, a, "2:new");
    await send(hub, a, "2:old");
    assert.deepEqual(a.take(), ["9:2:room-limit", "2:old:alice"]);
  }));

Deno.test("hub: two joiners creating the same room at once end up in one room, stored once", () =>
  withHub({}, async ({ hub, store, errors }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    await Promise.all([send(hub, a, "2:new:key"), send(hub, b, "2:new:key")]);
    assert.deepEqual(a.take(), ["2:new:alice", "4:new:bob"]);
    assert.deepEqual(b.take(), ["2:new:alice,bob"]);
    assert.deepEqual((await store.listRooms()).map((r) => r.name), ["new"]);
    assert.equal(hub.roomCount, 1);
    assert.deepEqual(errors, []);
  }));

Deno.test("hub: a joiner racing the creator must still give the creator's password", () =>
  withHub({}, async ({ hub, store, errors }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const c = await loggedIn(hub, "carol");
    await Promise.all([
      send(hub, a, "2:new:key"),
      send(hub, b, "2:new:other"),
      send(hub, c, "2:new"),
    ]);
    assert.deepEqual(a.take(), ["2:new:alice"]);
    assert.deepEqual(b.take(), ["9:2:room-password"]);
    assert.deepEqual(c.take(), ["9:2:room-password"]);
    assert.deepEqual((await store.listRooms()).map((r) => r.name), ["new"]);
    assert.deepEqual(errors, []);
  }));

Deno.test("hub: if the creation a joiner waited for fails, the joiner creates the room", () =>
  withHub({}, async ({ hub, store, errors }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const original = store.addRoom.bind(store);
    let calls = 0;
    store.addRoom = async (name, hash) => {
      if (calls++ === 0) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        throw new Error("disk hiccup");
      }
      await original(name, hash);
    };
    await Promise.all([send(hub, a, "2:new"), send(hub, b, "2:new")]);
    assert.deepEqual(a.take(), ["9:2:server-error"]);
    assert.deepEqual(b.take(), ["2:new:bob"]);
    assert.deepEqual((await store.listRooms()).map((r) => r.name), ["new"]);
    assert.equal(errors.length, 1);
  }));

Deno.test("hub: rooms being created count toward the cap", () =>
  withHub({ maxRooms: 1 }, async ({ hub, store }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    await Promise.all([send(hub, a, "2:one"), send(hub, b, "2:two")]);
    assert.deepEqual(a.take(), ["2:one:alice"]);
    assert.deepEqual(b.take(), ["9:2:room-limit"]);
    assert.equal((await store.listRooms()).length, 1);
  }));

Deno.test("hub: exactly the default 100 distinct targets is fine; 101 is too many", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const others = Array.from({ length: 99 }, (_, i) => `ghost${i}`);
    await send(hub, a, `3:2:bob:${others.join(":")}:hi`);
    assert.deepEqual(b.take(), ["3:hi"]);
    assert.deepEqual(a.take(), [`9:3:not-online:${others.join(",")}`]);
    await send(hub, a, `3:2:bob:${others.join(":")}:ghost99:hi`);
    assert.deepEqual(b.take(), []);
    assert.deepEqual(a.take(), ["9:3:too-many-targets"]);
    // Duplicates do not count: 100 distinct names listed 300 times.
    const many = [...Array(3)].flatMap(() => ["bob", ...others]);
    await send(hub, a, `3:2:${many.join(":")}:hi`);
    assert.deepEqual(b.take(), ["3:hi"]);
  }));

Deno.test("hub: message bytes reach every recipient unchanged, non-UTF-8 included", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    await inRoom(hub, "lobby", a, b);
    const bytesOf = (s: string) => [...encoder.encode(s)];
    const table: [string, number[]][] = [
      ["3:0:", [0xff, 0x00, 0x3a, 0x0d, 0xc3, 0x28, 0x80, 0x3a]],
      ["3:1:", [0xff, 0x00, 0x3a, 0x0d, 0xc3, 0x28, 0x80, 0x3a]],
      ["3:2:bob:", [0xff, 0x00, 0x0d, 0xc3, 0x28, 0x80]], // a 3:2 body is what follows the last ':'
    ];
    for (const [prefix, body] of table) {
      await send(hub, a, new Uint8Array([...bytesOf(prefix), ...body]));
      assert.deepEqual([...b.raw[0]], [0x33, 0x3a, ...body, 0x0a], prefix);
      b.take();
      a.take();
    }
  }));

Deno.test("hub: one encoded line is shared by all recipients, and reusing the sender's buffer is safe", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const c = await loggedIn(hub, "carol");
    await inRoom(hub, "lobby", a, b, c);
    const seen: Uint8Array[] = [];
    b.send = (line) => void seen.push(line);
    c.send = (line) => void seen.push(line);
    const buffer = encoder.encode("3:1:hello");
    await send(hub, a, buffer);
    buffer.fill(0x78); // the connection reuses its read buffer
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1], "the same bytes object for every recipient");
    assert.equal(decoder.decode(seen[0]), "3:hello\n");
  }));

Deno.test("hub: a new room's name outlives the read buffer it came in", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const buffer = encoder.encode("2:lobby");
    const joined = send(hub, a, buffer);
    buffer.fill(0x78); // the transport reads the next chunk into the same buffer
    await joined;
    await send(hub, a, "1");
    await send(hub, b, "2:lobby");
    assert.deepEqual(a.take(), ["2:lobby:alice", "1:lobby,alice", "4:lobby:bob"]);
    assert.deepEqual(b.take(), ["2:lobby:alice,bob"]);
  }));

Deno.test("hub: what one sender sends one recipient arrives in the order sent", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    await inRoom(hub, "lobby", a, b);
    const want: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const mode = ["3:0:", "3:1:", "3:2:bob:"][i % 3];
      await send(hub, a, `${mode}${i}`);
      want.push(`3:${i}`);
    }
    assert.deepEqual(b.take(), want);
  }));

Deno.test("hub: logoutAll ends every session with 0:-1 alone (no 5:) and leaves idle connections be", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const c = await loggedIn(hub, "carol");
    await inRoom(hub, "lobby", a, b);
    const idle = new RecordingPeer("idle");
    hub.connect(idle);
    hub.logoutAll();
    for (const p of [a, b, c]) assert.deepEqual(p.take(), ["0:-1"], p.label);
    assert.deepEqual(idle.take(), []);
    assert.equal(hub.sessionCount, 0);
    await send(hub, a, "3:0:x");
    assert.deepEqual(a.take(), ["0:-1"]);
  }));

Deno.test("hub: a connection closed while its login is checked gets no session", () =>
  withHub({}, async ({ hub }) => {
    const a = new RecordingPeer("a");
    hub.connect(a);
    const pending = send(hub, a, "0:alice:pw");
    hub.disconnect(a);
    await pending;
    assert.deepEqual(a.take(), []);
    assert.equal(hub.sessionCount, 0);
    const b = await loggedIn(hub, "bob");
    await send(hub, b, "3:2:alice:hi");
    assert.deepEqual(b.take(), ["9:3:not-online:alice"]);
  }));

Deno.test("hub: two connections logging in as one user at once: exactly one session survives", () =>
  withHub({}, async ({ hub }) => {
    const a = new RecordingPeer("a");
    const a2 = new RecordingPeer("a2");
    hub.connect(a);
    hub.connect(a2);
    await Promise.all([send(hub, a, "0:alice:pw"), send(hub, a2, "0:alice:pw")]);
    const logs = [a.take(), a2.take()];
    const ended = logs.filter((l) => l.includes("@ended:replaced"));
    assert.equal(ended.length, 1, JSON.stringify(logs));
    assert.equal(hub.sessionCount, 1);
  }));

Deno.test("hub: a login that fails because the hasher is busy replies 0:-1 and reports it", () =>
  withHub({}, async ({ hub, store, errors }) => {
    const a = new RecordingPeer("a");
    hub.connect(a);
    const busy = new PasswordHasher({ params: scryptParams(10) });
    const failing = new Hub({
      work: hubEdge({
        store,
        passwords: { verify: () => Promise.reject(new Error("busy")), hash: busy.hash.bind(busy) },
        onError: (e) => errors.push(e),
      }),
    });
    failing.connect(a);
    await send(failing, a, "0:alice:pw");
    assert.deepEqual(a.take(), ["0:-1", "@ended:login-failed"]);
    assert.equal(errors.length, 1);
  }));

Deno.test("hub: room messages made in one turn reach each recipient as one chunk, after the turn", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    await inRoom(hub, "lobby", a, b);
    const sendsBefore = b.sends;
    for (const text of ["one", "two", "three"]) {
      hub.handle(a, parseCommand(encoder.encode(`3:1:${text}`))!);
    }
    assert.deepEqual(b.raw.length, 0, "nothing is sent before the turn ends");
    await Promise.resolve(); // the turn ends
    assert.equal(b.sends - sendsBefore, 1, "one chunk");
    assert.equal(hub.deliveries, 3, "three messages delivered to one recipient");
    assert.deepEqual(b.take(), ["3:one", "3:two", "3:three"]);
    assert.deepEqual(a.take(), [], "3:1 leaves the sender out");
  }));

Deno.test("hub: anything sent after queued room messages arrives after them (per-sender order)", () =>
  withHub({}, async ({ hub }) => {
    const a = await loggedIn(hub, "alice");
    const b = await loggedIn(hub, "bob");
    const c = await loggedIn(hub, "carol");
    await inRoom(hub, "lobby", a, b, c);
    // In one turn: a room message, a direct message, another room message, then alice leaves.
    hub.handle(a, parseCommand(encoder.encode("3:0:r1"))!);
    hub.handle(a, parseCommand(encoder.encode("3:2:bob:d1"))!);
    hub.handle(c, parseCommand(encoder.encode("3:1:r2"))!);
    hub.handle(a, parseCommand(encoder.encode("3:0:r3"))!);
    hub.disconnect(a);
    await Promise.resolve();
    assert.deepEqual(b.take(), ["3:r1", "3:d1", "3:r2", "3:r3", "5:lobby:alice"]);
    assert.deepEqual(c.take(), ["3:r1", "3:r3", "5:lobby:alice"]);
    assert.deepEqual(a.take(), ["3:r1", "3:r2", "3:r3"]);
  }));
