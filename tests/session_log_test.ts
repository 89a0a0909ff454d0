// Operators see who comes and goes (issue 15): info lines for a login, a session the server ends
// (replaced, removed), a logout, and a failed login naming the username it tried; never a
// password or a resume token.
import assert from "node:assert/strict";
import { runCli, startServer, TestClient, waitFor } from "./helpers.ts";

Deno.test("session log: login, failed login, replaced, removed and logout, never a secret", async () => {
  const server = await startServer({ users: { alice: "wonderland", bob: "builder" } });
  const clients: TestClient[] = [];
  const line = (pattern: RegExp) =>
    waitFor(() => pattern.test(server.log()), `a log line ${pattern}`, 10_000);
  try {
    const first = await TestClient.connect(server.port);
    clients.push(first);
    await first.send("8:resume");
    await first.expect("8:resume");
    await first.send("0:alice:wonderland");
    const id = (await first.next()).slice(2);
    const token = (await first.next()).slice(2); // the 6:<token> line
    await line(
      new RegExp(`info login user=alice address=127\\.0\\.0\\.1 session=${id} transport=tcp`),
    );

    const wrong = await TestClient.connect(server.port);
    clients.push(wrong);
    await wrong.ask("0:bob:not-his-password", "0:-1");
    await line(/info login-failed user=bob address=127\.0\.0\.1 transport=tcp failures=1/);

    const second = await TestClient.login(server.port, "alice", "wonderland");
    clients.push(second);
    await line(new RegExp(`info session-ended user=alice .*session=${id} .*reason=replaced`));

    const bob = await TestClient.login(server.port, "bob", "builder");
    clients.push(bob);
    assert.equal((await runCli(["--db", server.db, "--remove-user", "bob"])).code, 0);
    await line(/info session-ended user=bob .*transport=tcp reason=removed/);

    await second.close();
    await line(/info logout user=alice .*reason="connection closed"/);

    const log = server.log();
    for (const secret of ["wonderland", "builder", "not-his-password", token]) {
      assert.ok(!log.includes(secret), `${secret} is not in the log`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.stop();
  }
});
