/**
 * The balancers' addresses (`--proxy-protocol`): single addresses or CIDR blocks, IPv4 or IPv6,
 * and whether a peer is one of them. An IPv4 peer seen as IPv4-mapped IPv6 (`::ffff:a.b.c.d`, on
 * a dual-stack listener) matches its IPv4 entries.
 *
 * @module
 */

import { parseAddress } from "./proxy_header.ts";

/** One entry: the address's bytes and how many leading bits must match. */
interface Block {
  bytes: Uint8Array;
  bits: number;
}

/**
 * A list of addresses and blocks.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressList } from "./address_list.ts";
 * const list = AddressList.parse(["127.0.0.1", "10.1.0.0/16", "fd00::/8"]);
 * assert.ok(list.has("127.0.0.1"));
 * assert.ok(list.has("10.1.200.3"));
 * assert.ok(list.has("::ffff:10.1.0.9"));
 * assert.ok(list.has("fd12::1"));
 * assert.ok(!list.has("10.2.0.1"));
 * assert.ok(!list.has("127.0.0.2"));
 * assert.throws(() => AddressList.parse(["10.0.0.0/33"]), /10\.0\.0\.0\/33/);
 * ```
 */
export class AddressList {
  readonly #blocks: Block[];

  private constructor(blocks: Block[]) {
    this.#blocks = blocks;
  }

  /** Parses `ADDR` and `ADDR/BITS` entries; throws naming the first bad one. */
  static parse(entries: readonly string[]): AddressList {
    const blocks = entries.map((entry) => {
      const [text, bits, extra] = entry.split("/");
      const bytes = parseAddress(text);
      const max = bytes === null ? 0 : bytes.length * 8;
      const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
      if (bytes === null || extra !== undefined || prefix < 0 || prefix > max) {
        throw new RangeError(`"${entry}" is not an IP address or CIDR block`);
      }
      return { bytes, bits: prefix };
    });
    return new AddressList(blocks);
  }

  /** Whether the list is empty. */
  get empty(): boolean {
    return this.#blocks.length === 0;
  }

  /** Whether `hostname` (a peer's address, as the socket gives it) is in the list. */
  has(hostname: string): boolean {
    if (this.#blocks.length === 0) return false;
    let bytes = parseAddress(hostname);
    if (bytes === null) return false;
    if (
      bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) &&
      bytes[10] === 0xff && bytes[11] === 0xff
    ) {
      bytes = bytes.slice(12);
    }
    return this.#blocks.some((block) => inBlock(bytes, block));
  }
}

function inBlock(bytes: Uint8Array, block: Block): boolean {
  if (bytes.length !== block.bytes.length) return false;
  const whole = block.bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== block.bytes[i]) return false;
  const rest = block.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole] & mask) === (block.bytes[whole] & mask);
}
