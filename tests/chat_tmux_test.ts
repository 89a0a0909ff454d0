// `parley chat` in a real terminal (tmux, 120x40): the password prompt, the input line that stays
// intact below incoming messages, senders and direct marks against a stamping server, server
// restarts on the same port and database (Ctrl-C and kill -9), after which the chat comes back by
// itself without asking for the password again; then a newer login of the same user ends it at
// once, with a sentence that says why. Skipped, loudly, when tmux is missing.
import assert from "node:assert/strict";
import { ParleyClient } from "../lib/client/client.ts";
import { tempDir, waitFor } from "./helpers.ts";
import { startRestartable } from "./restart_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The text of the next message `client` gets. */
async function nextText(client: ParleyClient): Promise<string> {
  for (;;) {
    const event = await client.nextEvent(5000);
    if (event === undefined) throw new Error("no message within 5 s");
    if (event.type === "message") return event.text;
  }
}

function haveTmux(): boolean {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const missing = !haveTmux();
if (missing) console.error("\n!!! SKIPPING the tmux chat test: tmux is not installed. !!!\n");

/** A tmux server of this test's own (its own socket), so nothing else's sessions are touched. */
class Terminal {
  readonly #socket = `parley-chat-test-${Deno.pid}`;

  async run(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", { args: ["-L", this.#socket, ...args] }).output();
    if (!out.success) throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    return new TextDecoder().decode(out.stdout);
  }

  start(command: string): Promise<string> {
    return this.run("new-session", "-d", "-s", "chat", "-x", "120", "-y", "40", command);
  }

  screen(): Promise<string> {
    return this.run("capture-pane", "-p", "-t", "chat", "-S", "-200");
  }

  /** Types `text` without pressing Enter. */
  async keys(text: string): Promise<void> {
    await this.run("send-keys", "-t", "chat", "-l", text);
  }

  async type(text: string): Promise<void> {
    await this.keys(text);
    await this.run("send-keys", "-t", "chat", "Enter");
  }

  async see(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    let last = "";
    try {
      await waitFor(async () => pattern.test(last = await this.screen()), `${pattern}`, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}; the screen:\n${last}`);
    }
  }

  async stop(): Promise<void> {
    await this.run("kill-server").catch(() => {});
  }
}

/** What the last non-empty line of the screen is: the input line while the chat runs. */
function lastLine(screen: string): string {
  return screen.trimEnd().split("\n").at(-1) ?? "";
}

Deno.test({
  name: "chat in tmux: typing stays intact, senders, restarts (Ctrl-C, kill -9), replaced exits",
  ignore: missing,
  async fn() {
    // A stamping server: the chat asks for `from` and never shows a raw `bob:hi`.
    const server = await startRestartable({
      users: { alice: "wonderland", bob: "builder" },
      args: ["--stamp-sender"],
    });
    const terminal = new Terminal();
    const clients: ParleyClient[] = [];
    try {
      const chat = `${Deno.execPath()} run -A ${MAIN} chat 127.0.0.1:${server.port} --user alice`;
      // The shell prints the exit code and keeps the pane open for the last screen.
      await terminal.start(`sh -c '${chat}; echo "exit code $?"; sleep 600'`);
      await terminal.see(/Password for alice:/);
      await terminal.type("wonderland");
      await terminal.see(/\* logged in as alice/);
      await terminal.type("/join lobby");
      await terminal.see(/\* you are in lobby with alice/);
      await terminal.type("/join vault s3cret");
      await terminal.see(/\* you are in vault with alice/);
      await terminal.type("/join lobby");
      await terminal.see(/\* you are in lobby with alice\n(.|\n)*\* you are in lobby with alice/);

      const bob = await ParleyClient.connect({ port: server.port, stampSender: true });
      clients.push(bob);
      await bob.login("bob", "builder");
      await bob.join("lobby");
      // Half a line typed, then messages arrive: they go above it, and it is drawn again below.
      await terminal.keys("half typed");
      await terminal.see(/alice> half typed$/m);
      await bob.say("incoming while alice types");
      await bob.tell(["alice"], "only you");
      await terminal.see(/\] <bob> \(direct\) only you\nalice> half typed\s*$/);
      const screen = await terminal.screen();
      assert.match(screen, /\] <bob> incoming while alice types\n/);
      assert.doesNotMatch(screen, /bob:incoming|half typed\[/, "no raw sender, no torn line");
      assert.equal(lastLine(screen), "alice> half typed");
      await terminal.type(" and sent");
      assert.equal(await nextText(bob), "half typed and sent");
      await terminal.type("/join vault wrong");
      await terminal.see(/! wrong password for that room/);

      await server.restart(undefined, "SIGINT"); // Ctrl-C: the server drains, saying why
      await terminal.see(/\* the server is going away\n(.|\n)*\* connection lost; reconnecting/);
      await terminal.see(/\* back \((resumed|logged in again)\)/);
      await server.restart(undefined, "SIGKILL"); // a crash: no goodbye, the socket just ends
      await terminal.see(/\* back (.|\n)*\* connection lost; reconnecting in \d+\.\d s…/);
      await terminal.see(/\* back (.|\n)*\* back \((resumed|logged in again)\)/);
      const after = await terminal.screen();
      assert.equal(after.match(/Password for alice/g)?.length, 1, "asked once only:\n" + after);
      assert.ok(!after.includes("wonderland"), "the password is never shown");
      assert.doesNotMatch(after, /logged in elsewhere|removed/);

      // Replaced while typing: it ends at once, without waiting for Enter.
      await terminal.keys("never sent");
      await terminal.see(/alice> never sent$/m);
      const newer = await ParleyClient.connect({ port: server.port });
      clients.push(newer);
      await newer.login("alice", "wonderland");
      await terminal.see(
        /this user logged in somewhere else, so this chat ends here\n+exit code 1/,
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await terminal.stop();
      await server.stop();
    }
  },
});

Deno.test({
  name: "--add-user in a terminal asks for the password by the user's name",
  ignore: missing,
  async fn() {
    const temp = await tempDir();
    const terminal = new Terminal();
    try {
      const add = `${Deno.execPath()} run -A ${MAIN} --db ${temp.dir}/p.db --add-user carol`;
      await terminal.start(`sh -c '${add}; echo "exit code $?"; sleep 600'`);
      await terminal.see(/Password for carol:/);
      await terminal.type("secret");
      await terminal.see(/Password for carol \(again\):/);
      await terminal.type("secret");
      await terminal.see(/added user carol\n+exit code 0/);
    } finally {
      await terminal.stop();
      await temp.remove();
    }
  },
});
