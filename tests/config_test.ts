// Unit tests of lib/server/config.ts: flags, PARLEY_* environment variables, defaults, errors, --help.
import assert from "node:assert/strict";
import {
  ADMIN_FLAGS,
  type Config,
  envName,
  helpText,
  parseInvocation,
  SERVER_FLAGS,
  UsageError,
  VERSION,
} from "../lib/server/config.ts";

function serve(args: string[], env: Record<string, string> = {}): Config {
  const run = parseInvocation(args, env);
  assert.equal(run.kind, "serve");
  return (run as { config: Config }).config;
}

/** Asserts that parsing fails with a UsageError whose message contains every `needles`. */
function usageError(args: string[], env: Record<string, string>, ...needles: string[]): void {
  assert.throws(() => parseInvocation(args, env), (error: unknown) => {
    assert.ok(error instanceof UsageError, `${error}`);
    for (const needle of needles) {
      assert.ok(error.message.includes(needle), `"${error.message}" names ${needle}`);
    }
    return true;
  });
}

Deno.test("config: with no flags every setting has its documented default", () => {
  const config = serve([]);
  const documented: Partial<Config> = {
    host: "0.0.0.0",
    port: 7777,
    db: "parley.db",
    stampSender: false,
    maxLineBytes: 65536,
    loginTimeoutMs: 30000,
    maxRooms: 10000,
    maxTargets: 100,
    maxConnections: 10000,
    maxPendingBytes: 4 * 1024 * 1024,
    rateBurst: 2000,
    ratePerSecond: 500,
    hashCost: 15,
    tlsCert: "",
    tlsKey: "",
  };
  for (const [key, value] of Object.entries(documented)) {
    assert.equal(config[key as keyof Config], value, key);
  }
  for (const spec of SERVER_FLAGS) assert.deepEqual(config[spec.key], spec.default, spec.flag);
});

Deno.test("config: flags set their settings", () => {
  const config = serve([
    "--host",
    "127.0.0.1",
    "--port",
    "7000",
    "--db",
    "/tmp/x.db",
    "--stamp-sender",
    "--max-line-bytes",
    "1024",
    "--login-timeout-ms=500",
    "--max-rooms",
    "3",
    "--max-targets",
    "7",
    "--max-connections",
    "9",
  ]);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 7000);
  assert.equal(config.db, "/tmp/x.db");
  assert.equal(config.stampSender, true);
  assert.equal(config.maxLineBytes, 1024);
  assert.equal(config.loginTimeoutMs, 500);
  assert.equal(config.maxRooms, 3);
  assert.equal(config.maxTargets, 7);
  assert.equal(config.maxConnections, 9);
});

Deno.test("config: every flag also reads its PARLEY_* environment variable", () => {
  assert.equal(envName("max-rooms"), "PARLEY_MAX_ROOMS");
  assert.equal(envName("port"), "PARLEY_PORT");
  const config = serve([], {
    PARLEY_HOST: "::1",
    PARLEY_PORT: "7100",
    PARLEY_DB: "env.db",
    PARLEY_STAMP_SENDER: "true",
    PARLEY_MAX_LINE_BYTES: "2048",
    PARLEY_LOGIN_TIMEOUT_MS: "1000",
    PARLEY_MAX_ROOMS: "5",
    PARLEY_LOG_LEVEL: "debug",
  });
  assert.equal(config.host, "::1");
  assert.equal(config.port, 7100);
  assert.equal(config.db, "env.db");
  assert.equal(config.stampSender, true);
  assert.equal(config.maxLineBytes, 2048);
  assert.equal(config.loginTimeoutMs, 1000);
  assert.equal(config.maxRooms, 5);
  assert.equal(config.logLevel, "debug");
});

Deno.test("config: boolean environment values", () => {
  for (const yes of ["1", "true", "TRUE", "yes", "on"]) {
    assert.equal(serve([], { PARLEY_STAMP_SENDER: yes }).stampSender, true, yes);
  }
  for (const no of ["0", "false", "no", "off", ""]) {
    assert.equal(serve([], { PARLEY_STAMP_SENDER: no }).stampSender, false, no);
  }
  usageError([], { PARLEY_STAMP_SENDER: "maybe" }, "PARLEY_STAMP_SENDER");
});

Deno.test("config: a flag beats its environment variable", () => {
  const config = serve(["--port", "7001", "--db", "flag.db"], {
    PARLEY_PORT: "7002",
    PARLEY_DB: "env.db",
  });
  assert.equal(config.port, 7001);
  assert.equal(config.db, "flag.db");
  // A bad environment value does not matter when the flag is given.
  assert.equal(serve(["--port", "7003"], { PARLEY_PORT: "nope" }).port, 7003);
});

Deno.test("config: bad values are UsageErrors naming the flag or variable", () => {
  const table: [string[], Record<string, string>, string][] = [
    [["--port", "abc"], {}, "--port"],
    [["--port", "70000"], {}, "--port"],
    [["--port", "-1"], {}, "--port"],
    [["--port", "1.5"], {}, "--port"],
    [["--port", ""], {}, "--port"],
    [["--max-line-bytes", "10"], {}, "--max-line-bytes"],
    [["--login-timeout-ms", "0"], {}, "--login-timeout-ms"],
    [["--max-rooms", "1e3"], {}, "--max-rooms"],
    [["--max-targets", "0"], {}, "--max-targets"],
    [["--log-level", "loud"], {}, "--log-level"],
    [[], { PARLEY_PORT: "abc" }, "PARLEY_PORT"],
    [[], { PARLEY_MAX_ROOMS: "-5" }, "PARLEY_MAX_ROOMS"],
    [[], { PARLEY_LOG_LEVEL: "loud" }, "PARLEY_LOG_LEVEL"],
  ];
  for (const [args, env, names] of table) usageError(args, env, names);
});

Deno.test("config: an unknown flag or a stray argument is a UsageError", () => {
  usageError(["--nope"], {}, "--nope");
  usageError(["--port", "1", "extra"], {});
  usageError(["-x"], {});
});

Deno.test("config: --tls-cert and --tls-key go together", () => {
  usageError(["--tls-cert", "cert.pem"], {}, "--tls-cert", "--tls-key");
  usageError(["--tls-key", "key.pem"], {}, "--tls-cert", "--tls-key");
  usageError([], { PARLEY_TLS_CERT: "cert.pem" }, "--tls-key");
  const both = serve(["--tls-cert", "cert.pem"], { PARLEY_TLS_KEY: "key.pem" });
  assert.equal(both.tlsCert, "cert.pem");
  assert.equal(both.tlsKey, "key.pem");
  assert.equal(both.tlsPort, 7778);
});

Deno.test("config: admin commands", () => {
  const add = parseInvocation(["--db", "x.db", "--add-user", "alice"], {});
  assert.equal(add.kind, "admin");
  assert.ok(add.kind === "admin");
  assert.equal(add.command, "add-user");
  assert.equal(add.name, "alice");
  assert.equal(add.config.db, "x.db");
  const table: [string[], string, string][] = [
    [["--remove-user", "bob"], "remove-user", "bob"],
    [["--set-password", "bob"], "set-password", "bob"],
    [["--list-users"], "list-users", ""],
    [["--list-rooms"], "list-rooms", ""],
    [["--remove-room", "lobby"], "remove-room", "lobby"],
  ];
  for (const [args, command, name] of table) {
    const run = parseInvocation(args, {});
    assert.ok(run.kind === "admin", args.join(" "));
    assert.equal(run.command, command);
    assert.equal(run.name, name);
  }
});

Deno.test("config: two admin commands at once is a UsageError naming both", () => {
  usageError(["--list-users", "--list-rooms"], {}, "--list-users", "--list-rooms");
  usageError(["--add-user", "a", "--remove-user", "b"], {}, "--add-user", "--remove-user");
});

Deno.test("config: an admin command that takes a name needs one", () => {
  usageError(["--add-user", ""], {}, "--add-user");
  usageError(["--add-user"], {}, "add-user");
});

Deno.test("config: --help and --version", () => {
  assert.deepEqual(parseInvocation(["--help"], {}), { kind: "help" });
  assert.deepEqual(parseInvocation(["--version"], {}), { kind: "version" });
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});

Deno.test("config: --help lists every flag with its default and its environment variable", () => {
  const text = helpText();
  const lines = text.split("\n");
  for (const spec of SERVER_FLAGS) {
    const at = lines.findIndex((l) => l.trimStart().startsWith(`--${spec.flag}`));
    assert.ok(at >= 0, `--${spec.flag} is listed`);
    const empty = spec.default === "" ||
      (Array.isArray(spec.default) && spec.default.length === 0);
    const shown = spec.shownDefault ?? (empty ? "none" : String(spec.default));
    const block = lines.slice(at, at + 2).join("\n");
    assert.ok(block.includes(`default: ${shown}`), `${spec.flag} shows its default: ${block}`);
    assert.ok(block.includes(envName(spec.flag)), `${spec.flag} shows ${envName(spec.flag)}`);
  }
  for (const flag of Object.keys(ADMIN_FLAGS)) assert.ok(text.includes(`--${flag}`), flag);
  assert.ok(text.includes("--help"));
  assert.ok(text.includes("--version"));
  assert.ok(text.includes("default: 7777; env: PARLEY_PORT"));
});

Deno.test("config: a negative number after a flag is its value, not another flag", () => {
  // parseArgs alone calls `--port -1` "ambiguous"; it means what `--port=-1` means.
  assert.throws(() => parseInvocation(["--port", "-1"], {}), /--port=-1 turns plain TCP off/);
  const run = parseInvocation(["--port", "-1", "--ws-port", "0"], {});
  assert.equal(run.kind === "serve" && run.config.port, -1);
  assert.throws(() => parseInvocation(["--port", "-2"], {}), /--port must be a whole number/);
});

Deno.test("config: --help shows --node-id's default once", () => {
  const lines = helpText().split("\n");
  const at = lines.findIndex((line) => line.trimStart().startsWith("--node-id"));
  assert.doesNotMatch(lines[at], /default/);
  assert.match(lines[at + 1], /default: host name and pid/);
});
