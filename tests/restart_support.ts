/**
 * A server that a test can restart on the same port and database: what a client that comes back
 * by itself (lib/client/client.ts, `parley chat`, the web page) needs to be tested against.
 *
 * @module
 */

import { startServer, tempDir, type TestServer } from "./helpers.ts";
import { startWsServer } from "./ws_support.ts";

/** A server whose process can be stopped and started again where it was. */
export interface RestartableServer {
  /** The running process (a new one after each restart). */
  readonly server: TestServer;
  /** The plain TCP port, the same across restarts. */
  readonly port: number;
  /** The WebSocket port (with `ws`), the same across restarts. */
  readonly wsPort: number;
  /**
   * Stops the process (SIGTERM: it drains, saying `7:shutdown`) and starts a new one; `meanwhile`
   * runs while it is down (with the database's path), e.g. an admin command. `signal` (default
   * SIGTERM) may be SIGKILL: a crash, with no `7:shutdown`.
   */
  restart(meanwhile?: (db: string) => Promise<void>, signal?: Deno.Signal): Promise<void>;
  /** Stops it for good and removes its database. */
  stop(): Promise<void>;
}

/** Starts a server on a database of its own, with `args` (and `--ws-port` with `ws`). */
export async function startRestartable(
  options: { users?: Record<string, string>; args?: string[]; ws?: boolean },
): Promise<RestartableServer> {
  const temp = await tempDir();
  const db = `${temp.dir}/parley.db`;
  const args = options.args ?? [];
  let wsPort = -1;
  const start = async (fixed: string[], users?: Record<string, string>) => {
    if (!options.ws) return await startServer({ db, users, args: [...args, ...fixed] });
    const server = await startWsServer({ db, users, args: [...args, ...fixed] });
    wsPort = server.wsPort;
    return server;
  };
  let server = await start([], options.users).catch(async (error) => {
    await temp.remove();
    throw error;
  });
  const port = server.port;
  return {
    get server() {
      return server;
    },
    port,
    get wsPort() {
      return wsPort;
    },
    async restart(meanwhile, signal) {
      await server.stop(signal);
      await meanwhile?.(db);
      const fixed = ["--port", String(port)];
      if (options.ws) fixed.push("--ws-port", String(wsPort));
      server = await start(fixed);
    },
    async stop() {
      await server.stop();
      await temp.remove();
    },
  };
}
