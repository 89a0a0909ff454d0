/**
 * The web page served at `/` on the WebSocket port with `--web`: one HTML file, three scripts
 * (app.js imports resume.js and view.js), one style sheet, imported as text so `deno compile` and
 * `deno bundle` carry them, and served with a strict Content-Security-Policy.
 *
 * @module
 */

import INDEX_HTML from "./web/index.html" with { type: "text" };
import APP_JS from "./web/app.js" with { type: "text" };
import RESUME_JS from "./web/resume.js" with { type: "text" };
import VIEW_JS from "./web/view.js" with { type: "text" };
import STYLE_CSS from "./web/style.css" with { type: "text" };

/** A file of the page, ready to send. */
export interface PageFile {
  /** The response headers (content type, caching, CSP). */
  headers: Record<string, string>;
  /** The file's bytes. */
  body: Uint8Array;
}

const SECURITY_HEADERS = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "content-security-policy":
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
};

const encoder = new TextEncoder();

function file(text: string, contentType: string): PageFile {
  return {
    headers: { "content-type": contentType, ...SECURITY_HEADERS },
    body: encoder.encode(text),
  };
}

/** The files by path, per stamp-sender setting (encoded once: they never change). */
const pages = new Map<boolean, Map<string, PageFile>>();

function pageFiles(stampSender: boolean): Map<string, PageFile> {
  let files = pages.get(stampSender);
  if (files === undefined) {
    // The page's script reads the setting from a <meta> tag filled in here.
    const index = file(
      INDEX_HTML.replace("__STAMP_SENDER__", String(stampSender)),
      "text/html; charset=utf-8",
    );
    files = new Map([
      ["/", index],
      ["/index.html", index],
      ["/app.js", file(APP_JS, "text/javascript; charset=utf-8")],
      ["/resume.js", file(RESUME_JS, "text/javascript; charset=utf-8")],
      ["/view.js", file(VIEW_JS, "text/javascript; charset=utf-8")],
      ["/style.css", file(STYLE_CSS, "text/css; charset=utf-8")],
    ]);
    pages.set(stampSender, files);
  }
  return files;
}

/**
 * The page file at `path`, or `null` when there is none.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { pageFile } from "./web_page.ts";
 * const index = pageFile("/", true)!;
 * assert.match(index.headers["content-type"], /^text\/html/);
 * assert.match(new TextDecoder().decode(index.body), /name="parley-stamp-sender" content="true"/);
 * assert.equal(pageFile("/nope", true), null);
 * ```
 */
export function pageFile(path: string, stampSender: boolean): PageFile | null {
  return pageFiles(stampSender).get(path) ?? null;
}
