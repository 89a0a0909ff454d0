/**
 * `parley chat HOST:PORT --user NAME`: a terminal client on {@linkcode ParleyClient}.
 *
 * The password is asked for without echo on a terminal; when stdin is not a terminal, its first
 * line is the password and the following lines are typed input (so it can be scripted and
 * tested). Plain text goes to the others in the room (`3:1`); commands start with `/`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ParleyClient, ParleyError, type ParleyEvent } from "./client.ts";
import { terminalSafe } from "./terminal_text.ts";
import type { LineInput } from "./terminal_input.ts";

/** Where the chat reads and writes. */
export interface ChatIO {
  /** Typed input (and, when not a terminal, the password as its first line). */
  stdin: ReadableStream<Uint8Array>;
  /** Whether stdin is a terminal: then the password is prompted for, hidden. */
  isTerminal: boolean;
  /** Prints a line for the user (after `--help`, always through `terminalSafe`). */
  out: (line: string) => void;
  /** Prints an error line (always through `terminalSafe`). */
  err: (line: string) => void;
  /** Asks for a password without echo (terminals only). */
  promptHidden?: (prompt: string) => Promise<string>;
  /** The clock, for the times shown (tests may pin it). */
  now?: () => Date;
  /**
   * On a terminal, starts the input line (terminal_input.ts) once the password is in: typed
   * lines come from it, and every line printed goes above what is being typed.
   */
  lineInput?: (prompt: string) => LineInput;
}

/** The text of `parley chat --help`. */
export const CHAT_HELP =
  `Usage: parley chat HOST[:PORT] --user NAME [--tls] [--ca FILE] [--stamp-sender]

Connects to a Parley server (port 7777 unless given) and logs in (the password is asked for, hidden; when stdin is not a
terminal its first line is the password). Each message shows its sender, and (direct) marks one
sent to you alone. A lost connection or a server restart is retried by itself, with a growing
random delay, resuming the session (or logging in again with the password given at the start)
and rejoining your room; it ends, saying why, if the user logs in elsewhere or is removed. On a
terminal, what you type stays on the bottom line while messages arrive above it. Then:
  TEXT                      say TEXT to the others in your room
  /join ROOM [PASSWORD]     join (or create) ROOM
  /rooms                    list the rooms and who is in them
  /msg USER[,USER] TEXT     send TEXT to those users, wherever they are (no ':' in TEXT)
  /all TEXT                 say TEXT to everyone in your room, you included
  /quit                     leave (end of input, Ctrl-C or Ctrl-D do the same)

Flags:
  --user NAME               the username to log in as
  --tls                     connect with TLS
  --ca FILE                 trust this CA certificate (PEM) as well as the system's
  --stamp-sender            the server runs with --stamp-sender: show who sent each message`;

/** The port `parley chat HOST` connects to: the server's default `--port`. */
const DEFAULT_PORT = 7777;

/** `HH:MM:SS` of `date`, local time. */
function clock(date: Date): string {
  return [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((n) => String(n).padStart(2, "0")).join(":");
}

/** Splits a byte stream into text lines (CR before LF dropped). */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let partial = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    partial += chunk;
    let at;
    while ((at = partial.indexOf("\n")) !== -1) {
      yield partial.slice(0, at).replace(/\r$/, "");
      partial = partial.slice(at + 1);
    }
  }
  if (partial !== "") yield partial.replace(/\r$/, "");
}

/**
 * How an event is shown, before `terminalSafe` (runChat passes every line it prints through it, so
 * names, rooms, messages and errors from the network never reach the terminal raw).
 */
export function describeEvent(event: ParleyEvent): string {
  switch (event.type) {
    case "message":
      if (event.sender === undefined) return event.text;
      return `<${event.sender}>${event.direct ? " (direct)" : ""} ${event.text}`;
    case "joined":
      return `* you are in ${event.room} with ${event.members.join(", ")}`;
    case "presence":
      return `* ${event.user} ${event.action === "join" ? "joined" : "left"} ${event.room}`;
    case "error":
      return `! ${errorSentence(event.reason)}${event.detail ? `: ${event.detail}` : ""}`;
    case "session-ended":
      return "* the server ended this session (logged in elsewhere, or removed)";
    case "reason":
      return `* ${NOTICES[event.reason] ?? `the server says: ${event.reason}`}`;
    case "reconnecting":
      return `* ${event.attempt === 1 ? "connection lost" : "still no server"}; ` +
        `reconnecting in ${(event.delayMs / 1000).toFixed(1)} s…`;
    case "reconnected":
      return `* back (${event.resumed ? "resumed" : "logged in again"})`;
    case "ended":
      return `parley chat: ${ENDINGS[event.reason] ?? `stopped (${event.reason})`}`;
  }
}

/** What the server's `9:<code>:<reason>` means (docs/protocol.md, "Errors"), said to the person. */
const ERRORS: Record<string, string> = {
  "malformed": "the server did not understand that line",
  "too-long": "that line is too long for the server",
  "bad-name": "that is not a valid room name",
  "room-password": "wrong password for that room",
  "room-limit": "no more rooms can be made (the server's or your limit)",
  "not-in-room": "join a room first (/join ROOM)",
  "not-online": "not online",
  "too-many-targets": "too many people named at once; nothing was sent",
  "rate-limited": "slow down: the server is dropping lines sent this fast",
  "server-full": "the server is full",
  "logged-out": "not logged in",
};

/** A server error reason as a sentence (an unknown one as it came). */
export function errorSentence(reason: string): string {
  return ERRORS[reason] ?? `the server says: ${reason}`;
}

/** What the server's `7:<reason>` means, said to the person. */
const NOTICES: Record<string, string> = {
  "shutdown": "the server is going away",
  "slow": "the server dropped this connection: its output was not read in time",
  "idle": "the server closed the connection: no login in time",
  "busy": "the server is busy",
};

/** The sentence `parley chat` exits with, by the reason the client stopped. */
const ENDINGS: Record<string, string> = {
  "replaced": "this user logged in somewhere else, so this chat ends here",
  "removed": "the server's operator removed this user, so this chat ends here",
  "session-ended": "the server ended this session (logged in elsewhere, or removed)",
  "login-refused": "the server refused the password after reconnecting",
  "no-password": "cannot log in again without the password",
  "gave-up": "gave up reconnecting",
};

/**
 * Runs the chat with `args` (what follows `chat`) and returns the exit code.
 *
 * @example Usage
 * ```ts ignore
 * const code = await runChat(["127.0.0.1:7777", "--user", "alice"], {
 *   stdin: Deno.stdin.readable,
 *   isTerminal: Deno.stdin.isTerminal(),
 *   out: console.log,
 *   err: console.error,
 * });
 * ```
 */
export async function runChat(args: string[], rawIO: ChatIO): Promise<number> {
  // Every line printed may hold text from the network (or from args echoed back): none reaches the
  // terminal with a control character, an escape sequence or a bidi override in it.
  const io: ChatIO = {
    ...rawIO,
    out: (line) => rawIO.out(terminalSafe(line)),
    err: (line) => rawIO.err(terminalSafe(line)),
  };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        user: { type: "string" },
        tls: { type: "boolean" },
        ca: { type: "string" },
        "stamp-sender": { type: "boolean" },
        help: { type: "boolean" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    io.err(`parley chat: ${(error as Error).message.split("\n")[0]} (see parley chat --help)`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    rawIO.out(CHAT_HELP); // several lines, none from the network
    return 0;
  }
  const target = positionals[0] ?? "";
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(target);
  if (positionals.length !== 1 || match === null || !values.user) {
    io.err("parley chat: usage: parley chat HOST[:PORT] --user NAME (see parley chat --help)");
    return 2;
  }
  const hostname = match[1] ?? match[2];
  const port = Number(match[3] ?? DEFAULT_PORT);
  const now = io.now ?? (() => new Date());
  const show = (text: string) => io.out(`[${clock(now())}] ${text}`);

  let input: AsyncIterator<string> = lines(io.stdin);
  let password: string;
  if (io.isTerminal) {
    if (!io.promptHidden) throw new Error("a terminal needs promptHidden");
    password = await io.promptHidden(`Password for ${values.user}: `);
  } else {
    const first = await input.next();
    if (first.done) {
      io.err("parley chat: no password on stdin (its first line is the password)");
      return 2;
    }
    password = first.value;
  }

  // On a terminal the typed text gets its own line, redrawn below every line printed.
  const line = io.isTerminal && io.lineInput ? io.lineInput(`${values.user}> `) : null;
  if (line !== null) {
    input = line.lines;
    io.out = (text) => line.print(terminalSafe(text));
    io.err = (text) => line.print(terminalSafe(text), "err");
  }
  try {
    return await chatSession(
      { hostname, port, values: { ...values, user: values.user }, password },
      io,
      input,
      show,
    );
  } finally {
    line?.close();
  }
}

/** What runChat read from its arguments and the user, for the session. */
interface SessionSetup {
  hostname: string;
  port: number;
  values: { user: string; tls?: boolean; ca?: string; "stamp-sender"?: boolean };
  password: string;
}

/** Connects, logs in and runs the chat until /quit, the end of input, or the client stops. */
async function chatSession(
  { hostname, port, values, password }: SessionSetup,
  io: ChatIO,
  input: AsyncIterator<string>,
  show: (text: string) => void,
): Promise<number> {
  let client: ParleyClient;
  try {
    client = await ParleyClient.connect({
      hostname,
      port,
      tls: values.tls || values.ca
        ? { caCerts: values.ca ? [await Deno.readTextFile(values.ca)] : undefined }
        : false,
      stampSender: values["stamp-sender"],
      reconnect: true, // the password typed stays in memory, to come back without asking again
    });
  } catch (error) {
    const where = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
    io.err(`parley chat: cannot connect to ${where}: ${(error as Error).message}`);
    return 1;
  }
  try {
    try {
      const id = await client.login(values.user, password);
      show(`* logged in as ${values.user} (session ${id}); /join ROOM to start, /quit to leave`);
    } catch (error) {
      io.err(
        error instanceof ParleyError
          ? `parley chat: login failed for ${values.user}: wrong username or password`
          : `parley chat: ${(error as Error).message}`,
      );
      return 1;
    }

    let ended = false;
    let back = false;
    const printer = (async () => {
      for await (const event of client) {
        // The /join command prints its own answer; a rejoin after reconnecting is shown here.
        if (event.type === "joined" && !back) continue;
        back = event.type === "reconnected";
        if (event.type === "ended") {
          io.err(describeEvent(event));
          ended = true;
          return;
        }
        const final = event.type === "reason" &&
          (event.reason === "replaced" || event.reason === "removed");
        // The `ended` sentence, or the reason line before it, says why the session ended.
        if (final || (event.type === "session-ended" && event.reason !== undefined)) continue;
        show(describeEvent(event));
      }
    })().catch((error) => io.err(`parley chat: ${(error as Error).message}`));

    // Reads typed lines until /quit, the end of input, or the client stops (then at once).
    const stopped = printer.then(() => null);
    for (;;) {
      const next = await Promise.race([input.next(), stopped]);
      if (next === null || next.done || client.closed) break;
      if (!await command(client, next.value, show, io)) break;
    }
    // Input is over: let what was sent reach the server, then leave.
    await client.close();
    await printer;
    if (ended) return 1;
    return 0;
  } finally {
    await client.close();
  }
}

/** Runs one typed line; false means quit. */
async function command(
  client: ParleyClient,
  line: string,
  show: (text: string) => void,
  io: ChatIO,
): Promise<boolean> {
  if (line.trim() === "") return true;
  if (!line.startsWith("/")) {
    await client.say(line);
    return true;
  }
  const [verb, ...rest] = line.slice(1).split(" ");
  const argument = rest.join(" ");
  try {
    switch (verb) {
      case "quit":
        return false;
      case "rooms": {
        const rooms = await client.rooms();
        if (rooms.length === 0) show("* no rooms yet");
        for (const room of rooms) {
          show(`* ${room.name}: ${room.members.length ? room.members.join(", ") : "(empty)"}`);
        }
        return true;
      }
      case "join": {
        const [room, ...password] = argument.split(" ");
        if (!room) {
          io.err("usage: /join ROOM [PASSWORD]");
          return true;
        }
        const joined = await client.join(room, password.join(" "));
        show(`* you are in ${joined.room} with ${joined.members.join(", ")}`);
        return true;
      }
      case "msg": {
        const space = argument.indexOf(" ");
        if (space <= 0) {
          io.err("usage: /msg USER[,USER] TEXT");
          return true;
        }
        const users = argument.slice(0, space).split(",").filter((u) => u !== "");
        await client.tell(users, argument.slice(space + 1));
        return true;
      }
      case "all":
        await client.say(argument, { echo: true });
        return true;
      default:
        io.err(`unknown command /${verb} (try /join, /rooms, /msg, /all, /quit)`);
        return true;
    }
  } catch (error) {
    if (error instanceof ParleyError) {
      show(`! ${errorSentence(error.reason)}`);
    } else if (error instanceof TypeError) {
      io.err(`! ${error.message}`);
    } else if (!client.closed) {
      show("! not sent: not connected (reconnecting)");
    }
    return true;
  }
}
