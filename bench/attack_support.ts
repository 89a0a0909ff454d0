/**
 * What the attack scripts (bench/attacks.ts, attack_bytes.ts, attack_logins.ts) share: adding a
 * user with a checkout's own admin CLI, so each script can run against the current tree or an
 * older one (`--root`/`--tree`) alike.
 *
 * @module
 */

/**
 * Adds `name` with `password` to the SQLite file `db`, hashed at `cost`, with the `main.ts` of
 * the checkout under test; throws with the CLI's stderr when it fails.
 */
export async function addUserWith(
  main: string,
  db: string,
  name: string,
  password: string,
  cost = "10",
): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "--db", db, "--hash-cost", cost, "--add-user", name],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(`${password}\n`));
  await writer.close();
  const { code, stderr } = await child.output();
  if (code !== 0) throw new Error(`--add-user ${name}: ${new TextDecoder().decode(stderr)}`);
}
