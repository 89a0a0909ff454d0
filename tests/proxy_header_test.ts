// The PROXY header parser (lib/transport/proxy_header.ts): v1 and v2, IPv4 and IPv6, LOCAL and
// UNKNOWN, any split of the bytes, and every way a header can be wrong, bounded.
import assert from "node:assert/strict";
import {
  MAX_PROXY_HEADER_BYTES,
  ProxyHeaderParser,
  type ProxyParse,
} from "../lib/transport/proxy_header.ts";
import { AddressList } from "../lib/transport/address_list.ts";
import { lastForwardedFor } from "../lib/transport/proxied_socket.ts";
import { parseInvocation, UsageError } from "../lib/server/config.ts";
import { bytes } from "./helpers.ts";
import { v1, v2 } from "./proxy_support.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** Pushes `input` in pieces of `size` bytes; the first result. */
function parse(input: Uint8Array, size = input.length): ProxyParse {
  const parser = new ProxyHeaderParser();
  for (let at = 0; at < input.length; at += size) {
    const result = parser.push(input.subarray(at, at + size));
    if (result !== null) return result;
  }
  return null;
}

function header(result: ProxyParse) {
  assert.ok(result !== null && !("error" in result), JSON.stringify(result));
  return result;
}

function error(result: ProxyParse): string {
  assert.ok(result !== null && "error" in result, JSON.stringify(result));
  return result.error;
}

Deno.test("proxy header: v1 TCP4 and TCP6, the rest kept, in any split", () => {
  const input = bytes(v1("203.0.113.7", 51000), "0:alice:pw\n");
  for (const size of [1, 2, 5, 40, input.length]) {
    const parser = new ProxyHeaderParser();
    let result: ProxyParse = null;
    const rest: number[] = [];
    for (let at = 0; at < input.length; at += size) {
      const piece = input.subarray(at, at + size);
      if (result === null) {
        result = parser.push(piece);
        if (result !== null) rest.push(...header(result).rest);
      } else rest.push(...piece);
    }
    const found = header(result);
    assert.deepEqual([found.version, found.address, found.port], [1, "203.0.113.7", 51000]);
    assert.equal(new TextDecoder().decode(new Uint8Array(rest)), "0:alice:pw\n");
  }
  assert.equal(header(parse(v1("2001:DB8:0:0::7"))).address, "2001:db8::7");
  assert.equal(header(parse(v1("::ffff:192.0.2.1"))).address, "::ffff:192.0.2.1");
  assert.equal(header(parse(text("PROXY UNKNOWN\r\n"))).address, null);
  assert.equal(header(parse(text("PROXY UNKNOWN ffff:: 1:: 1 2\r\n"))).address, null);
});

Deno.test("proxy header: v2 IPv4, IPv6, LOCAL, AF_UNSPEC, TLVs skipped, in any split", () => {
  const ipv6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42];
  for (const size of [1, 3, 16, 100]) {
    const four = header(parse(bytes(v2([192, 0, 2, 9], { port: 443 }), "x"), size));
    assert.deepEqual([four.version, four.address, four.port], [2, "192.0.2.9", 443]);
    if (size === 100) assert.deepEqual([...four.rest], [0x78]);
    assert.equal(header(parse(v2(ipv6, { tlv: 300 }), size)).address, "2001:db8::42");
  }
  assert.equal(header(parse(v2([10, 0, 0, 1], { local: true }))).address, null);
  assert.equal(header(parse(v2())).address, null); // AF_UNSPEC
  assert.equal(header(parse(v2(Array(216).fill(0), { family: 3 }))).address, null); // AF_UNIX
});

Deno.test("proxy header: garbage, truncated, oversize and malformed headers are errors", () => {
  assert.equal(error(parse(text("0:alice:pw\n"))), "no PROXY signature");
  assert.equal(error(parse(text("GET / HTTP/1.1\r\n"))), "no PROXY signature");
  assert.equal(error(parse(text("PROXYX"))), "no PROXY signature");
  assert.equal(
    error(parse(bytes([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x00]))),
    "no PROXY signature",
  );
  // Truncated: no result yet, whatever the split.
  assert.equal(parse(v1("192.0.2.1").subarray(0, 20)), null);
  assert.equal(parse(v2([192, 0, 2, 1]).subarray(0, 27)), null);
  // Oversize: a v1 line without its LF in 107 bytes, a v2 length past the bound.
  assert.match(error(parse(text("PROXY TCP4 " + "1".repeat(200)))), /longer than 107/);
  const huge = v2([192, 0, 2, 1], { tlv: MAX_PROXY_HEADER_BYTES });
  assert.match(error(parse(huge.subarray(0, 16))), /over 4096/);
  for (
    const bad of [
      "PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n", // no CR
      "PROXY TCP4 192.0.2.1 10.0.0.1 1\r\n",
      "PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n",
      "PROXY TCP4 192.0.2.01 10.0.0.1 1 2\r\n",
      "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
      "PROXY TCP6 1::2::3 ::1 1 2\r\n",
      "PROXY TCP4 192.0.2.1 10.0.0.1 65536 2\r\n",
      "PROXY TCP4  192.0.2.1 10.0.0.1 1 2\r\n",
      "PROXY UDP4 192.0.2.1 10.0.0.1 1 2\r\n",
    ]
  ) error(parse(text(bad)));
  const wrongVersion = v2([192, 0, 2, 1]);
  wrongVersion[12] = 0x11;
  assert.match(error(parse(wrongVersion)), /v2 version 1/);
  const dgram = v2([192, 0, 2, 1]);
  dgram[13] = 0x12;
  assert.match(error(parse(dgram)), /STREAM/);
  const short = v2([192, 0, 2, 1]);
  short[15] = 4; // says 4 bytes: too few for two IPv4 addresses and ports
  assert.match(error(parse(short)), /addresses longer/);
});

Deno.test("proxy header: a parser holds no more than the bound, however much is pushed", () => {
  const parser = new ProxyHeaderParser();
  assert.equal(parser.push(v2([192, 0, 2, 1], { tlv: 4000 }).subarray(0, 3000)), null);
  // 16 + 12 + 4000 bytes in all: 1028 more end it, and the other 72 are the client's.
  assert.equal(header(parser.push(new Uint8Array(1100))).rest.length, 72);
  assert.throws(() => parser.push(new Uint8Array(1)), /already read/);
});

Deno.test("proxy header: --proxy-protocol lists and X-Forwarded-For's last hop", () => {
  const list = AddressList.parse(["192.0.2.0/24", "2001:db8::/32", "127.0.0.2"]);
  assert.ok(list.has("192.0.2.200") && list.has("2001:db8:ff::1") && list.has("127.0.0.2"));
  assert.ok(!list.has("192.0.3.1") && !list.has("2001:db9::1") && !list.has("127.0.0.1"));
  for (const bad of ["example.com", "10.0.0.0/", "10.0.0.0/8/8", "::/129", ""]) {
    assert.throws(() => AddressList.parse([bad]), RangeError, bad);
  }
  assert.equal(lastForwardedFor("1.1.1.1,2.2.2.2"), "2.2.2.2");
  assert.equal(lastForwardedFor("2.2.2.2, not-an-address"), null);
});

Deno.test("proxy header: --proxy-protocol and PARLEY_PROXY_PROTOCOL, checked", () => {
  const run = parseInvocation([
    "--proxy-protocol",
    "10.0.0.5, 10.1.0.0/16",
    "--proxy-protocol",
    "::1",
  ], {});
  assert.ok(run.kind === "serve");
  assert.deepEqual(run.config.proxyProtocol, ["10.0.0.5", "10.1.0.0/16", "::1"]);
  const env = parseInvocation([], { PARLEY_PROXY_PROTOCOL: "192.0.2.1,192.0.2.2" });
  assert.ok(env.kind === "serve");
  assert.deepEqual(env.config.proxyProtocol, ["192.0.2.1", "192.0.2.2"]);
  assert.throws(
    () => parseInvocation(["--proxy-protocol", "haproxy.internal"], {}),
    (error: unknown) =>
      error instanceof UsageError &&
      /^--proxy-protocol: "haproxy\.internal" is not/.test(error.message),
  );
  assert.throws(
    () => parseInvocation([], { PARLEY_PROXY_PROTOCOL: "10.0.0.0/40" }),
    /: PARLEY_PROXY_PROTOCOL: "10\.0\.0\.0\/40"/,
  );
});
