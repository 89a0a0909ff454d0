// The WebSocket port's request-head reader (lib/transport/http1.ts): heads split across reads,
// the byte bound (431), malformed heads (400), the deadline, and a peer that goes away.
import assert from "node:assert/strict";
import { readRequestHead } from "../lib/transport/http1.ts";

const encoder = new TextEncoder();

/** A socket that hands out `chunks` one read each, then waits (until closed) or ends. */
function fakeConn(chunks: string[], { endAfter = true } = {}) {
  const queue = chunks.map((c) => encoder.encode(c));
  let closed = false;
  let wake: (() => void) | null = null;
  return {
    get closed() {
      return closed;
    },
    read(buffer: Uint8Array): Promise<number | null> {
      if (closed) return Promise.reject(new Deno.errors.BadResource("closed"));
      const next = queue.shift();
      if (next !== undefined) {
        const n = Math.min(next.length, buffer.length);
        buffer.set(next.subarray(0, n));
        if (n < next.length) queue.unshift(next.subarray(n));
        return Promise.resolve(n);
      }
      if (endAfter) return Promise.resolve(null);
      return new Promise((_, reject) => {
        wake = () => reject(new Deno.errors.BadResource("closed"));
      });
    },
    close() {
      closed = true;
      wake?.();
    },
  };
}

Deno.test("http1: a head split anywhere is read whole, with what came after it", async () => {
  const head = "GET /?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const text = head + "ab"; // the first bytes of a frame
  for (let at = 1; at < text.length; at++) {
    const conn = fakeConn([text.slice(0, at), text.slice(at)]);
    const result = await readRequestHead(conn, { timeoutMs: 1000 });
    assert.ok(typeof result === "object", `at ${at}: ${result}`);
    assert.equal(result.method, "GET");
    assert.equal(result.path, "/");
    assert.equal(result.version, "1.1");
    assert.equal(result.headers.get("upgrade"), "websocket");
    assert.equal(result.headers.get("connection"), "Upgrade");
    // What came in the reads that finished the head, and no more: the rest stays in the socket.
    const rest = at >= head.length ? text.slice(head.length, at) : "ab";
    assert.deepEqual(result.rest, encoder.encode(rest), `at ${at}`);
  }
  // Bare LFs are accepted too, and a proxy's absolute target gives its path.
  const bare = await readRequestHead(fakeConn(["GET http://h:1/app.js HTTP/1.0\nA: b\n\n"]));
  assert.ok(typeof bare === "object");
  assert.deepEqual([bare.path, bare.version, bare.headers.get("a")], ["/app.js", "1.0", "b"]);
});

Deno.test("http1: too large is 431, malformed is 400, a peer that leaves is closed", async () => {
  const big = "GET / HTTP/1.1\r\nX: " + "a".repeat(9000) + "\r\n\r\n";
  assert.equal(await readRequestHead(fakeConn([big])), 431);
  assert.equal(
    await readRequestHead(fakeConn([big]), { maxBytes: 20_000 }) instanceof Object,
    true,
  );
  for (
    const bad of [
      "GET /\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET nope HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nno colon\r\n\r\n",
      "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
      "GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
    ]
  ) {
    assert.equal(await readRequestHead(fakeConn([bad])), 400, JSON.stringify(bad));
  }
  assert.equal(await readRequestHead(fakeConn(["GET / HTTP/1.1\r\n"])), "closed");
});

Deno.test("http1: a head that does not arrive in time is a timeout, and the socket is closed", async () => {
  const conn = fakeConn(["GET / HTTP/1.1\r\nHost: a\r\n"], { endAfter: false });
  const started = performance.now();
  assert.equal(await readRequestHead(conn, { timeoutMs: 100 }), "timeout");
  assert.ok(performance.now() - started >= 90);
  assert.equal(conn.closed, true);
});
