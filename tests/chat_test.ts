// `parley chat` with piped stdin (first line: the password) against the real server.
import assert from "node:assert/strict";
import { ParleyClient, type ParleyEvent } from "../lib/client/client.ts";
import { runCli, startServer } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A `parley chat` subprocess whose output lines can be waited for. */
function spawnChat(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "chat", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const read = async (stream: ReadableStream<Uint8Array>, add: (s: string) => void) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) add(chunk);
  };
  const drained = Promise.all([
    read(child.stdout, (s) => out += s),
    read(child.stderr, (s) => err += s),
  ]);
  const writer = child.stdin.getWriter();
  return {
    child,
    output: () => out,
    errors: () => err,
    type: (line: string) => writer.write(new TextEncoder().encode(line + "\n")),
    endInput: () => writer.close().catch(() => {}),
    async waitFor(pattern: RegExp, timeoutMs = 5000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out)) {
        if (Date.now() > deadline) {
          throw new Error(`chat never printed ${pattern}; stdout:\n${out}\nstderr:\n${err}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async finish(): Promise<number> {
      await writer.close().catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const status = await Promise.race([
        child.status,
        new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 5000)),
      ]);
      clearTimeout(timer);
      if (status === null) child.kill("SIGKILL");
      const final = await child.status;
      await drained;
      return status === null ? -1 : final.code;
    },
  };
}

async function nextMessage(client: ParleyClient): Promise<ParleyEvent> {
  for (;;) {
    const event = await client.nextEvent(5000);
    if (event === undefined) throw new Error("no event within 5 s");
    if (event.type === "message") return event;
  }
}

const TIME = String.raw`\[\d\d:\d\d:\d\d\]`;

Deno.test("chat: password from stdin, /join, text, /msg, /all, /rooms, presence, /quit", async () => {
  const server = await startServer({ users: { alice: "wonderland", bob: "builder" } });
  const chat = spawnChat([`127.0.0.1:${server.port}`, "--user", "alice"]);
  let bob: ParleyClient | undefined;
  try {
    await chat.type("wonderland");
    await chat.waitFor(new RegExp(`${TIME} \\* logged in as alice`));
    await chat.type("/join lobby");
    await chat.waitFor(/\* you are in lobby with alice/);

    bob = await ParleyClient.connect({ port: server.port });
    await bob.login("bob", "builder");
    await bob.join("lobby");
    await chat.waitFor(new RegExp(`${TIME} \\* bob joined lobby`));

    await bob.say("hi alice");
    await chat.waitFor(new RegExp(`${TIME} <bob> hi alice`)); // the sender (v1.1 `from`)
    await bob.tell(["alice"], "just you");
    await chat.waitFor(new RegExp(`${TIME} <bob> \\(direct\\) just you`));

    await chat.type("hello bob");
    const hello = await nextMessage(bob);
    assert.equal(hello.type === "message" && hello.text, "hello bob");
    await chat.type("/msg bob,carol direct");
    const direct = await nextMessage(bob);
    assert.equal(direct.type === "message" && direct.text, "direct");
    await chat.waitFor(/! not online: carol/);
    await chat.type("/all to everyone");
    await chat.waitFor(new RegExp(`${TIME} <alice> to everyone`));
    const all = await nextMessage(bob);
    assert.equal(all.type === "message" && all.text, "to everyone");
    await chat.type("/rooms");
    await chat.waitFor(/\* lobby: alice, bob/);
    await chat.type("/join vault s3cret");
    await chat.waitFor(/\* you are in vault with alice/);

    await bob.close();
    bob = undefined;
    await chat.type("/quit");
    assert.equal(await chat.finish(), 0, chat.errors());
    assert.ok(!chat.output().includes("wonderland"), "the password is never echoed");
  } finally {
    await bob?.close();
    await chat.finish();
    await server.stop();
  }
});

Deno.test("chat: a wrong password fails with exit 1, a bad address with exit 2", async () => {
  const server = await startServer({ users: { alice: "wonderland" } });
  try {
    const chat = spawnChat([`127.0.0.1:${server.port}`, "--user", "alice"]);
    await chat.type("nope");
    assert.equal(await chat.finish(), 1);
    assert.match(chat.errors(), /login failed for alice/);

    const bad = spawnChat(["bad:port:here", "--user", "alice"]);
    assert.equal(await bad.finish(), 2);
    assert.match(bad.errors(), /usage: parley chat HOST\[:PORT\] --user NAME/);
    // Without a port, 7777: said in the error when nothing answers there.
    const portless = spawnChat(["nosuchhost.invalid", "--user", "alice"]);
    await portless.type("wonderland");
    assert.equal(await portless.finish(), 1);
    assert.match(portless.errors(), /cannot connect to nosuchhost\.invalid:7777: /);
  } finally {
    await server.stop();
  }
});

Deno.test("chat: removed by the operator, it exits at once with a sentence, input still open", async () => {
  const server = await startServer({ users: { alice: "wonderland" } });
  const chat = spawnChat([`127.0.0.1:${server.port}`, "--user", "alice"]);
  try {
    await chat.type("wonderland");
    await chat.waitFor(/\* logged in as alice/);
    assert.equal((await runCli(["--db", server.db, "--remove-user", "alice"])).code, 0);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      chat.child.status,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 8000)),
    ]);
    clearTimeout(timer);
    assert.equal(status?.code, 1, "it exits by itself, with 1");
  } finally {
    assert.equal(await chat.finish(), 1);
    await server.stop();
  }
  assert.match(chat.errors(), /the server's operator removed this user, so this chat ends here/);
});
