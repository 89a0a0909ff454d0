/**
 * The input line of `parley chat` on a terminal: Node's own `node:readline` (which Deno provides,
 * raw mode included) keeps what is being typed on the bottom line, and every line printed goes
 * above it, the typed text drawn again intact below. readline brings the usual keys (←/→,
 * Home/End, ↑/↓ for earlier lines, Ctrl-U/K/W, Ctrl-A/E) and measures wide characters right.
 *
 * @module
 */

import readline from "node:readline";
import process from "node:process";

/** Typed lines in, printed lines out, on one terminal. */
export interface LineInput {
  /** The lines entered; ends on Ctrl-C, Ctrl-D on an empty line, or the end of input. */
  lines: AsyncIterator<string>;
  /** Prints `line` (already made safe) above the input line, on stdout or stderr. */
  print(line: string, stream?: "out" | "err"): void;
  /** Clears the input line and gives the terminal back its usual mode. */
  close(): void;
}

/**
 * Starts an input line with `prompt` on the process's terminal.
 *
 * @example Usage
 * ```ts ignore
 * const input = startLineInput("alice> ");
 * input.print("[12:00:00] <bob> hi");
 * const typed = await input.lines.next();
 * input.close();
 * ```
 */
export function startLineInput(prompt: string): LineInput {
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: true,
    prompt,
    historySize: 100,
  });
  const typed: string[] = [];
  let ended = false;
  let closed = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  rl.on("line", (text: string) => {
    typed.push(text); // readline leaves the line as typed on screen, then a new prompt
    rl.prompt();
    poke();
  });
  rl.on("SIGINT", () => rl.close()); // Ctrl-C: quit, as /quit does
  rl.on("close", () => {
    ended = true;
    poke();
  });
  rl.prompt();

  /** Writes `text` where the input line was, then draws the input line again below it. */
  const above = (write: (text: string) => void, text: string) => {
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    write(text + "\n");
    rl.prompt(true); // true: the cursor stays where it was in the typed text
  };
  return {
    lines: {
      async next() {
        while (typed.length === 0 && !ended) await new Promise<void>((r) => wake = r);
        if (typed.length > 0) return { done: false, value: typed.shift()! };
        return { done: true, value: undefined };
      },
    },
    print(line, stream = "out") {
      const write = stream === "err"
        ? (text: string) => process.stderr.write(text)
        : (text: string) => process.stdout.write(text);
      if (closed) write(line + "\n");
      else above(write, line);
    },
    close() {
      if (closed) return;
      closed = true;
      readline.clearLine(process.stdout, 0);
      readline.cursorTo(process.stdout, 0);
      rl.close(); // and raw mode off
      process.stdin.pause();
    },
  };
}
