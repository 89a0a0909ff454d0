/**
 * The load generator: one process driving many clients of one protocol against one server.
 * bench/run.ts starts one or more of these per trial and talks to each over stdin/stdout:
 *
 * ```text
 * run → gen   argv[0] = JSON GenConfig
 * gen → run   READY {"setupMs":…,"failed":…}        every client is logged in (and joined)
 * run → gen   GO <warmupMs> <measureMs>
 * gen → run   DONE                                 the measurement window is over
 * run → gen   WINDOW <fromUs> <toUs>               a sub-window for latency (0 0: none)
 * gen → run   RESULT {…GenResult}
 * ```
 *
 * The hot path allocates nothing per message: each socket is read into one reused buffer, and
 * messages are counted by finding their body's marker byte with `indexOf` (see protocols.ts).
 * Writes are batched (`batch` messages per write, one write in flight per connection) and the
 * deliveries still expected are bounded by `window`. With `tls`, every connection is TLS over
 * TCP (gen_connect.ts); nothing else changes.
 *
 * @module
 */

import {
  type Batch,
  clientBatches,
  hasPubConnection,
  joinSteps,
  loginSteps,
  MARK,
  NO_STAMP,
  pongFor,
  type Protocol,
  pubSteps,
  roomFanout,
  STAMP_FLAG,
  type Step,
} from "./protocols.ts";
import { connectTo } from "./gen_connect.ts";
import { latencyBetween, recordSample } from "./gen_latency.ts";
import { bounded, nowUs, selfCpuSeconds, stdinLines } from "./gen_support.ts";

/** The scenarios a generator can play. */
export type GenScenario = "fanout" | "rooms" | "direct" | "paced" | "idle" | "storm";

/** What one generator process does. */
export interface GenConfig {
  protocol: Protocol;
  port: number;
  scenario: GenScenario;
  /** The first user this process drives, and how many. */
  first: number;
  count: number;
  /** Rooms: user i is in room i % rooms, and each room has roomSize members in all processes. */
  rooms: number;
  roomSize: number;
  /** Direct: targets are drawn from users [first0, first0 + population), none the sender. */
  first0: number;
  population: number;
  targets: number;
  /** Messages per write, and deliveries expected but not yet seen before sending pauses. */
  batch: number;
  window: number;
  /** Paced: messages a second per client. */
  rate: number;
  /** Timestamp one message in this many. */
  stampEvery: number;
  /** Connections set up at once (storms ignore this: all at once). */
  connectConcurrency: number;
  /** Read buffer per connection. */
  readBufferBytes: number;
  seed: number;
  /**
   * Parley logins as bench/users.ts's users (`r<i>`, each its own password, hashed at the
   * production cost) instead of `u<i>` with the shared cheap password.
   */
  costlyLogins?: boolean;
  /** Storm: a login that takes longer than this counts as failed (default 15 s). */
  stormLimitMs?: number;
  /** Measure until `measureMs` passes or a `STOP` line comes, whichever is first. */
  untilStop?: boolean;
  /** Connect over TLS, trusting `caPem` (the server's self-signed certificate) alone. */
  tls?: boolean;
  caPem?: string;
}

/** What a generator reports. */
export interface GenResult {
  delivered: number;
  sent: number;
  seconds: number;
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  maxUs: number | null;
  samples: number;
  windowP50Us: number | null;
  windowP99Us: number | null;
  windowP999Us: number | null;
  windowMaxUs: number | null;
  windowSamples: number;
  genCpuSeconds: number;
  closed: number;
  failed: number;
  skipped: number;
  stormStartUs?: number;
  stormEndUs?: number;
  stormMs?: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Waiter {
  on: "main" | "pub";
  done: (text: string) => boolean;
  resolve: () => void;
  reject: (error: unknown) => void;
}

class Client {
  conn!: Deno.Conn;
  pub: Deno.Conn | null = null;
  setup = true;
  text = "";
  textPub = "";
  waiter: Waiter | null = null;
  writing = false;
  batches: Batch[] = [];
  next = 0;
  constructor(readonly index: number) {}

  /** The connection messages are written on. */
  get out(): Deno.Conn {
    return this.pub ?? this.conn;
  }
}

// ---------------------------------------------------------------------------------------------
// Counters, shared by every connection of this process (latency samples: gen_latency.ts).

let received = 0;
let expected = 0;
let sentMessages = 0;
let sequence = 0;
let closedConnections = 0;
let skipped = 0;

/** Reads one connection until it closes: counts messages, answers pings, feeds the handshake. */
async function readLoop(
  client: Client,
  conn: Deno.Conn,
  which: "main" | "pub",
  pong: Uint8Array | null,
  bufferBytes: number,
): Promise<void> {
  const buffer = new Uint8Array(bufferBytes);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      n = null;
    }
    if (n === null) break;
    const chunk = buffer.subarray(0, n);
    if (client.setup) feedSetup(client, which, decoder.decode(chunk));
    let now = 0;
    let found = false;
    for (let m = chunk.indexOf(MARK); m !== -1; m = chunk.indexOf(MARK, m + 1)) {
      received++;
      found = true;
      if (m >= 17 && chunk[m - 17] === STAMP_FLAG) {
        if (now === 0) now = nowUs();
        recordSample(chunk, m - 16, now);
      }
    }
    // Keep-alives come to idle connections only (the servers ping after minutes of silence).
    if (pong !== null && !found && n < 4096 && /^PING/m.test(decoder.decode(chunk))) {
      conn.write(pong).catch(() => {});
    }
    if (!client.setup && sending) pump();
  }
  closedConnections++;
  if (client.waiter) client.waiter.reject(new Error("connection closed"));
}

function feedSetup(client: Client, which: "main" | "pub", text: string): void {
  if (which === "main") client.text += text;
  else client.textPub += text;
  checkWaiter(client);
}

function checkWaiter(client: Client): void {
  const w = client.waiter;
  if (w === null) return;
  try {
    if (!w.done(w.on === "main" ? client.text : client.textPub)) return;
  } catch (error) {
    client.waiter = null;
    w.reject(error);
    return;
  }
  client.waiter = null;
  if (w.on === "main") client.text = "";
  else client.textPub = "";
  w.resolve();
}

/** How long a handshake step may wait for its reply (a storm's logins may queue for minutes). */
let stepTimeoutMs = 60_000;

async function runStep(client: Client, step: Step): Promise<void> {
  const conn = step.on === "main" ? client.conn : client.pub!;
  const done = new Promise<void>((resolve, reject) => {
    client.waiter = { on: step.on, done: step.done, resolve, reject };
  });
  await writeAll(conn, encoder.encode(step.send));
  checkWaiter(client); // the reply may already be here
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      done,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no reply to ${step.send.trim()}`)),
          stepTimeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = await conn.write(bytes);
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Connects client i and runs its handshake: login, then join, then the publish connection. */
async function setUp(config: GenConfig, client: Client, join: boolean): Promise<void> {
  const pong = pongFor(config.protocol);
  client.conn = await connectTo(config);
  void readLoop(client, client.conn, "main", pong, config.readBufferBytes);
  const direct = config.scenario === "direct" || config.scenario === "idle";
  for (const step of loginSteps(config.protocol, client.index, direct, config.costlyLogins)) {
    await runStep(client, step);
  }
  if (join) {
    for (const step of joinSteps(config.protocol, client.index % config.rooms)) {
      await runStep(client, step);
    }
  }
  if (
    hasPubConnection(config.protocol) && config.scenario !== "idle" && config.scenario !== "storm"
  ) {
    client.pub = await connectTo(config);
    void readLoop(client, client.pub, "pub", null, 4096);
    for (const step of pubSteps(config.protocol)) await runStep(client, step);
  }
  client.setup = false;
  client.text = "";
  client.textPub = "";
}

// ---------------------------------------------------------------------------------------------
// Sending.

let sending = false;
let fanout = 1;
let windowLimit = 0;
let stampEvery = 64;
const ready: Client[] = [];
let readyHead = 0;

function stampBatch(batch: Batch): void {
  const { bytes, ends, perMessage, count } = batch;
  let now = 0;
  for (let m = 0; m < count; m++) {
    const stamped = ++sequence % stampEvery === 0;
    if (stamped && now === 0) now = nowUs();
    for (let j = m * perMessage; j < (m + 1) * perMessage; j++) {
      const end = ends[j];
      bytes[end - 17] = stamped ? STAMP_FLAG : NO_STAMP;
      if (stamped) {
        let v = now;
        for (let k = end - 1; k >= end - 16; k--) {
          bytes[k] = 0x30 + (v % 10);
          v = Math.floor(v / 10);
        }
      }
    }
  }
}

function sendBatch(client: Client): void {
  const batch = client.batches[client.next];
  client.next = (client.next + 1) % client.batches.length;
  stampBatch(batch);
  expected += batch.count * fanout;
  sentMessages += batch.count;
  client.writing = true;
  writeAll(client.out, batch.bytes).then(
    () => {
      client.writing = false;
      ready.push(client);
      if (sending) pump();
    },
    () => {
      client.writing = false; // the socket is gone; the read loop counts it
    },
  );
}

/** Starts writes on idle clients while the window has room. */
function pump(): void {
  while (sending && readyHead < ready.length && expected - received < windowLimit) {
    const client = ready[readyHead++];
    sendBatch(client);
  }
  if (readyHead > 4096 && readyHead * 2 > ready.length) {
    ready.splice(0, readyHead);
    readyHead = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Control.

function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const config = JSON.parse(Deno.args[0]) as GenConfig;
  const lines = stdinLines();
  stepTimeoutMs = Math.max(stepTimeoutMs, config.stormLimitMs ?? 0);
  const clients = Array.from({ length: config.count }, (_, k) => new Client(config.first + k));
  const rooms = config.scenario === "fanout" || config.scenario === "rooms" ||
    config.scenario === "paced";
  stampEvery = config.stampEvery;
  windowLimit = config.window;
  fanout = config.scenario === "direct"
    ? config.targets
    : roomFanout(config.protocol, config.roomSize);

  // Message buffers, built before anything is measured.
  for (const c of clients) c.batches = clientBatches(config, c.index);

  let failed = 0;
  const setupStart = performance.now();
  if (config.scenario !== "storm") {
    const result = await bounded(
      clients,
      config.connectConcurrency,
      (c) => setUp(config, c, rooms),
    );
    failed = result.failed;
    if (failed > 0) console.error(`gen: ${failed} clients failed to set up: ${result.firstError}`);
  }
  say(`READY ${JSON.stringify({ setupMs: Math.round(performance.now() - setupStart), failed })}`);

  const go = (await lines.next()).value ?? "";
  let stopLine: Promise<IteratorResult<string>> | null = null;
  const [, warmupText, measureText] = go.split(" ");
  const warmupMs = Number(warmupText);
  const measureMs = Number(measureText);
  const live = clients.filter((c) => !c.setup);
  const result: GenResult = {
    delivered: 0,
    sent: 0,
    seconds: 0,
    p50Us: null,
    p99Us: null,
    p999Us: null,
    maxUs: null,
    samples: 0,
    windowP50Us: null,
    windowP99Us: null,
    windowP999Us: null,
    windowMaxUs: null,
    windowSamples: 0,
    genCpuSeconds: 0,
    closed: 0,
    failed,
    skipped: 0,
  };

  if (config.scenario === "storm") {
    const start = nowUs();
    const stormStarted = performance.now();
    // A server with a short listen backlog (ngircd's is 10) drops SYNs and leaves connects to
    // retry for minutes: a login that takes longer than this counts as failed.
    const limitMs = config.stormLimitMs ?? 15_000;
    const outcome = await bounded(clients, clients.length, (c) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      return Promise.race([
        setUp(config, c, false),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no login within ${limitMs} ms`)), limitMs);
        }),
      ]).finally(() => clearTimeout(timer));
    });
    result.stormStartUs = start;
    result.stormEndUs = nowUs();
    result.stormMs = performance.now() - stormStarted;
    result.failed = outcome.failed;
    if (outcome.failed > 0) {
      console.error(`gen: storm: ${outcome.failed} failed: ${outcome.firstError}`);
    }
  } else {
    let timer: ReturnType<typeof setInterval> | undefined;
    const started = performance.now();
    if (config.scenario === "paced") {
      // Clients are spread over slots 5 ms apart, so the load is smooth, not one burst a period.
      const slotMs = 5;
      const slots = Math.max(1, Math.round(1000 / config.rate / slotMs));
      let done = 0;
      sending = true;
      timer = setInterval(() => {
        const due = Math.floor((performance.now() - started) / slotMs);
        for (; done < due; done++) {
          const slot = done % slots;
          for (let k = slot; k < live.length; k += slots) {
            const c = live[k];
            if (c.writing) {
              skipped++;
              continue;
            }
            stampBatch(c.batches[0]);
            sentMessages++;
            c.writing = true;
            writeAll(c.out, c.batches[0].bytes).then(() => c.writing = false, () => {});
          }
        }
      }, 1);
    } else if (config.scenario !== "idle") {
      sending = true;
      for (const c of live) ready.push(c);
      pump();
    }
    const debug = Deno.env.get("BENCH_DEBUG")
      ? setInterval(() => {
        console.error(
          `gen: sent ${sentMessages} received ${received} in flight ${expected - received} ` +
            `ready ${ready.length - readyHead} cpu ${selfCpuSeconds()}`,
        );
      }, 250)
      : undefined;
    await sleep(warmupMs);
    const r0 = received;
    const s0 = sentMessages;
    const c0 = selfCpuSeconds();
    const t0 = performance.now();
    const u0 = nowUs();
    if (config.untilStop) {
      // The storm's paced clients measure until the storm is over, however long it takes.
      stopLine = lines.next();
      await Promise.race([sleep(measureMs), stopLine]);
    } else {
      await sleep(measureMs);
    }
    const t1 = performance.now();
    const u1 = nowUs();
    result.delivered = received - r0;
    result.sent = sentMessages - s0;
    result.seconds = (t1 - t0) / 1000;
    result.genCpuSeconds = selfCpuSeconds() - c0;
    sending = false;
    clearInterval(timer);
    clearInterval(debug);
    const measured = latencyBetween(u0, u1);
    result.samples = measured.samples;
    result.p50Us = measured.p50Us;
    result.p99Us = measured.p99Us;
    result.p999Us = measured.p999Us;
    result.maxUs = measured.maxUs;
  }
  result.closed = closedConnections;
  result.skipped = skipped;
  say("DONE");

  let windowLine = (await (stopLine ?? lines.next())).value ?? "WINDOW 0 0";
  if (windowLine === "STOP") windowLine = (await lines.next()).value ?? "WINDOW 0 0";
  const [, fromText, toText] = windowLine.split(" ");
  const from = Number(fromText);
  const to = Number(toText);
  if (to > from) {
    const inWindow = latencyBetween(from, to);
    result.windowSamples = inWindow.samples;
    result.windowP50Us = inWindow.p50Us;
    result.windowP99Us = inWindow.p99Us;
    result.windowP999Us = inWindow.p999Us;
    result.windowMaxUs = inWindow.maxUs;
  }
  say(`RESULT ${JSON.stringify(result)}`);
  Deno.exit(0);
}

if (import.meta.main) {
  await main();
}
