/**
 * The protocol across a cluster: three nodes over one Redis and one PostgreSQL must look to
 * clients like one server (docs/protocol.md, unchanged). Session ids, room lists, `2:`, `4:`,
 * `5:`, the three kinds of `3:` and `not-online`, rooms and their passwords, order, opaque bytes,
 * and the cluster's metrics. One cluster serves every case of the file; each case uses users and
 * rooms of its own (the room-list case, which sees every public room, runs first).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  closingSteps,
  type Cluster,
  joinSettles,
  listSettles,
  metricsPort,
  redisInstalled,
  userPool,
  withCluster,
} from "./cluster_support.ts";
import { bytes, RawClient, sessionId, sleep, USERS } from "./e2e_support.ts";
import { runCli, tempDir, type TestClient } from "./helpers.ts";

const installed = redisInstalled("cluster_protocol_test.ts");

/** Users `p01`…`p80`, besides the usual ones; each case takes users no other case uses. */
const pool = userPool("p", 80);
const ALL_USERS = { ...USERS, ...pool.users };
const take = pool.take;

/** How long a view may take to follow a change on another node, in this file. */
const SETTLE_MS = 2000;

/** Sends `1` until `room`'s entry lists `members` (sorted, comma-separated). */
async function roomSettles(
  client: TestClient,
  room: string,
  members: string[],
  timeoutMs = SETTLE_MS,
): Promise<void> {
  const want = [room, ...[...members].sort()].join(",");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await client.send("1");
    const got = await client.next();
    assert.match(got, /^1:/);
    const entry = got.slice(2).split(":").find((e) => e.split(",")[0] === room);
    if (entry === want) return;
    if (Date.now() > deadline) throw new Error(`1 never listed ${want}; last: ${got}`);
    await sleep(25);
  }
}

/** Connects to node `i`, logs in as `user` and returns the client with its session id. */
async function loginWithId(c: Cluster, i: number, user: string): Promise<[TestClient, number]> {
  const client = await c.connect(i);
  await client.send(`0:${user}:${ALL_USERS[user]}`);
  return [client, sessionId(await client.next())];
}

/** Logs in over a byte-level client (closed by the caller). */
async function rawLogin(port: number, user: string): Promise<RawClient> {
  const client = await RawClient.connect(port);
  try {
    await client.write(`0:${user}:${ALL_USERS[user]}\n`);
    sessionId(new TextDecoder().decode(await client.nextLine()));
    return client;
  } catch (error) {
    await client.close();
    throw error;
  }
}

async function rawExpect(client: RawClient, line: string | Uint8Array): Promise<void> {
  const want = typeof line === "string" ? new TextEncoder().encode(line) : line;
  const got = await client.nextLine();
  if (got.length !== want.length || got.some((b, i) => b !== want[i])) {
    const show = (b: Uint8Array) =>
      b.length > 80 ? `${b.length} bytes starting ${JSON.stringify([...b.subarray(0, 24)])}` : JSON
        .stringify([...b]);
    throw new Error(`expected ${show(want)}, got ${show(got)}`);
  }
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text);
  if (!match) throw new Error(`${name} missing from:\n${text}`);
  return Number(match[1]);
}

Deno.test({
  name: "cluster protocol: three nodes look like one server to clients",
  ignore: !installed,
  async fn(t) {
    await withCluster({ nodes: 3, users: ALL_USERS, args: ["--metrics-port", "0"] }, async (c) => {
      const step = closingSteps(t, c);

      await step("1 and 2: lists members on every node; 4: and 5: reach every node", async () => {
        // Zed (n1), alice (n2), bob (n3) in "lobby"; carol (n1) in "Den"; dave (n2) in "élan".
        // Byte order: "Den" < "lobby" < "élan", and "Zed" < "alice".
        const zed = await c.inRoom(0, "Zed", "lobby", "Zed");
        const alice = await c.login(1, "alice");
        await listSettles(alice, "1:lobby,Zed", SETTLE_MS);
        await alice.send("2:lobby");
        await alice.expect("2:lobby:Zed,alice");
        await zed.expect("4:lobby:alice");
        const bob = await c.login(2, "bob");
        await listSettles(bob, "1:lobby,Zed,alice", SETTLE_MS);
        await bob.send("2:lobby");
        await bob.expect("2:lobby:Zed,alice,bob");
        await zed.expect("4:lobby:bob");
        await alice.expect("4:lobby:bob");
        const carol = await c.inRoom(0, "carol", "Den", "carol");
        const dave = await c.inRoom(1, "dave", "élan", "dave");
        // A room with a password is not listed, wherever it was made.
        const [hider] = take(1);
        const secret = await c.login(2, hider);
        await secret.send("2:hidden:pw");
        await secret.expect(`2:hidden:${hider}`);

        const full = "1:Den,carol:lobby,Zed,alice,bob:élan,dave";
        for (const client of [zed, alice, bob]) await listSettles(client, full, SETTLE_MS);

        // bob (n3) moves to Den: lobby's members on n1 and n2 see 5:, Den's on n1 sees 4:.
        await listSettles(bob, full, SETTLE_MS);
        await bob.send("2:Den");
        await bob.expect("2:Den:bob,carol");
        await zed.expect("5:lobby:bob");
        await alice.expect("5:lobby:bob");
        await carol.expect("4:Den:bob");
        // alice (n2) disconnects: Zed (n1) sees 5:; nobody else hears anything.
        await alice.close();
        await zed.expect("5:lobby:alice");
        const after = "1:Den,bob,carol:lobby,Zed:élan,dave";
        for (const client of [zed, bob, dave]) await listSettles(client, after, SETTLE_MS);
        await Promise.all([zed, bob, carol, dave, secret].map((x) => x.expectNothing(200)));
      });

      await step("session ids are distinct positive numbers across the nodes", async () => {
        const users = take(12);
        const logins = await Promise.all(users.map((user, k) => loginWithId(c, k % 3, user)));
        const ids = logins.map(([, id]) => id);
        for (const id of ids) assert.ok(Number.isSafeInteger(id) && id > 0, `id ${id}`);
        // A second session of a user (on another node) gets an id no session had either.
        const [, again] = await loginWithId(c, 1, users[0]);
        await logins[0][0].expect("0:-1");
        ids.push(again);
        assert.equal(new Set(ids).size, ids.length, `ids repeat: ${ids.join(" ")}`);
      });

      await step(
        "3:0, 3:1 and 3:2 reach every node; not-online is judged cluster-wide",
        async () => {
          const [s, r1, r2, r3, o2, o3, offline] = take(7);
          const room = "talk3";
          const sender = await c.inRoom(0, s, room, s);
          const near = await c.login(0, r1);
          await roomSettles(near, room, [s]);
          await near.send(`2:${room}`);
          await near.expect(`2:${room}:${[s, r1].sort().join(",")}`);
          await sender.expect(`4:${room}:${r1}`);
          const second = await c.login(1, r2);
          await roomSettles(second, room, [s, r1]);
          await second.send(`2:${room}`);
          await second.expect(`2:${room}:${[s, r1, r2].sort().join(",")}`);
          const third = await c.login(2, r3);
          await roomSettles(third, room, [s, r1, r2]);
          await third.send(`2:${room}`);
          await third.expect(`2:${room}:${[s, r1, r2, r3].sort().join(",")}`);
          for (const x of [sender, near]) await x.expect(`4:${room}:${r2}`);
          for (const x of [sender, near, second]) await x.expect(`4:${room}:${r3}`);
          const out2 = await c.login(1, o2); // online, in no room
          const out3 = await c.login(2, o3);
          await roomSettles(sender, room, [s, r1, r2, r3]);

          await sender.send("3:0:to all");
          for (const x of [sender, near, second, third]) await x.expect("3:to all");
          await sender.send("3:1:to the others");
          for (const x of [near, second, third]) await x.expect("3:to the others");
          await third.send("3:1:from n3");
          for (const x of [sender, near, second]) await x.expect("3:from n3");
          await second.send("3:0:from n2");
          for (const x of [sender, near, second, third]) await x.expect("3:from n2");

          // Direct: to users on every node, the sender included; none is "not online".
          await sender.send(`3:2:${r2}:${o3}:${r3}:${r1}:${s}:${o2}:direct`);
          for (const x of [sender, near, second, third, out2, out3]) await x.expect("3:direct");
          // Repeats across nodes deliver once.
          await sender.send(`3:2:${r2}:${o2}:${r2}:${r3}:${o2}:${r2}:once`);
          for (const x of [second, out2, third]) await x.expect("3:once");
          // A user offline everywhere and an unknown one are reported, in the order listed;
          // the online ones on other nodes are not.
          await sender.send(`3:2:${offline}:${o3}:nobody:${o2}:some`);
          await sender.expect(`9:3:not-online:${offline},nobody`);
          for (const x of [out3, out2]) await x.expect("3:some");
          // From n2, a user on n3 (and one on n1) is online; after o3 leaves n3, it is not.
          await out2.send(`3:2:${o3}:${s}:hop`);
          await out3.expect("3:hop");
          await sender.expect("3:hop");
          await out3.close();
          const deadline = Date.now() + 2000;
          for (;;) {
            await out2.send(`3:2:${o3}:${r1}:gone?`);
            await near.expect("3:gone?");
            const reply = await out2.next(300).catch(() => "");
            if (reply === `9:3:not-online:${o3}`) break;
            assert.equal(reply, "", "only not-online may come back");
            assert.ok(Date.now() < deadline, `${o3} still online on n2 2 s after leaving n3`);
          }
          await Promise.all(
            [sender, near, second, third, out2].map((x) => x.expectNothing(200)),
          );
        },
      );

      await step("a room made on one node exists on all, password and all", async () => {
        // Made on n1 with a password, joined from n2 and n3 at once.
        const [a1, b1, d1, a2, b2] = take(5);
        const maker = await c.login(0, a1);
        const other = await c.login(1, b1);
        const third = await c.login(2, d1);
        await maker.send("2:vault:s3cret");
        await maker.expect(`2:vault:${a1}`);
        await other.send("2:vault:wrong");
        await third.send("2:vault");
        await other.expect("9:2:room-password");
        await third.expect("9:2:room-password");
        await other.send("2:vault:s3cret");
        await other.expect(`2:vault:${a1},${b1}`);
        await maker.expect(`4:vault:${b1}`);
        await third.send("2:vault:s3cret");
        await third.expect(`2:vault:${a1},${b1},${d1}`);
        await maker.expect(`4:vault:${d1}`);
        await other.expect(`4:vault:${d1}`);

        // Made on n2 without one, joined from n1 at once: a password is wrong for it.
        const maker2 = await c.login(1, b2);
        const joiner2 = await c.login(0, a2);
        await maker2.send("2:open-room");
        await maker2.expect(`2:open-room:${b2}`);
        await joiner2.send("2:open-room:x");
        await joiner2.expect("9:2:room-password");
        await joiner2.send("2:open-room");
        await joiner2.expect(`2:open-room:${a2},${b2}`);
        await maker2.expect(`4:open-room:${a2}`);
      });

      await step("two nodes making one room at the same moment agree on its password", async () => {
        for (let k = 0; k < 5; k++) {
          const [x, y, z] = take(3);
          const room = `race-${k}`;
          const one = await c.login(0, x);
          const two = await c.login(1, y);
          const three = await c.login(2, z);
          await Promise.all([one.send(`2:${room}:one`), two.send(`2:${room}:two`)]);
          const [r1, r2] = await Promise.all([one.next(), two.next()]);
          const won1 = r1 === `2:${room}:${x}`;
          const won2 = r2 === `2:${room}:${y}`;
          assert.ok(
            won1 !== won2,
            `exactly one creator may get in (round ${k}): ${JSON.stringify([r1, r2])}`,
          );
          const [winner, loser, winPw, losePw, winName] = won1
            ? [one, two, "one", "two", x]
            : [two, one, "two", "one", y];
          assert.equal(won1 ? r2 : r1, "9:2:room-password");
          await three.send(`2:${room}:${losePw}`);
          await three.expect("9:2:room-password");
          await three.send(`2:${room}:${winPw}`);
          await three.expect(`2:${room}:${[winName, z].sort().join(",")}`);
          await winner.expect(`4:${room}:${z}`);
          await loser.send(`2:${room}:${winPw}`);
          await loser.expect(`2:${room}:${[x, y, z].sort().join(",")}`);
          await c.closeClients();
        }
        // Public, both at once: both end up in it, each told of the other once.
        const [x, y] = take(2);
        const one = await c.login(0, x);
        const two = await c.login(2, y);
        await Promise.all([one.send("2:both-at-once"), two.send("2:both-at-once")]);
        const lines = [...await Promise.all([one.next(), two.next()])];
        const pair = `${x},${y}`;
        const gotBoth = lines.filter((l) => l === `2:both-at-once:${pair}`).length;
        assert.ok(gotBoth >= 1, `one of them sees both: ${JSON.stringify(lines)}`);
        // Whoever's reply named only itself is told of the other.
        if (lines[0] === `2:both-at-once:${x}`) await one.expect(`4:both-at-once:${y}`);
        if (lines[1] === `2:both-at-once:${y}`) await two.expect(`4:both-at-once:${x}`);
        await one.send("3:1:ping");
        await two.expect("3:ping");
        await two.send("3:1:pong");
        await one.expect("3:pong");
        await Promise.all([one.expectNothing(200), two.expectNothing(200)]);
      });

      await step(
        "a join that reaches a node together with an earlier join elsewhere is answered first",
        async () => {
          // Node 1 is frozen while x's join on node 0 goes round the bus and y's join line
          // reaches node 1's socket: on waking it holds both, and reads them in whatever order
          // its sockets give. The bus ordered x's join first, so whatever that order, y's 2:
          // lists x and comes before anything else of the room, and x hears of y once.
          for (let k = 0; k < 5; k++) {
            const [x, y] = take(2);
            const room = `frozen-${k}`;
            const one = await c.login(0, x);
            const two = await c.login(1, y);
            const pid = c.node(1).process.pid;
            Deno.kill(pid, "SIGSTOP");
            try {
              await one.send(`2:${room}`);
              await one.expect(`2:${room}:${x}`); // its echo came back: the bus has it
              await two.send(`2:${room}`);
            } finally {
              Deno.kill(pid, "SIGCONT");
            }
            await two.expect(`2:${room}:${[x, y].sort().join(",")}`);
            await one.expect(`4:${room}:${y}`);
            await Promise.all([one.expectNothing(100), two.expectNothing(100)]);
            await c.closeClients();
          }
        },
      );

      await step(
        "1,000 messages from one sender to one recipient arrive in order, once",
        async () => {
          const [s1, s2, s3, r] = take(4);
          const room = "ordered";
          const recipient = await c.inRoom(1, r, room, r);
          const roomSender = await c.login(0, s1);
          await joinSettles(roomSender, room, [r, s1], SETTLE_MS);
          await recipient.expect(`4:${room}:${s1}`);
          const n = 1000;
          let batch = "";
          for (let i = 0; i < n; i++) batch += `3:1:room ${i}\n`;
          await roomSender.write(batch);
          for (let i = 0; i < n; i++) await recipient.expect(`3:room ${i}`);
          await roomSender.close();
          await recipient.expect(`5:${room}:${s1}`);

          const directSender = await c.login(2, s2);
          batch = "";
          for (let i = 0; i < n; i++) batch += `3:2:${r}:direct ${i}\n`;
          await directSender.write(batch);
          for (let i = 0; i < n; i++) await recipient.expect(`3:direct ${i}`);
          await directSender.expectNothing(0);

          // Both kinds, interleaved, from one sender: still the order sent.
          const mixed = await c.login(0, s3);
          await joinSettles(mixed, room, [r, s3], SETTLE_MS);
          await recipient.expect(`4:${room}:${s3}`);
          batch = "";
          for (let i = 0; i < n; i++) batch += i % 2 ? `3:2:${r}:mixed ${i}\n` : `3:1:mixed ${i}\n`;
          await mixed.write(batch);
          for (let i = 0; i < n; i++) await recipient.expect(`3:mixed ${i}`);
          await Promise.all([recipient.expectNothing(300), mixed.expectNothing(0)]);
        },
      );

      await step("bodies cross the bus as bytes, untouched, and once", async () => {
        const [x, y1, y2, y3] = take(4);
        const room = "bytes";
        const clients: RawClient[] = [];
        try {
          const sender = await rawLogin(c.port(0), x);
          clients.push(sender);
          const a = await rawLogin(c.port(1), y1);
          clients.push(a);
          const b = await rawLogin(c.port(2), y2);
          clients.push(b);
          const d = await rawLogin(c.port(1), y3);
          clients.push(d);
          await sender.write(`2:${room}\n`);
          await rawExpect(sender, `2:${room}:${x}`);
          // Each later joiner is seen by the earlier ones (so every node knows every member).
          const joined: RawClient[] = [sender];
          for (const [client, name] of [[a, y1], [b, y2], [d, y3]] as const) {
            await client.write(`2:${room}\n`);
            const reply = new TextDecoder().decode(await client.nextLine());
            assert.match(reply, new RegExp(`^2:${room}:`));
            for (const earlier of joined) await rawExpect(earlier, `4:${room}:${name}`);
            joined.push(client);
          }
          const receivers = [a, b, d];

          const odd = [
            0x00,
            0x01,
            0x7f,
            0x80,
            0xc3,
            0x28,
            0xff,
            0xfe,
            0xed,
            0xa0,
            0x80,
            0x0d,
            0x78,
          ];
          const bodies: Uint8Array[] = [
            new Uint8Array(odd), // not UTF-8, a NUL, a CR inside
            bytes("a:b::c:", [0xe2, 0x82]), // colons, and a cut-off UTF-8 sequence at the end
            new Uint8Array(0), // empty
          ];
          // Long: the longest line there may be (65,536 bytes), with every byte value but LF.
          const long = new Uint8Array(65536 - "3:1:".length);
          for (let i = 0; i < long.length; i++) {
            long[i] = (i * 7 + 3) % 256 === 10 ? 11 : (i * 7 + 3) % 256;
          }
          long[long.length - 1] = 0x41; // a CR at the end would be taken as a CRLF
          bodies.push(long);

          for (const body of bodies) {
            await sender.write(bytes("3:1:", body, "\n"));
            for (const r of receivers) await rawExpect(r, bytes("3:", body));
            await sender.write(bytes("3:0:", body, "\n"));
            for (const r of [sender, ...receivers]) await rawExpect(r, bytes("3:", body));
          }
          // Three longest lines in one write: more than one run (64 KiB) crosses the bus.
          const variants = [0, 1, 2].map((k) => {
            const v = long.slice();
            v[0] = 0x30 + k;
            return v;
          });
          await sender.write(bytes(...variants.flatMap((v) => [bytes("3:1:", v, "\n")])));
          for (const r of receivers) for (const v of variants) await rawExpect(r, bytes("3:", v));

          // Direct: no ':' in the body (the text after the last ':' is the message).
          const direct = [
            new Uint8Array(odd),
            long.slice(0, 65536 - `3:2:${y1}:${y2}:${y3}:`.length).map((b) =>
              b === 0x3a ? 0x3b : b
            ),
          ];
          for (const body of direct) {
            await sender.write(bytes(`3:2:${y1}:${y2}:${y3}:`, body, "\n"));
            for (const r of receivers) await rawExpect(r, bytes("3:", body));
          }
          await sleep(300);
          for (const client of clients) {
            assert.equal(client.buffered.length, 0, "nothing more (nothing twice)");
          }
        } finally {
          await Promise.all(clients.map((client) => client.close()));
        }
      });

      await step("metrics: node id, bus up, bus traffic rising with messages", async () => {
        const ports = await Promise.all([0, 1, 2].map((i) => metricsPort(c, i)));
        const before = await Promise.all(ports.map(scrape));
        before.forEach((text, i) => {
          assert.equal(metric(text, `parley_node_info{node="n${i + 1}"}`), 1);
          assert.equal(metric(text, "parley_bus_up"), 1);
        });
        const [s, r] = take(2);
        const sender = await c.login(0, s);
        const recipient = await c.login(1, r);
        const body = "m".repeat(1000);
        for (let k = 0; k < 10; k++) {
          await sender.send(`3:2:${r}:${body}`);
          await recipient.expect(`3:${body}`);
        }
        const [n1, n2] = await Promise.all(ports.slice(0, 2).map(scrape));
        const grew = (text: string, old: string, name: string) =>
          metric(text, name) - metric(old, name);
        assert.ok(grew(n1, before[0], "parley_bus_bytes_out_total") >= 10 * 1000);
        assert.ok(grew(n1, before[0], "parley_bus_commands_total") >= 10);
        assert.ok(grew(n2, before[1], "parley_bus_messages_in_total") >= 10);
        assert.ok(grew(n2, before[1], "parley_bus_bytes_in_total") >= 10 * 1000);
        assert.ok(metric(n1, "parley_remote_sessions") >= 1);
        assert.equal(metric(n1, "parley_bus_dropped_total"), 0);
      });
    });
  },
});

Deno.test("cluster: --cluster with a SQLite --db refuses to start, in one line", async () => {
  const temp = await tempDir();
  try {
    for (const db of [`${temp.dir}/parley.db`, undefined]) {
      const args = ["--cluster", "redis://127.0.0.1:1", "--port", "0"];
      const result = await runCli(db === undefined ? args : [...args, "--db", db]);
      assert.notEqual(result.code, 0);
      const lines = result.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(result.stderr)}`);
      assert.match(lines[0], /--cluster needs --db postgres/);
      assert.doesNotMatch(result.stdout, /listening/);
    }
  } finally {
    await temp.remove();
  }
});
