// The web page in a real browser: Debian's chromium, driven by playwright-core. Two pages log in as
// two users, join a room, and see each other's messages, direct messages and presence; the
// screenshots go to tests/artifacts/. Skipped, loudly, only when /usr/bin/chromium is missing
// (.ci/run installs it).
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { ParleyClient } from "../lib/client/client.ts";
import { startRestartable } from "./restart_support.ts";
import { startWsServer, type WsTestServer } from "./ws_support.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("./artifacts/", import.meta.url).pathname;

function haveChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

const missing = !haveChromium();
if (missing) {
  console.error(
    `\n!!! SKIPPING the browser test: ${CHROMIUM} is not installed. ` +
      "Install Debian's chromium (apt-get install chromium; .ci/run does it) to run it. !!!\n",
  );
}

/** Logs `user` in on `page` and joins `room`, waiting for each step to show. */
async function logInAndJoin(
  page: Page,
  base: string,
  user: string,
  password: string,
  room: string,
) {
  await page.goto(base);
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#login-button");
  await page.waitForSelector("#chat-view", { state: "visible" });
  await page.locator("#whoami", { hasText: user }).waitFor();
  await page.fill("#join-room", room);
  await page.click("#join-button");
  await page.locator("#room-title", { hasText: `# ${room}` }).waitFor();
}

/** Waits until the page's log has an entry of `kind` whose text contains `text`. */
async function seeInLog(page: Page, kind: string, text: string): Promise<void> {
  await page.locator(`#log li.${kind}`, { hasText: text }).first().waitFor({ timeout: 10_000 });
}

async function sayOnPage(page: Page, text: string, to?: string): Promise<void> {
  await page.selectOption("#say-mode", to ? "direct" : "room");
  if (to) await page.fill("#say-targets", to);
  await page.fill("#say-text", text);
  await page.click("#say-button");
}

/** Debian's chromium, headless, quiet. */
function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-gpu",
      "--disable-quic",
    ],
  });
}

async function members(page: Page): Promise<string[]> {
  return await page.$$eval("#members button", (buttons) => buttons.map((b) => b.textContent ?? ""));
}

Deno.test({
  name: "browser: two chromium pages log in, join a room, chat and see each other come and go",
  ignore: missing,
  async fn() {
    const started = performance.now();
    let server: WsTestServer | undefined;
    let browser: Browser | undefined;
    try {
      server = await startWsServer({
        users: { alice: "wonderland", bob: "builder" },
        args: ["--web", "--stamp-sender"],
      });
      const base = `http://127.0.0.1:${server.wsPort}/`;
      browser = await launch();
      const desktop = await browser.newContext({ viewport: { width: 1100, height: 700 } });
      const phone = await browser.newContext({
        viewport: { width: 390, height: 780 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
      });
      const alice = await desktop.newPage();
      const bob = await phone.newPage();
      for (const page of [alice, bob]) page.setDefaultTimeout(10_000);
      const pageErrors: string[] = [];
      for (const page of [alice, bob]) page.on("pageerror", (e) => pageErrors.push(String(e)));

      await logInAndJoin(alice, base, "alice", "wonderland", "lobby");
      await logInAndJoin(bob, base, "bob", "builder", "lobby");

      // Presence: alice sees bob arrive, and both see both in the room.
      await seeInLog(alice, "presence", "bob joined lobby");
      assert.deepEqual(await members(alice), ["alice", "bob"]);
      assert.deepEqual(await members(bob), ["alice", "bob"]);

      // Room messages both ways, stamped with the sender.
      await sayOnPage(alice, "hello bob, welcome to the lobby");
      await seeInLog(bob, "msg", "alicehello bob, welcome to the lobby");
      await seeInLog(alice, "mine", "hello bob, welcome to the lobby");
      await sayOnPage(bob, "hi alice! typing from my phone");
      await seeInLog(alice, "msg", "bobhi alice! typing from my phone");

      // A direct message, and an error as it arrives.
      await sayOnPage(bob, "psst, a direct one", "alice");
      await seeInLog(alice, "msg.direct", "bobdirectpsst, a direct one");
      await sayOnPage(alice, "anyone there?", "carol");
      await seeInLog(alice, "error", "not online: carol");

      // The room list (1), refreshed on demand, shows the room with its members.
      await alice.click("#refresh");
      await alice.locator("#rooms li", { hasText: "alice, bob" }).filter({ hasText: "lobby" })
        .waitFor();
      // Creating a room with a password, and a wrong password's error.
      await alice.fill("#join-room", "den");
      await alice.fill("#join-password", "s3cret");
      await alice.click("#join-button");
      await alice.locator("#room-title", { hasText: "# den" }).waitFor();
      await seeInLog(bob, "presence", "alice left lobby");
      await bob.fill("#join-room", "den");
      await bob.fill("#join-password", "wrong");
      await bob.click("#join-button");
      await seeInLog(bob, "error", "wrong room password");
      await bob.fill("#join-room", "den");
      await bob.fill("#join-password", "s3cret");
      await bob.click("#join-button");
      await seeInLog(alice, "presence", "bob joined den");
      await sayOnPage(bob, "found you");
      await seeInLog(alice, "msg", "bobfound you");

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await alice.screenshot({ path: `${ARTIFACTS}browser-desktop.png` });
      await bob.screenshot({ path: `${ARTIFACTS}browser-phone.png` });

      // bob logs out: alice sees him leave.
      await bob.click("#logout");
      await seeInLog(alice, "presence", "bob left den");
      await bob.waitForSelector("#login-view", { state: "visible" });
      assert.deepEqual(await members(alice), ["alice"]);
      assert.deepEqual(pageErrors, []);
      console.log(
        `browser test: ${Math.round(performance.now() - started)} ms; ` +
          `screenshots in ${ARTIFACTS}`,
      );
    } finally {
      await browser?.close();
      await server?.stop();
    }
  },
});

Deno.test({
  name: "browser: the page comes back by itself after a server restart, and stops when replaced",
  ignore: missing,
  async fn() {
    const server = await startRestartable({
      users: { alice: "wonderland", bob: "builder" },
      args: ["--web"],
      ws: true,
    });
    let browser: Browser | undefined;
    let bob: ParleyClient | undefined;
    let newer: ParleyClient | undefined;
    try {
      browser = await launch();
      const page = await browser.newPage();
      page.setDefaultTimeout(15_000);
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      const base = `http://127.0.0.1:${server.wsPort}/`;
      await logInAndJoin(page, base, "alice", "wonderland", "lobby");
      await page.fill("#join-room", "den");
      await page.fill("#join-password", "s3cret");
      await page.click("#join-button");
      await page.locator("#room-title", { hasText: "# den" }).waitFor();
      const token = () => page.evaluate(() => sessionStorage.getItem("parley-resume"));
      await page.waitForFunction(() => sessionStorage.getItem("parley-resume") !== null);
      assert.match((await token())!, /"user":"alice"/);

      // The server restarts (SIGTERM: it says 7:shutdown), on the same port and database.
      await server.restart();
      await seeInLog(page, "info", "Connection lost; reconnecting");
      await seeInLog(page, "info", "Back (resumed)");
      await page.locator("#status", { hasText: "connected" }).waitFor();
      await page.locator("#room-title", { hasText: "# den" }).waitFor();
      assert.ok(await page.isVisible("#chat-view"), "the chat stayed on screen");

      // Back in den for real: bob (over TCP) joins it and talks to the page.
      bob = await ParleyClient.connect({ port: server.port });
      await bob.login("bob", "builder");
      assert.deepEqual((await bob.join("den", "s3cret")).members, ["alice", "bob"]);
      await bob.say("hello after the restart");
      await seeInLog(page, "msg", "bobhello after the restart");
      await bob.tell(["alice"], "only for you");
      await seeInLog(page, "msg.direct", "bobdirectonly for you");
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}browser-reconnected.png` });

      // A reload of the tab resumes its session by the token in sessionStorage.
      await page.reload();
      await seeInLog(page, "info", "Back (resumed)");
      await page.locator("#whoami", { hasText: "alice" }).waitFor();

      // A newer login of alice elsewhere: the page stops, says why, and never fights back.
      newer = await ParleyClient.connect({ port: server.port });
      await newer.login("alice", "wonderland");
      await page.locator("#login-error", { hasText: "logged in somewhere else" }).waitFor();
      await page.waitForSelector("#login-view", { state: "visible" });
      assert.equal(await token(), null, "the token is forgotten");
      assert.equal(await newer.nextEvent(500), undefined, "the newer session was left alone");
      assert.deepEqual(pageErrors, []);
    } finally {
      await bob?.close();
      await newer?.close();
      await browser?.close();
      await server.stop();
    }
  },
});
