/**
 * Origins, as the WebSocket port's `Origin` check compares them: the canonical form of an allowed
 * origin, and whether a request's `Origin` may go ahead. Pure functions, so the configuration can
 * check `--ws-origin` without importing a transport.
 *
 * @module
 */

/**
 * The canonical form of an allowed origin (`scheme://host[:port]`, lower case, no default port,
 * no path), or `null` when `text` is not an origin of an http(s) page.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeOrigin } from "./origin.ts";
 * assert.equal(normalizeOrigin("https://Game.Example:443/"), "https://game.example");
 * assert.equal(normalizeOrigin("game.example"), null);
 * ```
 */
export function normalizeOrigin(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username || url.password || url.search || url.hash) return null;
  if (url.pathname !== "/" && url.pathname !== "") return null;
  return url.origin;
}

/**
 * Whether an upgrade with this `Origin` header may go ahead. With no allowed origins, any may.
 * A request without an `Origin` header is not from a browser page (browsers always send one on
 * WebSocket upgrades) and is let in: the check exists to stop other sites' pages from using a
 * visitor's browser, and a non-browser client could send any header it liked anyway. Only the
 * listed origins pass: the request's `Host` header plays no part, since a DNS-rebinding page
 * (`http://evil.example:PORT` resolving to this server) sends a `Host` that matches its own
 * `Origin`. The built-in page's origin is allowed by listing it (`--web-origin`, `--ws-origin`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { originAllowed } from "./origin.ts";
 * const allowed = ["https://game.example"];
 * assert.equal(originAllowed("https://game.example", allowed), true);
 * assert.equal(originAllowed("https://GAME.example:443", allowed), true);
 * assert.equal(originAllowed("https://evil.example", allowed), false);
 * assert.equal(originAllowed(null, allowed), true);
 * assert.equal(originAllowed("https://evil.example", []), true);
 * ```
 */
export function originAllowed(origin: string | null, allowed: readonly string[]): boolean {
  if (allowed.length === 0 || origin === null) return true;
  const normalized = normalizeOrigin(origin);
  if (normalized === null) return false; // "null" (a sandboxed page, a file) or garbage
  return allowed.includes(normalized);
}
