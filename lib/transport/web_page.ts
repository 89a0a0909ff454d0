/**
 * The web page served at `/` on the WebSocket port with `--web`: one HTML file, four scripts
 * (app.js imports resume.js, rooms.js and view.js), one style sheet, imported as text so
 * `deno compile` and `deno bundle` carry them, and a small icon drawn here; all served with a strict
 * Content-Security-Policy.
 *
 * @module
 */

import INDEX_HTML from "./web/index.html" with { type: "text" };
import APP_JS from "./web/app.js" with { type: "text" };
import RESUME_JS from "./web/resume.js" with { type: "text" };
import ROOMS_JS from "./web/rooms.js" with { type: "text" };
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

function file(content: string | Uint8Array, contentType: string): PageFile {
  return {
    headers: { "content-type": contentType, ...SECURITY_HEADERS },
    body: typeof content === "string" ? encoder.encode(content) : content,
  };
}

// The icon: a speech bubble in the page's accent colour, 16x16 ('#' blue, 'o' white, '.' clear).
const ICON = [
  "................",
  "..############..",
  ".##############.",
  ".##############.",
  ".##oo##oo##oo##.",
  ".##oo##oo##oo##.",
  ".##############.",
  ".##############.",
  "..############..",
  "...###..........",
  "...##...........",
  "..#.............",
  "................",
  "................",
  "................",
  "................",
];
const ICON_COLOURS: Record<string, number[]> = { // B, G, R, A
  "#": [0xde, 0x6f, 0x2f, 0xff],
  "o": [0xff, 0xff, 0xff, 0xff],
  ".": [0, 0, 0, 0],
};

/**
 * `/favicon.ico`: one 32-bit BMP image in an ICO file (1,150 bytes), so browsers get no 404.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { faviconIco } from "./web_page.ts";
 * const ico = faviconIco();
 * assert.deepEqual([...ico.subarray(0, 6)], [0, 0, 1, 0, 1, 0]); // an icon file with one image
 * assert.equal(ico.length, 1150);
 * ```
 */
export function faviconIco(): Uint8Array {
  const size = 16;
  const pixels = size * size * 4;
  const mask = size * 4; // the AND mask: 1 bit a pixel, rows padded to 4 bytes; alpha rules here
  const ico = new Uint8Array(6 + 16 + 40 + pixels + mask);
  const view = new DataView(ico.buffer);
  view.setUint16(2, 1, true); // type: icon
  view.setUint16(4, 1, true); // one image
  ico.set([size, size, 0, 0], 6);
  view.setUint16(10, 1, true); // planes
  view.setUint16(12, 32, true); // bits a pixel
  view.setUint32(14, 40 + pixels + mask, true);
  view.setUint32(18, 22, true); // where the image starts
  view.setUint32(22, 40, true); // BITMAPINFOHEADER
  view.setInt32(26, size, true);
  view.setInt32(30, size * 2, true); // image and mask together
  view.setUint16(34, 1, true);
  view.setUint16(36, 32, true);
  view.setUint32(42, pixels + mask, true);
  ICON.forEach((row, y) => { // BMP rows go bottom up
    [...row].forEach((cell, x) =>
      ico.set(ICON_COLOURS[cell], 62 + ((size - 1 - y) * size + x) * 4)
    );
  });
  return ico;
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
      ["/rooms.js", file(ROOMS_JS, "text/javascript; charset=utf-8")],
      ["/view.js", file(VIEW_JS, "text/javascript; charset=utf-8")],
      ["/style.css", file(STYLE_CSS, "text/css; charset=utf-8")],
      ["/favicon.ico", file(faviconIco(), "image/x-icon")],
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
 * assert.equal(pageFile("/favicon.ico", true)!.headers["content-type"], "image/x-icon");
 * assert.equal(pageFile("/nope", true), null);
 * ```
 */
export function pageFile(path: string, stampSender: boolean): PageFile | null {
  return pageFiles(stampSender).get(path) ?? null;
}
