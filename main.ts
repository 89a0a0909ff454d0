/**
 * Parley's entry point: flags → an admin command, or the server.
 *
 * ```sh
 * deno run -A main.ts --port 7777 --db parley.db
 * echo secret | deno run -A main.ts --db parley.db --add-user alice
 * deno run -A main.ts chat 127.0.0.1:7777 --user alice     # or `deno task chat HOST --user alice`
 * ```
 *
 * @module
 */

import { runAdmin } from "./lib/server/admin.ts";
import { runChat } from "./lib/client/chat.ts";
import { startLineInput } from "./lib/client/terminal_input.ts";
import { helpText, parleyEnv, parseInvocation, UsageError, VERSION } from "./lib/server/config.ts";
import { Logger } from "./lib/observe/log.ts";
import { describeDatabase } from "./lib/store/database_url.ts";
import { ParleyServer } from "./lib/server/server.ts";
import { promptHidden } from "./lib/server/terminal.ts";

/** Runs Parley with `args` and returns the exit code (the server returns once it has stopped). */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "chat") {
    return await runChat(args.slice(1), {
      stdin: Deno.stdin.readable,
      isTerminal: Deno.stdin.isTerminal(),
      out: (line) => console.log(line),
      err: (line) => console.error(line),
      promptHidden: async (prompt) => new TextDecoder().decode(await promptHidden(prompt)),
      lineInput: startLineInput,
    });
  }
  let invocation;
  try {
    invocation = parseInvocation(args, parleyEnv());
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`parley: ${error.message}`);
    return 2;
  }
  switch (invocation.kind) {
    case "help":
      console.log(helpText());
      return 0;
    case "version":
      console.log(`parley ${VERSION} (deno ${Deno.version.deno})`);
      return 0;
    case "admin":
      return await runAdmin(invocation.command, invocation.name, invocation.config, {
        stdin: Deno.stdin.readable,
        isTerminal: Deno.stdin.isTerminal(),
        out: (line) => console.log(line),
        err: (line) => console.error(line),
      });
    case "serve":
      return await serve(invocation.config);
  }
}

async function serve(config: Parameters<typeof ParleyServer.start>[0]): Promise<number> {
  const log = new Logger(config.logLevel, undefined, config.logFormat);
  const db = describeDatabase(config.db); // a PostgreSQL URL's password must not reach the log
  log.info("starting", { version: VERSION, deno: Deno.version.deno, db });
  // Listen for signals before starting, so a SIGTERM during start-up still stops cleanly. The
  // first starts the drain (--drain-ms); a second, of either kind, stops at once.
  const signalled = Promise.withResolvers<string>();
  let server: ParleyServer | undefined;
  let stopping = false;
  const on = (signal: string) => () => {
    if (stopping) {
      log.info("stopping-now", { signal });
      server?.hurry();
    }
    stopping = true;
    signalled.resolve(signal);
  };
  const onInt = on("SIGINT");
  const onTerm = on("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  try {
    try {
      server = await ParleyServer.start(config, log);
    } catch (error) {
      console.error(`parley: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    log.info("stopping", { signal: await signalled.promise });
    await server.shutdown();
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
  }
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
