// The WebSocket frame parser and encoder (lib/transport/ws_frames.ts) on their own: frames split at
// every byte, fragments with control frames between them, masking, the frames a client may not
// send; then the server end to end: a fragmented message past --max-line-bytes is refused while it
// is still arriving, pings get pongs, a close is answered, and a socket still sending its HTTP
// request counts against --max-connections.
import assert from "node:assert/strict";
import {
  encodeClose,
  encodeFrame,
  encodeLines,
  FrameParser,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
} from "../lib/transport/ws_frames.ts";
import { bytes, TestClient } from "./helpers.ts";
import { RawWsClient, startWsServer } from "./ws_support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client frame: masked with `mask`, FIN unless `fin` is false, any first-byte bits in `bits`. */
function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  { fin = true, mask = [0x37, 0xfa, 0x21, 0x3d], bits = 0, masked = true } = {},
): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const head: number[] = [(fin ? 0x80 : 0) | bits | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (body.length < 126) {
    head.push(maskBit | body.length);
  } else if (body.length < 65536) {
    head.push(maskBit | 126, body.length >> 8, body.length & 0xff);
  } else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    const n = body.length;
    head.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  }
  if (masked) head.push(...mask);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  for (let i = 0; i < body.length; i++) {
    out[head.length + i] = masked ? body[i] ^ mask[i & 3] : body[i];
  }
  return out;
}

/**
 * Feeds `chunks` to a parser and describes what came out: each message as `text:<body>` or
 * `binary:<body>`, control frames as `ping:<payload>`, `pong:`, `close:<code>`, and `too-big`,
 * `error:<why>`. Chunks are copied first: the parser unmasks in place.
 */
function parse(chunks: Uint8Array[], maxMessageBytes = 1 << 20): string[] {
  const parser = new FrameParser(maxMessageBytes);
  const events: string[] = [];
  let message = "";
  for (const chunk of chunks) {
    parser.push(chunk.slice());
    for (let event = parser.next(); event !== null; event = parser.next()) {
      if (event === "data") {
        message += decoder.decode(parser.payload);
        if (parser.final) {
          events.push(`${parser.isText ? "text" : "binary"}:${message}`);
          message = "";
        }
      } else if (event === "close") {
        events.push(`close:${parser.closeCode}`);
      } else if (event === "error") {
        events.push(`error:${parser.error}`);
        return events;
      } else if (event === "too-big") {
        events.push("too-big");
        message = "";
      } else {
        events.push(`${event}:${decoder.decode(parser.payload)}`);
      }
    }
  }
  return events;
}

/** A stream with every kind of frame: one message, a fragmented one with a ping inside, etc. */
const STREAM = bytes(
  clientFrame(OPCODE_TEXT, "0:alice:wonderland"),
  clientFrame(OPCODE_BINARY, "3:0:", { fin: false }),
  clientFrame(OPCODE_PING, "are you there?"),
  clientFrame(OPCODE_CONTINUATION, "", { fin: false }),
  clientFrame(OPCODE_CONTINUATION, "in three", { fin: false, mask: [1, 2, 3, 4] }),
  clientFrame(OPCODE_PONG, ""),
  clientFrame(OPCODE_CONTINUATION, " parts"),
  clientFrame(OPCODE_TEXT, ""),
  clientFrame(OPCODE_TEXT, "x".repeat(300)), // a 16-bit length
  clientFrame(OPCODE_TEXT, "y".repeat(70_000)), // a 64-bit length
  clientFrame(OPCODE_CLOSE, new Uint8Array([0x03, 0xe8, 0x62, 0x79, 0x65])), // 1000 "bye"
);

const EXPECTED = [
  "text:0:alice:wonderland",
  "ping:are you there?",
  "pong:",
  "binary:3:0:in three parts",
  "text:",
  "text:" + "x".repeat(300),
  "text:" + "y".repeat(70_000),
  "close:1000",
];

Deno.test("ws frames: one chunk, and split at every byte boundary, parse alike", () => {
  assert.deepEqual(parse([STREAM]), EXPECTED);
  // Every split point of the small frames (the long ones would make this quadratic).
  const small = STREAM.length - 70_000 - 300;
  for (let at = 0; at <= small; at++) {
    assert.deepEqual(parse([STREAM.subarray(0, at), STREAM.subarray(at)]), EXPECTED, `at ${at}`);
  }
  // One byte at a time.
  const singles: Uint8Array[] = [];
  for (let i = 0; i < STREAM.length; i++) singles.push(STREAM.subarray(i, i + 1));
  assert.deepEqual(parse(singles), EXPECTED);
});

Deno.test("ws frames: payloads stream out as they arrive, unmasked in place, never gathered", () => {
  const frame = clientFrame(OPCODE_TEXT, "abcdefghij");
  const parser = new FrameParser(100);
  const first = frame.slice(0, 10); // the 6-byte header and "abcd"
  parser.push(first);
  assert.equal(parser.next(), "data");
  assert.equal(decoder.decode(parser.payload), "abcd");
  assert.equal(parser.final, false);
  assert.equal(parser.payload.buffer, first.buffer); // a view of the chunk: no copy
  assert.equal(parser.next(), null);
  parser.push(frame.slice(10));
  assert.equal(parser.next(), "data");
  assert.equal(decoder.decode(parser.payload), "efghij");
  assert.equal(parser.final, true);
});

Deno.test("ws frames: a message announcing more than the bound is too big; its bytes are skipped", () => {
  const stream = bytes(
    clientFrame(OPCODE_TEXT, "123456", { fin: false }),
    clientFrame(OPCODE_PING, "p"),
    clientFrame(OPCODE_CONTINUATION, "789012", { fin: false }), // 12 bytes: past 10
    clientFrame(OPCODE_CONTINUATION, "more"),
    clientFrame(OPCODE_TEXT, "next one"),
    clientFrame(OPCODE_TEXT, "x".repeat(11)), // one frame past the bound, at its header
  );
  const parser = new FrameParser(10);
  parser.push(stream.slice());
  const seen: string[] = [];
  for (let event = parser.next(); event !== null; event = parser.next()) {
    seen.push(event === "data" ? `data:${decoder.decode(parser.payload)}` : event);
  }
  assert.deepEqual(seen, ["data:123456", "ping", "too-big", "data:next one", "too-big"]);
  // The bound counts all of a message's frames: an exact fit passes.
  assert.deepEqual(parse([clientFrame(OPCODE_TEXT, "x".repeat(10))], 10), ["text:xxxxxxxxxx"]);
});

Deno.test("ws frames: frames a client may not send are protocol errors", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["unmasked", clientFrame(OPCODE_TEXT, "hi", { masked: false }), /unmasked/],
    ["RSV1", clientFrame(OPCODE_TEXT, "hi", { bits: 0x40 }), /reserved/],
    ["RSV3", clientFrame(OPCODE_TEXT, "hi", { bits: 0x10 }), /reserved/],
    ["opcode 3", clientFrame(3, "hi"), /opcode 3/],
    ["opcode 11", clientFrame(11, ""), /opcode 11/],
    ["fragmented ping", clientFrame(OPCODE_PING, "", { fin: false }), /fragmented control/],
    ["long ping", clientFrame(OPCODE_PING, "p".repeat(126)), /125/],
    ["lone continuation", clientFrame(OPCODE_CONTINUATION, "hi"), /continuation/],
    [
      "text inside a fragmented message",
      bytes(
        clientFrame(OPCODE_TEXT, "a", { fin: false }),
        clientFrame(OPCODE_TEXT, "b"),
      ),
      /inside a fragmented/,
    ],
    ["1-byte close", clientFrame(OPCODE_CLOSE, new Uint8Array([3])), /1-byte/],
    ["close code 1005", clientFrame(OPCODE_CLOSE, new Uint8Array([0x03, 0xed])), /1005/],
    ["close code 999", clientFrame(OPCODE_CLOSE, new Uint8Array([0x03, 0xe7])), /999/],
    [
      "64-bit length with its top bit set",
      new Uint8Array([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
      /top bit/,
    ],
  ];
  for (const [name, bytes, why] of cases) {
    const events = parse([bytes]);
    assert.equal(events.length, 1, name);
    assert.match(events[events.length - 1], why, name);
    assert.match(events[events.length - 1], /^error:/, name);
  }
  // After an error the parser only ever reports the error.
  const parser = new FrameParser(100);
  parser.push(clientFrame(OPCODE_TEXT, "hi", { masked: false }));
  assert.equal(parser.next(), "error");
  parser.push(clientFrame(OPCODE_TEXT, "hi"));
  assert.equal(parser.next(), "error");
  // A close without a code is fine, and reported as 1005.
  assert.deepEqual(parse([clientFrame(OPCODE_CLOSE, "")]), ["close:1005"]);
});

Deno.test("ws frames: server frames are unmasked, with 7-, 16- and 64-bit lengths", () => {
  assert.deepEqual([...encodeFrame(OPCODE_PONG, encoder.encode("p"))], [0x8a, 1, 0x70]);
  assert.deepEqual([...encodeClose(1002)], [0x88, 2, 0x03, 0xea]);
  const medium = encodeFrame(OPCODE_TEXT, new Uint8Array(300));
  assert.deepEqual([...medium.subarray(0, 4)], [0x81, 126, 0x01, 0x2c]);
  assert.equal(medium.length, 304);
  const large = encodeFrame(OPCODE_BINARY, new Uint8Array(70_000));
  assert.deepEqual([...large.subarray(0, 10)], [0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]);
  assert.equal(large.length, 70_010);
  // Lines: one frame each, no LF; text when UTF-8, else binary with the exact bytes.
  const output = bytes(
    encoder.encode("3:héllo\n"),
    new Uint8Array([0x33, 0x3a, 0xc3, 0x0a]), // a cut UTF-8 sequence
    encoder.encode("1:" + "r".repeat(200) + "\n"),
  );
  const framed = encodeLines(output);
  const héllo = encoder.encode("3:héllo");
  assert.deepEqual([...framed.subarray(0, 2 + héllo.length)], [0x81, héllo.length, ...héllo]);
  const second = framed.subarray(2 + héllo.length);
  assert.deepEqual([...second.subarray(0, 5)], [0x82, 3, 0x33, 0x3a, 0xc3]);
  assert.deepEqual([...second.subarray(5, 9)], [0x81, 126, 0, 202]);
  assert.equal(second.length, 5 + 4 + 202);
});

const USERS = { alice: "wonderland", bob: "builder" };

/** Writes all of `bytes`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

Deno.test("ws: a fragmented message past --max-line-bytes is refused while it is still arriving", async () => {
  const server = await startWsServer({ users: USERS, args: ["--max-line-bytes", "65536"] });
  const raw = await RawWsClient.connect(server.wsPort);
  try {
    await raw.send("0:alice:wonderland");
    assert.equal(await raw.next(), "0:1");
    // Ten 64 KiB fragments of one message: the server must answer after the second, having
    // held none of it, while eight are still unsent.
    const fragment = new Uint8Array(65536).fill(0x61);
    const reply = raw.next(20_000);
    let answered = false;
    reply.then(() => answered = true, () => answered = true);
    let sent = 0;
    while (sent < 10 && !answered) {
      const opcode = sent === 0 ? OPCODE_TEXT : OPCODE_CONTINUATION;
      try {
        await writeAll(raw.conn, clientFrame(opcode, fragment, { fin: sent === 9 }));
      } catch {
        break; // the server has closed
      }
      sent++;
      // Long enough to see that the first fragment alone gets no answer, and for the answer.
      const wait = sent === 1 ? 300 : 3000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([reply.catch(() => {}), new Promise((r) => timer = setTimeout(r, wait))]);
      clearTimeout(timer);
    }
    assert.equal(await reply, "9:?:too-long");
    assert.equal(sent, 2, `the reply came after ${sent} fragments`);
    assert.equal(await raw.next(), null); // the close frame (or the end of the stream)
    assert.match(server.log(), /closing .*why="?line too long/);
  } finally {
    raw.close();
    await server.stop();
  }
});

/** Reads from `conn` until `count` bytes have come (or the stream ends), 5 s at most. */
async function readBytes(conn: Deno.Conn, count: number): Promise<number[]> {
  const got: number[] = [];
  const buffer = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    while (got.length < count) {
      const n = await conn.read(buffer);
      if (n === null) break;
      got.push(...buffer.subarray(0, n));
    }
  } catch {
    /* closed by the timer */
  } finally {
    clearTimeout(timer);
  }
  return got;
}

Deno.test("ws: pings between fragments get pongs, and the message still arrives whole", async () => {
  const server = await startWsServer({ users: USERS });
  const raw = await RawWsClient.connect(server.wsPort);
  try {
    await writeAll(
      raw.conn,
      bytes(
        clientFrame(OPCODE_TEXT, "0:alice:", { fin: false }),
        clientFrame(OPCODE_PING, "hi"),
        clientFrame(OPCODE_CONTINUATION, "wonder", { fin: false }),
        clientFrame(OPCODE_CONTINUATION, "land\r"),
      ),
    );
    const pong = [0x8a, 2, 0x68, 0x69];
    const login = [0x81, 3, 0x30, 0x3a, 0x31]; // "0:1"
    assert.deepEqual(await readBytes(raw.conn, pong.length + login.length), [...pong, ...login]);
  } finally {
    raw.close();
    await server.stop();
  }
});

Deno.test("ws: a client's close is answered with a close, and the server ends the socket", async () => {
  const server = await startWsServer({ users: USERS });
  const raw = await RawWsClient.connect(server.wsPort);
  try {
    await writeAll(raw.conn, clientFrame(OPCODE_CLOSE, new Uint8Array([0x0f, 0xa0]))); // 4000
    // The answer echoes the code, then the stream ends (readBytes stops at the end).
    assert.deepEqual(await readBytes(raw.conn, 100), [0x88, 2, 0x0f, 0xa0]);
    // A protocol error gets 1002.
    const bad = await RawWsClient.connect(server.wsPort);
    try {
      await writeAll(bad.conn, clientFrame(OPCODE_TEXT, "hi", { masked: false }));
      assert.deepEqual(await readBytes(bad.conn, 100), [0x88, 2, 0x03, 0xea]);
    } finally {
      bad.close();
    }
  } finally {
    raw.close();
    await server.stop();
  }
});

Deno.test("ws: a socket still sending its HTTP request counts against --max-connections", async () => {
  const server = await startWsServer({ users: USERS, args: ["--max-connections", "1"] });
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.wsPort });
  let tcp: TestClient | undefined;
  try {
    await writeAll(slow, encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n")); // and no more
    await new Promise((resolve) => setTimeout(resolve, 200));
    tcp = await TestClient.connect(server.port);
    await tcp.expect("9:?:server-full");
    await tcp.expectClosed();
    // A second WebSocket is answered with its 101 and the server-full frame.
    const full = await RawWsClient.connect(server.wsPort);
    try {
      assert.equal(full.status, 101);
      assert.equal(await full.next(), "9:?:server-full");
      assert.equal(await full.next(), null);
    } finally {
      full.close();
    }
    assert.match(server.log(), /server-full address=127\.0\.0\.1 transport=ws/);
  } finally {
    slow.close();
    await tcp?.close();
    await server.stop();
  }
});
