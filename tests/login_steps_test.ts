// The last step of a login (lib/hub/login_steps.ts) on a hub with a hand-driven edge: the
// session starts only once its token is stored, `0:<id>` and `6:<token>` go together (the
// token only with `resume` on), and a token the store could not keep fails the login as busy.
import assert from "node:assert/strict";
import { Hub, type HubResults } from "../lib/hub/hub.ts";
import { parseCommand } from "../lib/protocol/codec.ts";
import { Features } from "../lib/protocol/v11.ts";
import { RecordingPeer } from "./hub_support.ts";

/** A hub whose edge accepts every password and records the tokens it is asked for. */
function tokenHub(): { hub: Hub; results: () => HubResults; issues: [number, string][] } {
  const issues: [number, string][] = [];
  let results: HubResults | undefined;
  const hub = new Hub({
    work: (r) => {
      results = r;
      return {
        checkLogin: (ticket) => queueMicrotask(() => r.loginChecked(ticket, true)),
        claim() {},
        storeRoom() {},
        checkRoomPassword() {},
        issueToken: (ticket, user) => issues.push([ticket, user]),
      };
    },
  });
  return { hub, results: () => results!, issues };
}

/** A peer with `resume` on (or not). */
function peer(label: string, resume: boolean): RecordingPeer & { features: Features } {
  const features = new Features();
  if (resume) features.ask(["resume"]);
  return Object.assign(new RecordingPeer(label), { features });
}

function login(hub: Hub, p: RecordingPeer, user: string): void {
  const command = parseCommand(new TextEncoder().encode(`0:${user}:pw`));
  assert.ok(command !== null);
  assert.equal(hub.handle(p, command), false);
}

Deno.test("the session starts once its token is stored: 0:<id>, then 6:<token>", async () => {
  const { hub, results, issues } = tokenHub();
  const alice = peer("alice", true);
  const bob = peer("bob", false);
  hub.connect(alice);
  hub.connect(bob);
  login(hub, alice, "alice");
  login(hub, bob, "bob");
  await Promise.resolve();
  assert.deepEqual(issues.map(([, user]) => user), ["alice", "bob"]);
  assert.deepEqual(alice.take(), [], "nothing before the token is stored");
  assert.equal(hub.sessionCount, 0);
  results().tokenIssued(issues[0][0], "a".repeat(32));
  results().tokenIssued(issues[1][0], "b".repeat(32));
  assert.deepEqual(alice.take(), ["0:1", `6:${"a".repeat(32)}`, "@started:alice"]);
  assert.deepEqual(bob.take(), ["0:2", "@started:bob"], "no resume: no token sent");
});

/** A token hub where alice (with resume on) has logged in, and her token is being stored. */
async function aliceLoggingIn() {
  const made = tokenHub();
  const alice = peer("alice", true);
  made.hub.connect(alice);
  login(made.hub, alice, "alice");
  await Promise.resolve();
  return { ...made, alice };
}

Deno.test("a token the store could not keep fails the login as busy", async () => {
  const { hub, results, issues, alice } = await aliceLoggingIn();
  results().tokenIssued(issues[0][0], null);
  assert.deepEqual(alice.take(), ["0:-1", "@ended:login-busy"]);
  assert.equal(hub.sessionCount, 0);
});

Deno.test("a token for a connection that closed meanwhile starts nothing", async () => {
  const { hub, results, issues, alice } = await aliceLoggingIn();
  hub.disconnect(alice);
  results().tokenIssued(issues[0][0], "a".repeat(32));
  assert.deepEqual(alice.take(), []);
  assert.equal(hub.sessionCount, 0);
});
