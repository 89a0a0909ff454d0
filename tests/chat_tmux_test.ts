// `parley chat` in a real terminal (tmux, 120x40): the password prompt, senders, and a server
// restart on the same port and database, after which the chat comes back by itself (without
// asking for the password again) and is back in its room; then a newer login of the same user
// ends it at once, with a sentence that says why. Skipped, loudly, when tmux is missing.
import assert from "node:assert/strict";
import { ParleyClient } from "../lib/client/client.ts";
import { waitFor } from "./helpers.ts";
import { startRestartable } from "./restart_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

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

  async type(text: string): Promise<void> {
    await this.run("send-keys", "-t", "chat", "-l", text);
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

Deno.test({
  name: "chat in tmux: a server restart, back without the password; replaced, it exits",
  ignore: missing,
  async fn() {
    const server = await startRestartable({ users: { alice: "wonderland", bob: "builder" } });
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

      await server.restart();
      await terminal.see(/\* the server is going away/);
      await terminal.see(/\* connection lost; reconnecting in \d+\.\d s…/);
      await terminal.see(/\* back \((resumed|logged in again)\)/);
      await terminal.see(/\* you are in lobby with alice\n(.|\n)*\* you are in lobby with alice/);
      const screen = await terminal.screen();
      assert.equal(screen.match(/Password for alice/g)?.length, 1, "asked once only:\n" + screen);
      assert.ok(!screen.includes("wonderland"), "the password is never shown");

      const bob = await ParleyClient.connect({ port: server.port });
      clients.push(bob);
      await bob.login("bob", "builder");
      await bob.join("lobby");
      await bob.say("welcome back");
      await terminal.see(/\] <bob> welcome back/);
      await bob.tell(["alice"], "only you");
      await terminal.see(/\] <bob> \(direct\) only you/);

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
