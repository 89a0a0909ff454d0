// `parley chat` facing hostile peers: terminal escapes, CR, C1 controls, bidi overrides and invalid
// UTF-8 in messages, sender names, room names, user lists and errors are printed as visible
// escapes, never raw (see lib/client/terminal_text.ts).
import assert from "node:assert/strict";
import { runChat } from "../lib/client/chat.ts";
import { ParleyClient } from "../lib/client/client.ts";
import { terminalSafe } from "../lib/client/terminal_text.ts";
import { bytes, startServer, waitFor } from "./helpers.ts";

const encoder = new TextEncoder();

/** What a terminal would act on: C0, DEL, C1, and the bidi controls and separators. */
function unsafeChars(text: string): string[] {
  return [...text].filter((char) => {
    const code = char.codePointAt(0)!;
    return code < 0x20 || (code >= 0x7f && code <= 0x9f) ||
      /[\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/.test(char);
  });
}

/** Fails if any printed line holds a character a terminal would act on. */
function assertPrintedSafe(printed: string[]): void {
  for (const line of printed) {
    assert.deepEqual(unsafeChars(line), [], `raw control character in ${JSON.stringify(line)}`);
  }
}

/** `runChat` in this process, its stdin fed line by line, everything it prints collected. */
function startChat(args: string[]) {
  const printed: string[] = [];
  let feed!: ReadableStreamDefaultController<Uint8Array>;
  let finished = false;
  const stdin = new ReadableStream<Uint8Array>({ start: (controller) => void (feed = controller) });
  const exit = runChat(args, {
    stdin,
    isTerminal: false,
    out: (line) => printed.push(line),
    err: (line) => printed.push(line),
  });
  return {
    printed,
    type: (line: string) => feed.enqueue(encoder.encode(line + "\n")),
    waitFor: (pattern: RegExp) =>
      waitFor(() => printed.some((line) => pattern.test(line)), `a printed line ${pattern}`, 5000),
    /** Ends the input (once; later calls just wait) and resolves to the exit code. */
    finish: () => {
      if (!finished) feed.close();
      finished = true;
      return exit;
    },
  };
}

Deno.test("hostile chat: terminalSafe escapes what a terminal acts on, and only that", () => {
  const table: [string, string, string][] = [
    ["plain text", "hello, room", "hello, room"],
    ["non-ASCII text", "héllo ✓ 👋 日本", "héllo ✓ 👋 日本"],
    ["a backslash stays", String.raw`C:\dir`, String.raw`C:\dir`],
    ["clear screen", "\x1b[2J", String.raw`\u001b[2J`],
    ["window title (OSC … BEL)", "\x1b]0;owned\x07", String.raw`\u001b]0;owned\u0007`],
    ["carriage return", "a\rb", String.raw`a\u000db`],
    ["line feed", "a\nb", String.raw`a\u000ab`],
    ["backspace", "ab\b\b", String.raw`ab\u0008\u0008`],
    ["tab", "a\tb", String.raw`a\u0009b`],
    ["NUL", "a\0b", String.raw`a\u0000b`],
    ["conceal", "\x1b[8mhidden", String.raw`\u001b[8mhidden`],
    ["DEL", "a\x7f", String.raw`a\u007f`],
    ["C1 CSI", "\u009b31m", String.raw`\u009b31m`],
    ["C1 range ends", "\u0080\u009f\u00a0", String.raw`\u0080\u009f` + "\u00a0"],
    ["right-to-left override", "\u202eevil", String.raw`\u202eevil`],
    ["bidi isolates", "\u2066x\u2069", String.raw`\u2066x\u2069`],
    ["bidi marks", "\u200e\u200f\u061c", String.raw`\u200e\u200f\u061c`],
    ["line separator", "a\u2028b", String.raw`a\u2028b`],
    ["lone surrogate", "a\ud800b", String.raw`a\ud800b`],
    ["replacement character stays", "\ufffd", "\ufffd"],
    ["empty", "", ""],
  ];
  for (const [what, input, shown] of table) {
    const got = terminalSafe(input);
    assert.equal(got, shown, what);
    assert.deepEqual(unsafeChars(got), [], what);
    assert.equal(terminalSafe(got), got, `${what}: escaping twice changes nothing`);
  }
});

Deno.test("hostile chat: a message full of escapes reaches parley chat as visible text", async () => {
  const server = await startServer({ users: { alice: "wonderland", bob: "builder" } });
  const chat = startChat([`127.0.0.1:${server.port}`, "--user", "alice"]);
  const bob = await ParleyClient.connect({ port: server.port });
  try {
    chat.type("wonderland");
    await chat.waitFor(/logged in as alice/);
    chat.type("/join lobby");
    await chat.waitFor(/you are in lobby/);
    await bob.login("bob", "builder");
    await bob.join("lobby");
    await bob.say(bytes(
      "\x1b[2J\x1b]0;owned\x07\r[00:00:00] * the server ended this session\x1b[31m",
      " Password for bob: \x1b[8mhidden\u009b2J\u202eright-to-left ",
      [0xff, 0xc3, 0x28], // invalid UTF-8
      " end",
    ));
    await chat.waitFor(/ end$/);
    assert.equal(await chat.finish(), 0);
  } finally {
    await chat.finish();
    await bob.close();
    await server.stop();
  }
  assertPrintedSafe(chat.printed);
  const line = chat.printed.find((printed) => printed.endsWith(" end"))!;
  assert.match(
    line,
    /^\[\d\d:\d\d:\d\d\] <bob> \\u001b\[2J\\u001b\]0;owned\\u0007\\u000d\[00:00:00\]/,
  );
  assert.match(line, /\\u001b\[8mhidden\\u009b2J\\u202eright-to-left \ufffd\ufffd\( end$/);
});

Deno.test("hostile chat: a hostile server's names, rooms, lists and errors are escaped", async () => {
  // A fake server on loopback that answers with controls in every field it sends.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    const send = (line: string) => conn.write(encoder.encode(line + "\n"));
    let partial = "";
    const decoder = new TextDecoder();
    try {
      for await (const chunk of conn.readable) {
        partial += decoder.decode(chunk, { stream: true });
        const lines = partial.split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          if (line.startsWith("8:")) await send("8:"); // v1.1, no features on
          if (line.startsWith("0:")) await send("0:1");
          if (line.startsWith("2:")) {
            await send("2:lo\x1b[2Jbby:alice,ev\x1b]0;t\x07il");
            await send("4:ro\u009bom:us\u202eer");
            await send("5:room:\x1b[8mghost");
            await send("3:se\x1b[31mnder:body\rover");
            await send("9:?:bad\x1b[2J:detail\x1b[K\x08");
          }
          if (line === "1") await send("1:r\x1b[1m,a\x07,b:s\x7f,\u0085c");
        }
      }
    } catch { /* the client went away */ }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  const chat = startChat([`127.0.0.1:${port}`, "--user", "alice", "--stamp-sender"]);
  try {
    chat.type("pw");
    await chat.waitFor(/logged in as alice/);
    chat.type("/join lobby");
    await chat.waitFor(/! the server says: bad/);
    chat.type("/rooms");
    await chat.waitFor(/\* s\\u007f: \\u0085c/);
  } finally {
    await chat.finish();
    listener.close();
    await serving;
  }
  assertPrintedSafe(chat.printed);
  const shown = chat.printed.map((line) => line.replace(/^\[\d\d:\d\d:\d\d\] /, ""));
  for (
    const expected of [
      String.raw`* you are in lo\u001b[2Jbby with alice, ev\u001b]0;t\u0007il`,
      String.raw`* us\u202eer joined ro\u009bom`,
      String.raw`* \u001b[8mghost left room`,
      String.raw`<se\u001b[31mnder> body\u000dover`,
      String.raw`! the server says: bad\u001b[2J: detail\u001b[K\u0008`,
      String.raw`* r\u001b[1m: a\u0007, b`,
    ]
  ) {
    assert.ok(shown.includes(expected), `${expected} not in ${JSON.stringify(shown)}`);
  }
});
