// The web page in a real browser: Debian's chromium, driven by playwright-core, one browser for
// the whole file. Pages log in, chat, see senders, direct marks, presence and a room list that
// stays true by itself; a failed login says so and does not loop; a v1 server (no `8:`) still
// shows senders with --stamp-sender; the page comes back by itself after a restart. Screenshots go
// to tests/artifacts/, or to docs/ with PARLEY_SCREENSHOTS=docs (how docs/screenshot*.png are
// made). Skipped, loudly, only when /usr/bin/chromium is missing (.ci/run installs it).
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { ParleyClient } from "../lib/client/client.ts";
import { runCli, sleep, TEST_HASH_COST } from "./helpers.ts";
import { startRestartable } from "./restart_support.ts";
import { startWsServer } from "./ws_support.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("./artifacts/", import.meta.url).pathname;
const SHOTS = Deno.env.get("PARLEY_SCREENSHOTS") === "docs"
  ? {
    dir: new URL("../docs/", import.meta.url).pathname,
    desktop: "screenshot",
    phone: "screenshot-phone",
  }
  : { dir: ARTIFACTS, desktop: "browser-desktop", phone: "browser-phone" };
/** The page's periodic room list (lib/transport/web/rooms.js, PERIOD_MS). */
const RELIST_PERIOD_MS = 15_000;

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

/** Logs `user` in on `page` (at `base` unless already there), waiting for the chat to show. */
async function logIn(page: Page, base: string | null, user: string, password: string) {
  if (base !== null) await page.goto(base);
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#login-button");
  await page.waitForSelector("#chat-view", { state: "visible" });
  await page.locator("#whoami", { hasText: user }).waitFor();
}

/** Joins `room` (with `password`) on `page` and waits for its title. */
async function joinOnPage(page: Page, room: string, password = "") {
  await page.fill("#join-room", room);
  await page.fill("#join-password", password);
  await page.click("#join-button");
  await page.locator("#room-title", { hasText: `# ${room}` }).waitFor();
}

/** Waits until the page's log has an entry of `kind` whose text contains `text`. */
async function seeInLog(page: Page, kind: string, text: string): Promise<void> {
  await page.locator(`#log li.${kind}`, { hasText: text }).first().waitFor({ timeout: 10_000 });
}

/** Waits until the room list shows `room` with exactly `members` (no Refresh clicked). */
async function seeRoom(page: Page, room: string, members: string): Promise<void> {
  const exactly = (text: string) => new RegExp(`^${text.replace(/[^\w ,]/g, "\\$&")}$`);
  await page.locator("#rooms li")
    .filter({ has: page.locator(".room-name", { hasText: exactly(room) }) })
    .locator(".room-members", { hasText: exactly(members) })
    .waitFor({ timeout: 10_000 });
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

/** A new page in a context of its own, its errors and 404s collected in `problems`. */
async function newPage(browser: Browser, problems: string[], options = {}): Promise<Page> {
  const page = await (await browser.newContext(options)).newPage();
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  return page;
}

Deno.test({
  name: "browser: the web page in chromium",
  ignore: missing,
  async fn(t) {
    const started = performance.now();
    const browser = await launch();
    const problems: string[] = [];
    const server = await startWsServer({
      users: { alice: "wonderland", bob: "builder", carol: "c4rol", dave: "d4ve", erin: "3rin" },
      // A short login clock: a page left logged out after a failed login is closed soon.
      args: ["--web", "--stamp-sender", "--login-timeout-ms", "2000"],
    }).catch(async (error) => {
      await browser.close();
      throw error;
    });
    const base = `http://127.0.0.1:${server.wsPort}/`;
    const clients: ParleyClient[] = [];
    const tcp = async (user: string, password: string, room?: string) => {
      const client = await ParleyClient.connect({ port: server.port });
      clients.push(client);
      await client.login(user, password);
      if (room) await client.join(room);
      return client;
    };
    try {
      await t.step(
        "two pages: senders, direct marks, a room list that stays true",
        async () => {
          const carol = await tcp("carol", "c4rol", "garden");
          const alice = await newPage(browser, problems, {
            viewport: { width: 1100, height: 700 },
          });
          const bob = await newPage(browser, problems, {
            viewport: { width: 390, height: 780 },
            deviceScaleFactor: 2,
            isMobile: true,
            hasTouch: true,
          });
          for (const page of [alice, bob]) await page.clock.install(); // to fast-forward the lists

          await logIn(alice, base, "alice", "wonderland");
          await seeRoom(alice, "garden", "carol");
          await joinOnPage(alice, "lobby");
          await logIn(bob, base, "bob", "builder");
          await joinOnPage(bob, "lobby");

          // Presence: alice sees bob arrive, in the log, the members and the room list.
          await seeInLog(alice, "presence", "bob joined lobby");
          assert.deepEqual(await members(alice), ["alice", "bob"]);
          assert.deepEqual(await members(bob), ["alice", "bob"]);
          await seeRoom(alice, "lobby", "alice, bob");

          // Room messages both ways with their sender (`from`, on a --stamp-sender server too).
          await sayOnPage(alice, "hello bob, welcome to the lobby");
          await seeInLog(bob, "msg", "alicehello bob, welcome to the lobby");
          await seeInLog(alice, "mine", "hello bob, welcome to the lobby");
          await sayOnPage(bob, "hi alice! typing from my phone");
          await seeInLog(alice, "msg", "bobhi alice! typing from my phone");
          await carol.tell(["alice"], "tea in the garden?");
          await seeInLog(alice, "msg.direct", "caroldirecttea in the garden?");
          const who = await alice.locator("#log li.msg .who").allTextContents();
          assert.deepEqual(who, ["bob", "carol"], "each message names its sender, never raw");

          // A direct message, and an error as it arrives.
          await sayOnPage(bob, "psst, a direct one", "alice");
          await seeInLog(alice, "msg.direct", "bobdirectpsst, a direct one");
          await sayOnPage(alice, "anyone there?", "zed");
          await seeInLog(alice, "error", "not online: zed");
          await sayOnPage(alice, "see you in the den in a minute", "bob");
          await seeInLog(bob, "msg.direct", "alicedirectsee you in the den in a minute");
          await alice.selectOption("#say-mode", "room");

          // Rooms made and joined elsewhere show up with the periodic list, no Refresh.
          await tcp("dave", "d4ve", "tea");
          for (const page of [alice, bob]) await page.clock.fastForward(RELIST_PERIOD_MS);
          await seeRoom(alice, "tea", "dave");
          await seeRoom(bob, "tea", "dave");
          await bob.selectOption("#say-mode", "room");

          // The favicon: served, and an image the browser can decode.
          const width = await alice.evaluate(`(async () => {
          const icon = new Image();
          icon.src = "/favicon.ico";
          await icon.decode();
          return icon.naturalWidth;
        })()`);
          assert.equal(width, 16);
          const ico = await fetch(`${base}favicon.ico`);
          assert.equal(ico.headers.get("content-type"), "image/x-icon");
          assert.equal((await ico.bytes()).length, 1150);

          await Deno.mkdir(SHOTS.dir, { recursive: true });
          await alice.screenshot({ path: `${SHOTS.dir}${SHOTS.desktop}.png` });
          await bob.screenshot({ path: `${SHOTS.dir}${SHOTS.phone}.png` });

          // alice makes a room with a password: bob sees her leave, his list follows by itself.
          await joinOnPage(alice, "den", "s3cret");
          await seeInLog(bob, "presence", "alice left lobby");
          await seeRoom(bob, "lobby", "bob");
          await bob.fill("#join-room", "den");
          await bob.fill("#join-password", "wrong");
          await bob.click("#join-button");
          await seeInLog(bob, "error", "wrong room password");
          await joinOnPage(bob, "den", "s3cret");
          await seeInLog(alice, "presence", "bob joined den");
          await seeRoom(bob, "lobby", "empty");
          await sayOnPage(bob, "found you");
          await seeInLog(alice, "msg", "bobfound you");

          // bob logs out: alice sees him leave.
          await bob.click("#logout");
          await seeInLog(alice, "presence", "bob left den");
          await bob.waitForSelector("#login-view", { state: "visible" });
          assert.deepEqual(await members(alice), ["alice"]);
          await alice.context().close();
          await bob.context().close();
        },
      );

      await t.step("a wrong password says the login failed, and nothing loops", async () => {
        const page = await newPage(browser, problems);
        let sockets = 0;
        page.on("websocket", () => sockets++);
        await page.goto(base);
        assert.equal(await page.getAttribute("#status", "aria-live"), "polite");
        await page.fill("#username", "erin");
        await page.fill("#password", "not-her-password");
        await page.click("#login-button");
        await page.locator("#login-error", { hasText: "Wrong username or password" }).waitFor();
        await page.locator("#status", { hasText: "login failed" }).waitFor();
        // The server closes the logged-out connection at its login clock (2 s): the page says
        // offline and stays put, no new connection and no "reconnecting".
        await page.locator("#status", { hasText: "offline" }).waitFor();
        await sleep(750); // a retry would come within 250 ms
        assert.equal(sockets, 1);
        assert.ok(await page.isVisible("#login-view"));
        await logIn(page, null, "erin", "3rin");
        assert.equal(sockets, 2);
        await page.context().close();
      });

      await t.step("a v1 server (no `8:`) with --stamp-sender: senders, no raw lines", async () => {
        const page = await newPage(browser, problems);
        const asked: string[] = [];
        await page.routeWebSocket(/.*/, (ws) => { // answer `8:` as a v1 server does
          const real = ws.connectToServer();
          ws.onMessage((line) => {
            if (String(line).startsWith("8:")) {
              asked.push(String(line));
              ws.send("9:?:malformed");
            } else real.send(line);
          });
          real.onMessage((line) => ws.send(line));
        });
        await logIn(page, base, "erin", "3rin");
        await joinOnPage(page, "garden");
        clients[0].say("hi erin"); // carol, over TCP
        await seeInLog(page, "msg", "carolhi erin");
        assert.deepEqual(await page.locator("#log li.msg .who").allTextContents(), ["carol"]);
        assert.deepEqual(asked, ["8:from,why,resume"]);
        assert.equal(await page.locator("#log li.error").count(), 0, "the 9:?: is not shown");
        await page.context().close();
      });

      await t.step("it comes back by itself after a restart, and stops when it must", async () => {
        await comesBack(browser, problems);
      });
      assert.deepEqual(problems, []);
      console.log(
        `browser test: ${Math.round(performance.now() - started)} ms; ` +
          `screenshots in ${SHOTS.dir}`,
      );
    } finally {
      for (const client of clients) await client.close();
      await browser.close();
      await server.stop();
    }
  },
});

/** The restart step: a server restarted under the page, then a newer login, then a new password. */
async function comesBack(browser: Browser, problems: string[]) {
  const server = await startRestartable({
    users: { alice: "wonderland", bob: "builder" },
    args: ["--web", "--drain-ms", "100"], // a quick drain: the test waits for the restart
    ws: true,
  });
  let bob: ParleyClient | undefined;
  let newer: ParleyClient | undefined;
  try {
    const page = await newPage(browser, problems);
    page.setDefaultTimeout(15_000);
    let sockets = 0;
    page.on("websocket", () => sockets++);
    const base = `http://127.0.0.1:${server.wsPort}/`;
    await logIn(page, base, "alice", "wonderland");
    await joinOnPage(page, "den", "s3cret");
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

    // Back in den for real: bob (over TCP) joins it and talks to the page, which names him
    // (`from`: this server does not stamp senders).
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
    await page.locator("#status", { hasText: "logged out" }).waitFor();
    assert.equal(await token(), null, "the token is forgotten");
    assert.equal(await newer.nextEvent(500), undefined, "the newer session was left alone");

    // Logged in again, then the password changes while the server is down: the token and the
    // kept password are both refused, so the page says the login failed and stops trying.
    await logIn(page, null, "alice", "wonderland");
    await server.restart(async (db) => {
      const cost = ["--hash-cost", String(TEST_HASH_COST)];
      const changed = await runCli(["--db", db, "--set-password", "alice", ...cost], {
        stdin: "changed\n",
      });
      assert.equal(changed.code, 0, changed.stderr);
    });
    await page.locator("#status", { hasText: "login failed" }).waitFor();
    await page.locator("#login-error", { hasText: "refused the password" }).waitFor();
    const tries = sockets;
    await sleep(750); // a retry would come within 250 ms
    assert.equal(sockets, tries, "no more tries after a refused password");
    await page.context().close();
  } finally {
    await bob?.close();
    await newer?.close();
    await server.stop();
  }
}
