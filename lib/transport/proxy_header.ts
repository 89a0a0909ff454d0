/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2 binary) that a load
 * balancer sends first on each connection to name the client it carries. A byte-level state
 * machine: bytes go in as they arrive, in any split, and at most {@linkcode MAX_PROXY_HEADER_BYTES}
 * are ever held; the result is known as soon as the header is complete or cannot be one.
 *
 * @module
 */

/** The most bytes a v1 header may take, CRLF included (the spec's bound). */
export const MAX_V1_BYTES = 107;
/**
 * The most bytes a v2 header may take: its 16 fixed bytes and what its length announces. The
 * addresses need at most 216 (AF_UNIX); the rest is TLVs (ALPN, authority, unique id, SSL facts),
 * which Parley skips, and a balancer sends far fewer than this.
 */
export const MAX_PROXY_HEADER_BYTES = 4096;

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V1_SIGNATURE = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "
const V2_FIXED_BYTES = 16;
const LF = 0x0a;
const CR = 0x0d;

/**
 * A complete header. `address` is the client's, or null when the header names none the server can
 * use (v2 LOCAL: the balancer's own health check; v1 UNKNOWN; v2 AF_UNSPEC or AF_UNIX): the
 * connection then keeps the balancer's own address, as the spec asks.
 */
export interface ProxyHeader {
  version: 1 | 2;
  address: string | null;
  port: number;
  /** Bytes after the header in what was pushed: the client's first bytes. */
  rest: Uint8Array;
}

/** What {@linkcode ProxyHeaderParser.push} found: more bytes needed, a header, or why not one. */
export type ProxyParse = null | ProxyHeader | { error: string };

/** Whether `bytes` (at least one) could begin a PROXY header, v1 or v2. */
export function looksLikeProxyHeader(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, V1_SIGNATURE.length);
  const matches = (signature: number[]) => signature.slice(0, n).every((b, i) => bytes[i] === b);
  return bytes.length > 0 && (matches(V1_SIGNATURE) || matches(V2_SIGNATURE));
}

/**
 * Reads one PROXY header from the bytes pushed into it, in whatever pieces they come.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProxyHeaderParser } from "./proxy_header.ts";
 * const parser = new ProxyHeaderParser();
 * const text = new TextEncoder().encode("PROXY TCP4 203.0.113.7 10.0.0.1 51000 7777\r\n0:al");
 * assert.equal(parser.push(text.subarray(0, 9)), null); // not complete yet
 * const header = parser.push(text.subarray(9));
 * assert.ok(header !== null && !("error" in header));
 * assert.equal(header.address, "203.0.113.7");
 * assert.equal(new TextDecoder().decode(header.rest), "0:al");
 * assert.deepEqual(new ProxyHeaderParser().push(new TextEncoder().encode("GET /")), {
 *   error: "no PROXY signature",
 * });
 * ```
 */
export class ProxyHeaderParser {
  #held = new Uint8Array(V2_FIXED_BYTES);
  #length = 0;
  /** 0 while the signature is being matched, then the version. */
  #version: 0 | 1 | 2 = 0;
  /** The v2 header's whole size, once its fixed part is in. */
  #v2Size = 0;
  #done = false;

  /** Takes the next bytes; the result once there is one (then push no more). */
  push(chunk: Uint8Array): ProxyParse {
    if (this.#done) throw new Error("the header is already read");
    for (let i = 0; i < chunk.length; i++) {
      const result = this.#byte(chunk[i]);
      if (result === null) continue;
      this.#done = true;
      if ("error" in result) return result;
      return { ...result, rest: chunk.subarray(i + 1) };
    }
    return null;
  }

  #hold(byte: number): void {
    if (this.#length === this.#held.length) {
      const grown = new Uint8Array(Math.min(MAX_PROXY_HEADER_BYTES, this.#held.length * 4));
      grown.set(this.#held);
      this.#held = grown;
    }
    this.#held[this.#length++] = byte;
  }

  #byte(byte: number): Omit<ProxyHeader, "rest"> | { error: string } | null {
    const at = this.#length;
    this.#hold(byte);
    if (this.#version === 0) {
      const v1 = at < V1_SIGNATURE.length &&
        this.#held.subarray(0, at + 1).every((b, i) => b === V1_SIGNATURE[i]);
      const v2 = this.#held.subarray(0, at + 1).every((b, i) => b === V2_SIGNATURE[i]);
      if (!v1 && !v2) return { error: "no PROXY signature" };
      if (v1 && at + 1 === V1_SIGNATURE.length) this.#version = 1;
      if (v2 && at + 1 === V2_SIGNATURE.length) this.#version = 2;
      return null;
    }
    if (this.#version === 1) {
      if (byte === LF) return parseV1(this.#held.subarray(0, this.#length));
      return this.#length >= MAX_V1_BYTES ? { error: "v1 header longer than 107 bytes" } : null;
    }
    if (this.#length === V2_FIXED_BYTES) {
      const held = this.#held;
      if (held[12] >> 4 !== 2) return { error: `v2 version ${held[12] >> 4}` };
      this.#v2Size = V2_FIXED_BYTES + (held[14] << 8 | held[15]);
      if (this.#v2Size > MAX_PROXY_HEADER_BYTES) {
        return { error: `v2 header of ${this.#v2Size} bytes, over ${MAX_PROXY_HEADER_BYTES}` };
      }
    }
    if (this.#length < V2_FIXED_BYTES || this.#length < this.#v2Size) return null;
    return parseV2(this.#held.subarray(0, this.#length));
  }
}

const latin1 = new TextDecoder("latin1");
const PORT = /^(0|[1-9][0-9]{0,4})$/;

/** A whole v1 line, `PROXY ` to LF. */
function parseV1(line: Uint8Array): Omit<ProxyHeader, "rest"> | { error: string } {
  if (line.length < 2 || line[line.length - 2] !== CR) return { error: "v1 header without CRLF" };
  const words = latin1.decode(line.subarray(0, line.length - 2)).split(" ");
  if (words[1] === "UNKNOWN") return { version: 1, address: null, port: 0 };
  if (words.length !== 6) return { error: "v1 header without 6 fields" };
  const [, family, source, , sourcePort, destinationPort] = words;
  const bytes = family === "TCP4"
    ? parseIPv4(source)
    : family === "TCP6"
    ? parseIPv6(source)
    : null;
  if (family !== "TCP4" && family !== "TCP6") return { error: "v1 family not TCP4/TCP6" };
  const ports = [sourcePort, destinationPort];
  const destination = family === "TCP4" ? parseIPv4(words[3]) : parseIPv6(words[3]);
  if (bytes === null || destination === null) return { error: `v1 bad ${family} address` };
  if (!ports.every((p) => PORT.test(p) && Number(p) <= 65535)) return { error: "v1 bad port" };
  return { version: 1, address: formatAddress(bytes), port: Number(sourcePort) };
}

/** A whole v2 header: fixed part, addresses, TLVs (skipped). */
function parseV2(header: Uint8Array): Omit<ProxyHeader, "rest"> | { error: string } {
  const command = header[12] & 0x0f;
  if (command === 0x0) return { version: 2, address: null, port: 0 }; // LOCAL: the balancer's own
  if (command !== 0x1) return { error: `v2 command ${command}` };
  const family = header[13] >> 4;
  const protocol = header[13] & 0x0f;
  const body = header.subarray(V2_FIXED_BYTES);
  if (family === 0x0 || family === 0x3) return { version: 2, address: null, port: 0 };
  if (family !== 0x1 && family !== 0x2) return { error: `v2 address family ${family}` };
  if (protocol !== 0x1) return { error: "v2 protocol is not STREAM" };
  const size = family === 0x1 ? 4 : 16;
  if (body.length < size * 2 + 4) return { error: "v2 addresses longer than the header" };
  const port = body[size * 2] << 8 | body[size * 2 + 1];
  return { version: 2, address: formatAddress(body.slice(0, size)), port };
}

/**
 * An IP address in text (dotted IPv4, or IPv6 with `::` and a dotted tail allowed) to its 4 or 16
 * bytes, or null: strict, so a header cannot name something else.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAddress } from "./proxy_header.ts";
 * assert.deepEqual(parseAddress("10.0.0.1"), new Uint8Array([10, 0, 0, 1]));
 * assert.equal(parseAddress("::ffff:10.0.0.1")?.length, 16);
 * assert.equal(parseAddress("10.0.0.01"), null);
 * assert.equal(parseAddress("1::2::3"), null);
 * ```
 */
export function parseAddress(text: string): Uint8Array | null {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Dotted-quad IPv4 to its 4 bytes, or null. */
function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => DECIMAL_OCTET.test(p) && Number(p) < 256)) {
    return null;
  }
  return new Uint8Array(parts.map(Number));
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Textual IPv6 (with `::` and a dotted-quad tail allowed) to its 16 bytes, or null. */
function parseIPv6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2 || text.length > 45) return null;
  const groupsOf = (part: string): number[] | null => {
    if (part === "") return [];
    const groups: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIPv4(piece);
        if (v4 === null) return null;
        groups.push(v4[0] << 8 | v4[1], v4[2] << 8 | v4[3]);
      } else if (HEX_GROUP.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return groups;
  };
  const front = groupsOf(halves[0]);
  const back = halves.length === 2 ? groupsOf(halves[1]) : [];
  if (front === null || back === null) return null;
  const missing = 8 - front.length - back.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...front, ...Array(halves.length === 2 ? missing : 0).fill(0), ...back];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => (bytes[2 * i] = g >> 8, bytes[2 * i + 1] = g & 0xff));
  return bytes;
}

/**
 * An address's bytes as text, the way the socket layer writes a peer's: dotted IPv4; IPv6 in
 * RFC 5952 form, an IPv4-mapped one as `::ffff:a.b.c.d` (which admission counts as the IPv4).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress } from "./proxy_header.ts";
 * assert.equal(formatAddress(new Uint8Array([192, 0, 2, 1])), "192.0.2.1");
 * const v6 = new Uint8Array(16);
 * v6.set([0x20, 0x01, 0x0d, 0xb8]);
 * v6[15] = 1;
 * assert.equal(formatAddress(v6), "2001:db8::1");
 * ```
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups = Array.from({ length: 8 }, (_, i) => bytes[2 * i] << 8 | bytes[2 * i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12).join(".")}`;
  }
  // The longest run of two or more zero groups (the first such) becomes `::`.
  let best = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
}
