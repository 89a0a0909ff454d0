/**
 * PROXY protocol headers as a balancer sends them (HAProxy's proxy-protocol.txt), for the parser's
 * tests and the end-to-end ones.
 *
 * @module
 */

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v1 header naming `source` (TCP4, or TCP6 when it has a colon). */
export function v1(source: string, port = 40000): Uint8Array {
  const family = source.includes(":") ? "TCP6" : "TCP4";
  const destination = family === "TCP4" ? "10.0.0.1" : "2001:db8::1";
  return new TextEncoder().encode(`PROXY ${family} ${source} ${destination} ${port} 7777\r\n`);
}

/**
 * A v2 header: PROXY (or LOCAL) over STREAM, from `source` (4 bytes: AF_INET, 16: AF_INET6, none:
 * AF_UNSPEC), with `tlv` extra bytes after the addresses.
 */
export function v2(
  source: number[] = [],
  options: { local?: boolean; port?: number; tlv?: number; family?: number } = {},
): Uint8Array {
  const family = options.family ?? (source.length === 4 ? 1 : source.length === 16 ? 2 : 0);
  const port = options.port ?? 40000;
  const addresses = source.length === 0
    ? []
    : [...source, ...source.map(() => 0), port >> 8, port & 0xff, 0x1e, 0x61];
  const body = [...addresses, ...Array(options.tlv ?? 0).fill(0)];
  return new Uint8Array([
    ...SIGNATURE,
    0x20 | (options.local ? 0 : 1),
    family << 4 | (family === 0 ? 0 : 1),
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}
