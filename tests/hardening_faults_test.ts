// Issue 3, faults and security: graceful shutdown with 1,000 clients, kill -9 durability, bad
// database files, the admin CLI against a live server, file modes, passwords kept out of text.
import assert from "node:assert/strict";
import net from "node:net";
import { DatabaseSync } from "node:sqlite";
import { PasswordHasher, scryptParams } from "../lib/server/password.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import { runCli, startServer, tempDir, TEST_HASH_COST, TestClient } from "./helpers.ts";
import { sleep } from "./hardening_support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Adds `names` with one password, hashed once (fast enough for a thousand users). */
async function seedMany(db: string, names: string[], password: string): Promise<void> {
  const hasher = new PasswordHasher({ params: scryptParams(TEST_HASH_COST) });
  const hash = await hasher.hash(new TextEncoder().encode(password));
  const store = openSqliteStore(db);
  try {
    for (const name of names) await store.addUser(name, hash);
  } finally {
    await store.close();
  }
}

Deno.test("graceful shutdown: SIGTERM with 1,000 logged-in clients → 0:-1 to each, closed, exit 0, in a few seconds", async () => {
  const temp = await tempDir();
  const count = 1000;
  const names = Array.from({ length: count }, (_, i) => `u${i}`);
  await seedMany(`${temp.dir}/p.db`, names, "pw");
  const server = await startServer({ db: `${temp.dir}/p.db` });
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < count; i += 100) {
      const batch = await Promise.all(
        names.slice(i, i + 100).map((name) => TestClient.login(server.port, name, "pw")),
      );
      clients.push(...batch);
    }
    // Ten rooms of a hundred, so the shutdown has rooms to empty too.
    await Promise.all(clients.map((c, i) => c.send(`2:room${i % 10}`)));
    for (const c of clients) assert.match(await c.next(10_000), /^2:room\d:/);
    for (const c of clients) while (c.pending.length) await c.next(); // 4: lines
    const started = performance.now();
    const status = await server.stop("SIGTERM");
    const shutdownMs = performance.now() - started;
    assert.equal(status.code, 0);
    for (const c of clients) {
      let line = await c.next();
      // Joins that came late, and (the drain closes a batch at a time, each session ending
      // normally) the room's members drained before this one.
      while (/^[45]:/.test(line)) line = await c.next();
      assert.equal(line, "0:-1");
      await c.expectClosed();
    }
    assert.match(server.log(), /stopped connections=1000/);
    console.log(
      `graceful shutdown: ${count} logged-in clients, SIGTERM → exit 0 in ${
        shutdownMs.toFixed(0)
      } ms`,
    );
    assert.ok(shutdownMs < 5000, `shutdown took ${shutdownMs} ms`);
    // The database was closed cleanly: it opens and holds its rooms.
    const store = openSqliteStore(`${temp.dir}/p.db`);
    assert.equal((await store.listRooms()).length, 10);
    await store.close();
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
    await temp.remove();
  }
});

/** Starts an admin CLI add-user, the password on stdin. */
function spawnAddUser(db: string, name: string): Deno.ChildProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "--db",
      db,
      "--hash-cost",
      String(TEST_HASH_COST),
      "--add-user",
      name,
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  writer.write(new TextEncoder().encode("pw\n")).then(() => writer.close()).catch(() => {});
  return child;
}

Deno.test("kill -9 durability: server and admin CLI killed mid-work in a loop; every user whose --add-user exited 0 and every room answered 2: is there", async () => {
  const temp = await tempDir();
  const db = `${temp.dir}/p.db`;
  await seedMany(db, ["maker"], "pw");
  const added: string[] = [];
  const rooms: string[] = [];
  let killedCli = 0;
  let killedServer = 0;
  let seq = 0;
  try {
    const deadline = Date.now() + 9000;
    for (let round = 0; Date.now() < deadline && round < 6; round++) {
      const server = await startServer({ db });
      const maker = await TestClient.login(server.port, "maker", "pw");
      try {
        // Four CLIs at once; two of them are killed after a random moment.
        const children = Array.from({ length: 4 }, () => {
          const name = `user${seq++}`;
          return { name, child: spawnAddUser(db, name) };
        });
        const killers = children.slice(0, 2).map(({ child }) =>
          sleep(30 + Math.random() * 250).then(() => {
            try {
              child.kill("SIGKILL");
            } catch { /* already exited */ }
          })
        );
        // Meanwhile, rooms are created; a room counts once its 2: reply arrived.
        const making = (async () => {
          for (let i = 0; i < 100_000; i++) {
            const room = `r${round}x${i}`;
            await maker.send(`2:${room}`);
            const reply = await maker.next().catch(() => "");
            if (reply.startsWith(`2:${room}:`)) rooms.push(room);
            else break;
          }
        })();
        await sleep(100 + Math.random() * 300);
        // The server dies at a random moment, rooms possibly in flight.
        server.process.kill("SIGKILL");
        killedServer++;
        await making;
        await Promise.all(killers);
        for (const { name, child } of children) {
          const status = await child.status;
          if (status.code === 0) added.push(name);
          if (status.signal === "SIGKILL") killedCli++;
        }
      } finally {
        await maker.close();
        await server.stop();
      }
    }
    const check = new DatabaseSync(db);
    try {
      const verdict = check.prepare("PRAGMA integrity_check").get() as Record<string, string>;
      assert.equal(Object.values(verdict)[0], "ok");
    } finally {
      check.close();
    }
    const store = openSqliteStore(db);
    const users = new Set(await store.listUsers());
    const stored = new Set((await store.listRooms()).map((r) => r.name));
    await store.close();
    for (const name of added) assert.ok(users.has(name), `${name} exited 0 but is missing`);
    for (const room of rooms) {
      assert.ok(stored.has(room), `room ${room} was answered but is missing`);
    }
    console.log(
      `kill -9: ${killedServer} server kills, ${killedCli} CLI kills, ${added.length} users ` +
        `added and kept, ${rooms.length} rooms answered and kept, integrity ok`,
    );
    assert.ok(added.length > 0 && rooms.length > 0);
  } finally {
    await temp.remove();
  }
});

/** Runs main.ts under `wrapper` (e.g. setpriv), returning its exit code and stderr. */
async function runMain(
  args: string[],
  wrapper: string[] = [],
): Promise<{ code: number; stderr: string }> {
  const command = wrapper.length ? wrapper[0] : Deno.execPath();
  const rest = wrapper.length ? [...wrapper.slice(1), Deno.execPath()] : [];
  const child = new Deno.Command(command, {
    args: [...rest, "run", "-A", MAIN, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // A server that opened the file anyway would run forever: end it, and the check fails.
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const { code, stderr } = await child.output();
  clearTimeout(timer);
  return { code, stderr: decoder.decode(stderr) };
}

async function digest(path: string): Promise<string> {
  const bytes = await Deno.readFile(path);
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("bad databases (locked, read-only, missing directory, corrupt, not Parley's): one line naming the file, non-zero exit, nothing overwritten — server and CLI", async () => {
  const temp = await tempDir();
  const serve = (db: string) => ["--host", "127.0.0.1", "--port", "0", "--db", db];
  const list = (db: string) => ["--db", db, "--list-users"];
  const checkOne = (what: string, result: { code: number; stderr: string }, file: string) => {
    assert.notEqual(result.code, 0, `${what}: exit 0`);
    const lines = result.stderr.split("\n").filter((l) => l.startsWith("parley:"));
    assert.equal(lines.length, 1, `${what}: ${result.stderr}`);
    assert.ok(lines[0].includes(file), `${what}: the line does not name ${file}: ${lines[0]}`);
    assert.doesNotMatch(result.stderr, /listening/, `${what}: the server started anyway`);
    return lines[0];
  };
  try {
    // A good database, to lock and to make read-only.
    const good = `${temp.dir}/good.db`;
    await seedMany(good, ["alice"], "pw");

    // Locked: another process (the sqlite3 shell) holds an exclusive lock meanwhile.
    const locked = `${temp.dir}/locked.db`;
    await Deno.copyFile(good, locked);
    const lockedBefore = await digest(locked);
    const shell = new Deno.Command("sqlite3", {
      args: [locked],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const shellIn = shell.stdin.getWriter();
    await shellIn.write(
      new TextEncoder().encode(
        "PRAGMA locking_mode=EXCLUSIVE;\nBEGIN EXCLUSIVE;\nSELECT 'held';\n",
      ),
    );
    const shellOut = shell.stdout.getReader();
    let said = "";
    while (!said.includes("held")) said += decoder.decode((await shellOut.read()).value);
    let lockedServer, lockedCli;
    try {
      [lockedServer, lockedCli] = await Promise.all([
        runMain(serve(locked)),
        runMain(list(locked)),
      ]);
    } finally {
      await shellIn.write(new TextEncoder().encode("ROLLBACK;\n.quit\n")).catch(() => {});
      await shellIn.close().catch(() => {});
      shellOut.releaseLock();
      await shell.stdout.cancel();
      await shell.status;
    }
    for (const [what, r] of [["locked/server", lockedServer], ["locked/cli", lockedCli]] as const) {
      assert.match(checkOne(what, r, locked), /locked|busy/);
    }
    assert.equal(await digest(locked), lockedBefore);

    // Corrupt: random bytes; and an SQLite file that is someone else's.
    const corrupt = `${temp.dir}/corrupt.db`;
    await Deno.writeFile(corrupt, crypto.getRandomValues(new Uint8Array(16384)));
    const foreign = `${temp.dir}/foreign.db`;
    const other = new DatabaseSync(foreign);
    other.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)");
    other.close();
    for (const file of [corrupt, foreign]) {
      const before = await digest(file);
      checkOne(`${file}/server`, await runMain(serve(file)), file);
      checkOne(`${file}/cli`, await runMain(["--db", file, "--add-user", "bob"]), file);
      assert.equal(await digest(file), before, `${file} was changed`);
    }

    // Missing directory: nothing is created.
    const missing = `${temp.dir}/no/such/dir/p.db`;
    checkOne("missing/server", await runMain(serve(missing)), missing);
    checkOne("missing/cli", await runMain(list(missing)), missing);
    await assert.rejects(Deno.stat(`${temp.dir}/no`));

    // Read-only: mode 0444. Root ignores modes, so drop CAP_DAC_OVERRIDE with setpriv.
    const readonly = `${temp.dir}/readonly.db`;
    await Deno.copyFile(good, readonly);
    await Deno.chmod(readonly, 0o444);
    const wrapper = Deno.uid() === 0
      ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
      : [];
    const before = await digest(readonly);
    const roServer = checkOne("readonly/server", await runMain(serve(readonly), wrapper), readonly);
    assert.match(roServer, /read-only/);
    checkOne(
      "readonly/cli",
      await runMain(["--db", readonly, "--remove-user", "alice"], wrapper),
      readonly,
    );
    assert.equal(await digest(readonly), before);
  } finally {
    await temp.remove();
  }
});

Deno.test("admin CLI against a live server: added → logs in at once; set-password → new one works; removed → 0:-1 within a second", async () => {
  const server = await startServer({ users: { alice: "wonderland" } });
  const clients: TestClient[] = [];
  try {
    const alice = await TestClient.login(server.port, "alice", "wonderland");
    clients.push(alice);
    const add = await runCli(["--db", server.db, "--hash-cost", "10", "--add-user", "carol"], {
      stdin: "c4rol-pw\n",
    });
    assert.equal(add.code, 0, add.stderr);
    const carol = await TestClient.login(server.port, "carol", "c4rol-pw"); // at once: no restart
    clients.push(carol);
    const set = await runCli(["--db", server.db, "--hash-cost", "10", "--set-password", "alice"], {
      stdin: "n3w-pw\n",
    });
    assert.equal(set.code, 0, set.stderr);
    const again = await TestClient.login(server.port, "alice", "n3w-pw");
    clients.push(again);
    await alice.expect("0:-1"); // replaced by the new login
    const removed = performance.now();
    const remove = await runCli(["--db", server.db, "--remove-user", "carol"]);
    assert.equal(remove.code, 0, remove.stderr);
    const cliDone = performance.now();
    await carol.expect("0:-1", 1000);
    const seen = performance.now() - cliDone;
    console.log(
      `admin CLI live: carol logged out ${seen.toFixed(0)} ms after --remove-user exited ` +
        `(${(cliDone - removed).toFixed(0)} ms for the CLI itself)`,
    );
    assert.ok(seen < 1000);
    await carol.send("0:carol:c4rol-pw");
    await carol.expect("0:-1");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});

Deno.test("security: the database and its WAL files are 0600; passwords never reach the log or CLI error text", async () => {
  const temp = await tempDir();
  const db = `${temp.dir}/p.db`;
  const secret = "Zq9-Very-Secret-Passw0rd";
  const clients: TestClient[] = [];
  const cliText: string[] = [];
  try {
    const add = await runCli(["--db", db, "--hash-cost", "10", "--add-user", "alice"], {
      stdin: `${secret}\n`,
    });
    assert.equal(add.code, 0);
    cliText.push(add.stdout, add.stderr);
    // Bad input to the CLI, each carrying the secret.
    for (
      const [args, stdin] of [
        [["--add-user", "alice"], `${secret}\n`], // duplicate
        [["--add-user", "bob"], `${secret}:x\n`], // ':' in the password
        [["--add-user", "bob"], `${secret}\nsecond line\n`], // a line break
        [["--add-user", "bob"], `${secret}`.repeat(60)], // too long
        [["--add-user", `x${secret}!`], `${secret}\n`], // an invalid name (the name may echo)
        [["--set-password", "nobody"], `${secret}\n`],
      ] as const
    ) {
      const result = await runCli(["--db", db, "--hash-cost", "10", ...args], { stdin });
      assert.notEqual(result.code, 0);
      cliText.push(result.stdout, result.stderr);
    }
    const server = await startServer({ db, args: ["--log-level", "debug"] });
    try {
      const alice = await TestClient.login(server.port, "alice", secret);
      clients.push(alice);
      await alice.send(`2:vault:${secret}`); // a room password
      await alice.expect("2:vault:alice");
      const guesser = await TestClient.connect(server.port);
      clients.push(guesser);
      for (
        const line of [
          `0:alice:${secret}x`,
          `0:nobody:${secret}`,
          `0:bad name:${secret}`,
          `0:alice:${secret}:extra`,
        ]
      ) {
        await guesser.send(line);
        await guesser.expect("0:-1", 10_000);
      }
      await guesser.send(`2:vault:${secret}`);
      await guesser.expect("0:-1");
      const wal = [db, `${db}-wal`, `${db}-shm`];
      for (const file of wal) {
        assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600, `${file} is not 0600`);
      }
    } finally {
      await server.stop();
    }
    const log = server.log();
    assert.match(log, /login-failed/); // the log did record the failures
    assert.ok(!log.includes(secret), "a password reached the server log");
    // The invalid-name case quotes the name, which held the secret: that is the name, not a
    // password. Every other text must not contain it.
    const texts = cliText.filter((t) => !t.includes(`invalid username "x${secret}!"`));
    for (const text of texts) {
      assert.ok(!text.includes(secret), `a password reached CLI text: ${text}`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await temp.remove();
  }
});

/** Connects to `port` and resets the connection (RST, not FIN) as soon as it is established. */
function connectAndReset(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.resetAndDestroy();
      resolve();
    });
    socket.on("error", reject);
  });
}

Deno.test("accept: peers that reset while queued cost no backoff; the next client logs in at once", async () => {
  const server = await startServer({ users: { alice: "pw" } });
  try {
    // Stopped, the server accepts nothing: these queue in the kernel, and reset there, as a
    // balancer's connections do when it gives up on a busy node. Each then fails its accept.
    Deno.kill(server.process.pid, "SIGSTOP");
    try {
      for (let i = 0; i < 40; i++) await connectAndReset(server.port);
    } finally {
      Deno.kill(server.process.pid, "SIGCONT");
    }
    // With a backoff per failed accept (100 ms doubling to 1 s), the 40 held this login ~35 s.
    const client = await TestClient.connect(server.port);
    try {
      await client.send("0:alice:pw");
      assert.match(await client.next(15_000), /^0:[1-9]\d*$/);
    } finally {
      await client.close();
    }
  } finally {
    await server.stop();
  }
});
