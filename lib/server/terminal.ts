/**
 * Reading a secret from the terminal without echoing it (the admin CLI's and the chat client's
 * password prompts).
 *
 * @module
 */

const encoder = new TextEncoder();

/** Thrown by {@linkcode promptHidden} when the user presses Ctrl-C or Ctrl-D. */
export class PromptCancelled extends Error {
  constructor() {
    super("cancelled");
    this.name = "PromptCancelled";
  }
}

/**
 * Writes `prompt` to stderr and reads one line from the terminal in raw mode, echoing nothing.
 * Backspace erases; Ctrl-C or Ctrl-D cancels with {@linkcode PromptCancelled}.
 *
 * @example Usage
 * ```ts ignore
 * import { promptHidden } from "./terminal.ts";
 * const password = await promptHidden("Password: ");
 * ```
 */
export async function promptHidden(prompt: string): Promise<Uint8Array> {
  Deno.stderr.writeSync(encoder.encode(prompt));
  Deno.stdin.setRaw(true);
  const typed: number[] = [];
  try {
    const byte = new Uint8Array(1);
    for (;;) {
      const n = await Deno.stdin.read(byte);
      if (n === null) break;
      const b = byte[0];
      if (b === 0x0d || b === 0x0a) break;
      if (b === 0x03 || b === 0x04) throw new PromptCancelled();
      if (b === 0x7f || b === 0x08) typed.pop();
      else typed.push(b);
    }
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(encoder.encode("\n"));
  }
  return new Uint8Array(typed);
}
