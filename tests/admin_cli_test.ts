// The admin CLI and the command line, through `deno run -A main.ts` (runCli): every admin
// command, every error it names (one line on stderr, a non-zero exit, nothing written), --help,
// --version, environment variables and the database file's mode.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SERVER_FLAGS, VERSION } from "../lib/server/config.ts";
import { PasswordHasher } from "../lib/server/password.ts";
import { openSqliteStore } from "../lib/store/sqlite_store.ts";
import {
  runCli,
  type RunResult,
  seedUsers,
  startServer,
  tempDir,
  TEST_HASH_COST,
  TestClient,
} from "./helpers.ts";

const COST = ["--hash-cost", String(TEST_HASH_COST)];
const encoder = new TextEncoder();

/** Runs `body` with a fresh temporary directory and its `parley.db` path. */
async function withDir(body: (db: string, dir: string) => Promise<void>): Promise<void> {
  const temp = await tempDir();
  try {
    await body(`${temp.dir}/parley.db`, temp.dir);
  } finally {
    await temp.remove();
  }
}

/** Whether `password` is the stored password of `user` (false if there is no such user). */
async function passwordIs(db: string, user: string, password: string): Promise<boolean> {
  const store = openSqliteStore(db);
  try {
    const record = await store.findUser(user);
    if (record === undefined) return false;
    return await new PasswordHasher().verify(encoder.encode(password), record.passwordHash);
  } finally {
    await store.close();
  }
}

/** Everything in the database's tables, to show that a failed command wrote nothing. */
function snapshot(db: string): string {
  const sqlite = new DatabaseSync(db, { readOnly: true });
  try {
    return JSON.stringify(
      ["users", "rooms", "changes", "schema_migrations"].map((table) =>
        sqlite.prepare(`SELECT * FROM ${table} ORDER BY 1`).all()
      ),
    );
  } finally {
    sqlite.close();
  }
}

function assertOk(result: RunResult): void {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
}

/** One clear line on stderr, nothing on stdout, a non-zero exit. */
function assertOneLineError(result: RunResult, pattern: RegExp, what: string): void {
  assert.notEqual(result.code, 0, `${what}: exit 0`);
  const lines = result.stderr.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, `${what}: stderr has ${lines.length} lines: ${result.stderr}`);
  assert.match(lines[0], pattern, what);
  assert.equal(result.stdout, "", `${what}: stdout: ${result.stdout}`);
}

Deno.test("--add-user reads the password from stdin: secret, secret\\n and secret\\r\\n all mean secret", async () => {
  await withDir(async (db) => {
    const inputs = { plain: "secret", lf: "secret\n", crlf: "secret\r\n" };
    const results = await Promise.all(
      Object.entries(inputs).map(([name, stdin]) =>
        runCli(["--db", db, "--add-user", name, ...COST], { stdin })
      ),
    );
    for (const result of results) {
      assertOk(result);
      assert.match(result.stdout, /added user/);
    }
    for (const name of Object.keys(inputs)) {
      assert.ok(await passwordIs(db, name, "secret"), `${name}: the password is not "secret"`);
      assert.ok(!await passwordIs(db, name, "secret\r"), name);
    }
  });
});

Deno.test("a user added with the CLI logs in to a server", async () => {
  await withDir(async (db) => {
    assertOk(await runCli(["--db", db, "--add-user", "alice", ...COST], { stdin: "s3cret\r\n" }));
    const server = await startServer({ db });
    let client: TestClient | undefined;
    try {
      client = await TestClient.login(server.port, "alice", "s3cret");
      await client.send("0:alice:s3cret\r\n"); // \r\n on the wire too: the same password
      assert.match(await client.next(), /^0:[1-9]\d*$/);
      await client.send("0:alice:S3cret");
      await client.expect("0:-1");
    } finally {
      await client?.close();
      await server.stop();
    }
  });
});

Deno.test("--remove-user removes the user; --list-users prints one name a line, sorted", async () => {
  await withDir(async (db) => {
    await seedUsers(db, { bob: "b", Alice: "a", carol: "c", _x: "x", "a.b-c": "d" });
    const listed = await runCli(["--db", db, "--list-users"]);
    assertOk(listed);
    assert.equal(listed.stdout, "Alice\n_x\na.b-c\nbob\ncarol\n");
    assertOk(await runCli(["--db", db, "--remove-user", "bob"]));
    const after = await runCli(["--db", db, "--list-users"]);
    assert.equal(after.stdout, "Alice\n_x\na.b-c\ncarol\n");
  });
  await withDir(async (db) => {
    const empty = await runCli(["--db", db, "--list-users"]);
    assertOk(empty);
    assert.equal(empty.stdout, "");
  });
});

Deno.test("--set-password: the new password works and the old one stops working", async () => {
  await withDir(async (db) => {
    await seedUsers(db, { alice: "old-one" });
    assertOk(
      await runCli(["--db", db, "--set-password", "alice", ...COST], { stdin: "new-one\n" }),
    );
    assert.ok(await passwordIs(db, "alice", "new-one"));
    assert.ok(!await passwordIs(db, "alice", "old-one"));
  });
});

Deno.test("--list-rooms prints every room one a line (sorted, password rooms marked); --remove-room removes one", async () => {
  await withDir(async (db) => {
    const store = openSqliteStore(db);
    try {
      for (const name of ["lobby", "é", "B", "vault"]) {
        await store.addRoom(name, name === "vault" ? "scrypt$10$8$1$AAAA$AAAA" : null);
      }
    } finally {
      await store.close();
    }
    const listed = await runCli(["--db", db, "--list-rooms"]);
    assertOk(listed);
    assert.equal(listed.stdout, "B\nlobby\nvault (password)\né\n");
    const removed = await runCli(["--db", db, "--remove-room", "lobby"]);
    assertOk(removed);
    assert.equal((await runCli(["--db", db, "--list-rooms"])).stdout, "B\nvault (password)\né\n");
  });
});

Deno.test("every admin error: one clear line on stderr, a non-zero exit, nothing written", async () => {
  await withDir(async (db) => {
    await seedUsers(db, { alice: "wonderland", bob: "builder" });
    const store = openSqliteStore(db);
    await store.addRoom("lobby", null);
    await store.close();
    const before = snapshot(db);

    const cases: [string, string[], string | undefined, RegExp, Record<string, string>?][] = [
      ["duplicate name", ["--add-user", "alice"], "pw\n", /already exists/],
      ["invalid name", ["--add-user", "bad name"], "pw\n", /invalid username/],
      ["invalid name (':')", ["--add-user", "a:b"], "pw\n", /invalid username/],
      ["name too long", ["--add-user", "a".repeat(33)], "pw\n", /invalid username/],
      ["empty name", ["--add-user", ""], "pw\n", /needs a name/],
      ["empty password", ["--add-user", "carol"], "", /password is empty/],
      ["empty password line", ["--add-user", "carol"], "\n", /password is empty/],
      ["password with ':'", ["--add-user", "carol"], "pa:ss\n", /':'/],
      ["password with a line break", ["--add-user", "carol"], "pa\nss\n", /line break/],
      ["password with a CR inside", ["--add-user", "carol"], "pa\rss", /line break/],
      ["password too long", ["--add-user", "carol"], "p".repeat(1025), /longer than 1024/],
      ["set-password: no such user", ["--set-password", "nobody"], "pw\n", /no user/],
      ["set-password: empty", ["--set-password", "alice"], "\n", /password is empty/],
      ["set-password: ':'", ["--set-password", "alice"], "a:b\n", /':'/],
      ["remove-user: no such user", ["--remove-user", "nobody"], undefined, /no user/],
      ["remove-room: no such room", ["--remove-room", "nowhere"], undefined, /no room/],
      ["unknown flag", ["--bogus"], undefined, /bogus/],
      ["unknown flag with a command", ["--list-users", "--frobnicate", "1"], undefined, /frob/],
      ["bad flag value", ["--port", "abc", "--list-users"], undefined, /--port/],
      ["bad flag value (range)", ["--max-rooms", "-5"], undefined, /--max-rooms/],
      ["bad choice", ["--log-level", "loud"], undefined, /--log-level/],
      ["missing name", ["--remove-user"], undefined, /remove-user/],
      ["two commands", ["--list-users", "--list-rooms"], undefined, /one admin command/],
      ["two commands", ["--add-user", "x", "--remove-user", "bob"], "pw\n", /one admin command/],
      ["bad env value", ["--list-users"], undefined, /PARLEY_PORT/, { PARLEY_PORT: "abc" }],
    ];
    // A few at a time: each is a Deno process.
    for (let i = 0; i < cases.length; i += 4) {
      await Promise.all(
        cases.slice(i, i + 4).map(async ([what, args, stdin, pattern, env]) => {
          const result = await runCli(["--db", db, ...args, ...COST], { stdin, env });
          assertOneLineError(result, pattern, what);
        }),
      );
    }
    assert.equal(snapshot(db), before, "a failed command changed the database");
    assert.ok(await passwordIs(db, "alice", "wonderland"));
  });
});

Deno.test("usage errors and invalid names create no database file", async () => {
  await withDir(async (db, dir) => {
    const results = await Promise.all([
      runCli(["--db", db, "--bogus"]),
      runCli(["--db", db, "--port", "abc"]),
      runCli(["--db", db, "--list-users", "--list-rooms"]),
      runCli(["--db", db, "--add-user", "no good"], { stdin: "pw\n" }),
    ]);
    for (const result of results) assert.notEqual(result.code, 0);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("a database that cannot be opened: one line naming the file", async () => {
  await withDir(async (_db, dir) => {
    const db = `${dir}/missing/dir/parley.db`;
    const result = await runCli(["--db", db, "--list-users"]);
    assertOneLineError(result, new RegExp(db.replaceAll("/", "\\/")), "missing directory");
  });
});

Deno.test("the database file is created with mode 0600, by the CLI and by the server", async () => {
  await withDir(async (db, dir) => {
    assertOk(await runCli(["--db", db, "--add-user", "alice", ...COST], { stdin: "pw\n" }));
    const serverDb = `${dir}/server.db`;
    const server = await startServer({ db: serverDb });
    await server.stop();
    for (const file of [db, serverDb]) {
      assert.equal(Deno.statSync(file).mode! & 0o777, 0o600, file);
      for (const side of ["-wal", "-shm"]) {
        try {
          assert.equal(Deno.statSync(file + side).mode! & 0o077, 0, file + side);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
    }
  });
});

Deno.test("--help lists every flag with its default and environment variable", async () => {
  const result = await runCli(["--help"]);
  assertOk(result);
  const help = result.stdout;
  const expected: [string, string, string][] = [
    ["host", "0.0.0.0", "PARLEY_HOST"],
    ["port", "7777", "PARLEY_PORT"],
    ["db", "parley.db", "PARLEY_DB"],
    ["stamp-sender", "false", "PARLEY_STAMP_SENDER"],
    ["max-line-bytes", "65536", "PARLEY_MAX_LINE_BYTES"],
    ["login-timeout-ms", "30000", "PARLEY_LOGIN_TIMEOUT_MS"],
    ["max-rooms", "10000", "PARLEY_MAX_ROOMS"],
  ];
  for (const spec of SERVER_FLAGS) {
    const shown = spec.shownDefault ?? (spec.default === "" ? "none" : String(spec.default));
    if (!expected.some(([flag]) => flag === spec.flag)) {
      expected.push([spec.flag, shown, `PARLEY_${spec.flag.toUpperCase().replaceAll("-", "_")}`]);
    }
  }
  for (const [flag, value, env] of expected) {
    const start = help.search(new RegExp(`^\\s+--${flag}\\b`, "m"));
    assert.ok(start !== -1, `--help does not list --${flag}`);
    // An entry is the flag's line and the line under it.
    const entry = help.slice(start, help.indexOf("\n", help.indexOf("\n", start) + 1));
    assert.ok(
      entry.includes(`default: ${value}`) && entry.includes(env),
      `--help entry of --${flag} lacks "default: ${value}" or ${env}: ${entry}`,
    );
  }
  for (const command of ["add-user", "remove-user", "set-password", "list-users"]) {
    assert.match(help, new RegExp(`--${command}\\b`));
  }
  for (const command of ["list-rooms", "remove-room", "help", "version"]) {
    assert.match(help, new RegExp(`--${command}\\b`));
  }
});

Deno.test("--version prints the version", async () => {
  const result = await runCli(["--version"]);
  assertOk(result);
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(VERSION, config.version);
  assert.match(result.stdout, new RegExp(`^parley ${VERSION.replaceAll(".", "\\.")}\\b`));
});

Deno.test("environment variables are honoured: PARLEY_DB for admin commands, flags win over them", async () => {
  await withDir(async (db) => {
    const env = { PARLEY_DB: db, PARLEY_HASH_COST: String(TEST_HASH_COST) };
    assertOk(await runCli(["--add-user", "alice"], { stdin: "pw\n", env }));
    const listed = await runCli(["--list-users"], { env });
    assertOk(listed);
    assert.equal(listed.stdout, "alice\n");
    // PARLEY_HASH_COST reached the hasher: the stored hash says so.
    const store = openSqliteStore(db);
    try {
      assert.match((await store.findUser("alice"))!.passwordHash, /^scrypt\$10\$/);
    } finally {
      await store.close();
    }
    // A flag wins over its variable: a bad PARLEY_MAX_ROOMS is not even read.
    const flagWins = await runCli(["--list-users", "--max-rooms", "5"], {
      env: { ...env, PARLEY_MAX_ROOMS: "lots" },
    });
    assertOk(flagWins);
  });
});

Deno.test("environment variables are honoured by the server: PARLEY_STAMP_SENDER, PARLEY_MAX_LINE_BYTES", async () => {
  const server = await startServer({
    users: { alice: "pw" },
    env: { PARLEY_STAMP_SENDER: "true", PARLEY_MAX_LINE_BYTES: "100", PARLEY_PORT: "not-used" },
  });
  let client: TestClient | undefined;
  try {
    client = await TestClient.login(server.port, "alice", "pw");
    await client.send("3:2:alice:hi");
    await client.expect("3:alice:hi");
    await client.send("3:2:alice:" + "x".repeat(100));
    await client.expect("9:?:too-long");
  } finally {
    await client?.close();
    await server.stop();
  }
});

Deno.test("environment variables are honoured by the server: PARLEY_HOST, PARLEY_PORT, PARLEY_DB", async () => {
  await withDir(async (db) => {
    await seedUsers(db, { alice: "pw" });
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
      env: { PARLEY_HOST: "127.0.0.1", PARLEY_PORT: String(port), PARLEY_DB: db },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    const drained = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
    })();
    let client: TestClient | undefined;
    try {
      const deadline = Date.now() + 10_000;
      while (!log.includes(`address=127.0.0.1:${port}`)) {
        if (Date.now() > deadline) throw new Error(`server did not listen on ${port}:\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      client = await TestClient.login(port, "alice", "pw");
    } finally {
      await client?.close();
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
      await drained;
    }
  });
});
