// Unit tests of lib/server/password.ts: salted scrypt hashes that carry their own parameters, checked in
// constant time, with bounded concurrency.
import assert from "node:assert/strict";
import { HasherBusyError, parseHash, PasswordHasher } from "../lib/server/password.ts";

const encoder = new TextEncoder();
const LOW = { logN: 10, r: 8, p: 1 };
const pw = (s: string) => encoder.encode(s);

Deno.test("password: a hash verifies its password and no other", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  const stored = await hasher.hash(pw("wonderland"));
  assert.equal(await hasher.verify(pw("wonderland"), stored), true);
  assert.equal(await hasher.verify(pw("wonderlan"), stored), false);
  assert.equal(await hasher.verify(pw("wonderland "), stored), false);
  assert.equal(await hasher.verify(pw("Wonderland"), stored), false);
  assert.equal(await hasher.verify(new Uint8Array(0), stored), false);
});

Deno.test("password: arbitrary bytes hash and verify", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  const raw = new Uint8Array([0xff, 0x00, 0x80, 0x0d]);
  const stored = await hasher.hash(raw);
  assert.equal(await hasher.verify(raw, stored), true);
  assert.equal(await hasher.verify(new Uint8Array([0xff, 0x00, 0x80]), stored), false);
});

Deno.test("password: the stored form is scrypt$logN$r$p$salt$key with a 16-byte salt", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  const stored = await hasher.hash(pw("secret"));
  assert.match(stored, /^scrypt\$10\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.ok(!stored.includes("secret"));
  const parsed = parseHash(stored);
  assert.ok(parsed !== null);
  assert.deepEqual(parsed.params, LOW);
  assert.equal(parsed.salt.length, 16);
  assert.equal(parsed.key.length, 32);
});

Deno.test("password: the default cost is N=2^15, r=8, p=1", () => {
  assert.deepEqual(new PasswordHasher().params, { logN: 15, r: 8, p: 1 });
});

Deno.test("password: every hash gets its own salt", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  const a = await hasher.hash(pw("same"));
  const b = await hasher.hash(pw("same"));
  assert.notEqual(a, b);
  assert.notDeepEqual(parseHash(a)!.salt, parseHash(b)!.salt);
  assert.equal(await hasher.verify(pw("same"), a), true);
  assert.equal(await hasher.verify(pw("same"), b), true);
});

Deno.test("password: a hash's own parameters are used, not the verifier's", async () => {
  const old = new PasswordHasher({ params: { logN: 10, r: 4, p: 2 } });
  const stored = await old.hash(pw("secret"));
  assert.deepEqual(parseHash(stored)!.params, { logN: 10, r: 4, p: 2 });
  const newer = new PasswordHasher({ params: { logN: 11, r: 8, p: 1 } });
  assert.equal(await newer.verify(pw("secret"), stored), true);
  assert.equal(await newer.verify(pw("wrong"), stored), false);
  // New hashes take the newer hasher's cost.
  assert.deepEqual(parseHash(await newer.hash(pw("secret")))!.params, { logN: 11, r: 8, p: 1 });
});

Deno.test("password: changing the parameters in a stored hash breaks it (they are honoured)", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  const stored = await hasher.hash(pw("secret"));
  for (
    const tampered of [
      stored.replace("scrypt$10$", "scrypt$11$"),
      stored.replace("$8$1$", "$4$1$"),
      stored.replace("$8$1$", "$8$2$"),
    ]
  ) {
    assert.notEqual(tampered, stored);
    assert.equal(await hasher.verify(pw("secret"), tampered), false, tampered);
  }
});

Deno.test("password: an unknown user (no stored hash) is false", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  assert.equal(await hasher.verify(pw("secret"), undefined), false);
  assert.equal(await hasher.verify(pw(""), undefined), false);
});

Deno.test("password: an unknown user costs a real hash, like a wrong password", async () => {
  const hasher = new PasswordHasher({ params: LOW, concurrency: 1, maxWaiting: 0 });
  await hasher.prepare();
  const stored = await hasher.hash(pw("secret"));
  // While one check holds the only slot, a second must queue: with no room to wait it is
  // refused, which shows it needs the hasher at all (it is not answered for free).
  for (const second of [undefined, stored]) {
    const first = hasher.verify(pw("x"), stored);
    await assert.rejects(hasher.verify(pw("x"), second), HasherBusyError);
    assert.equal(await first, false);
  }
});

Deno.test("password: parseHash rejects what this module did not write", () => {
  const salt = "AAAAAAAAAAAAAAAAAAAAAA==";
  const garbage = [
    "",
    "scrypt",
    "plaintext-password",
    `bcrypt$10$8$1$${salt}$AAAA`,
    `scrypt$10$8$1$${salt}`,
    `scrypt$10$8$1$${salt}$AAAA$extra`,
    `scrypt$x$8$1$${salt}$AAAA`,
    `scrypt$0$8$1$${salt}$AAAA`,
    `scrypt$-1$8$1$${salt}$AAAA`,
    `scrypt$1.5$8$1$${salt}$AAAA`,
    `scrypt$25$8$1$${salt}$AAAA`,
    `scrypt$10$0$1$${salt}$AAAA`,
    `scrypt$10$8$0$${salt}$AAAA`,
    `scrypt$10$8$$${salt}$AAAA`,
    `scrypt$10$8$1$!!!!$AAAA`,
    `scrypt$10$8$1$${salt}$not base64!`,
  ];
  for (const text of garbage) assert.equal(parseHash(text), null, JSON.stringify(text));
  assert.deepEqual(parseHash(`scrypt$10$8$1$${salt}$AAAA`)?.params, LOW);
});

Deno.test("password: a garbage stored hash never verifies", async () => {
  const hasher = new PasswordHasher({ params: LOW });
  for (const text of ["", "secret", "scrypt$10$8$1$$"]) {
    assert.equal(await hasher.verify(pw("secret"), text), false, JSON.stringify(text));
  }
});

Deno.test("password: concurrency 1 and 1 waiting: a third concurrent call is refused", async () => {
  const hasher = new PasswordHasher({ params: LOW, concurrency: 1, maxWaiting: 1 });
  const first = hasher.hash(pw("a"));
  const second = hasher.hash(pw("b"));
  await assert.rejects(hasher.hash(pw("c")), HasherBusyError);
  const [a, b] = await Promise.all([first, second]);
  assert.equal(await hasher.verify(pw("a"), a), true);
  assert.equal(await hasher.verify(pw("b"), b), true);
  // The slots are free again afterwards.
  const again = await Promise.all([hasher.hash(pw("d")), hasher.hash(pw("e"))]);
  assert.equal(again.length, 2);
});

Deno.test("password: no more than `concurrency` hashes run at once; the rest wait in order", async () => {
  // Observe the hasher through its queue: with concurrency 2 and 3 waiting, 5 calls are accepted
  // and the sixth refused; all five complete.
  const hasher = new PasswordHasher({ params: LOW, concurrency: 2, maxWaiting: 3 });
  const accepted = [1, 2, 3, 4, 5].map((i) => hasher.hash(pw(String(i))));
  await assert.rejects(hasher.hash(pw("6")), HasherBusyError);
  const hashes = await Promise.all(accepted);
  for (const [i, h] of hashes.entries()) {
    assert.equal(await hasher.verify(pw(String(i + 1)), h), true);
  }
});

// The remembered-password shortcut. A hasher with one slot and no queue refuses (HasherBusyError)
// any check that needs scrypt while a hash runs, so what still answers took the shortcut.
function busyHasher(rememberVerified?: number) {
  return new PasswordHasher({ params: LOW, concurrency: 1, maxWaiting: 0, rememberVerified });
}

/** A hash stored at the production cost, 2^15: a check against it is a tenth of a second or more. */
let slowStored: Promise<string> | undefined;

/**
 * Takes `hasher`'s only slot for as long as a check at cost 2^15 takes (a stored hash is checked at
 * its own cost). A hash at the hasher's low cost would be done in about a millisecond, and on a
 * busy machine the assertions that need the slot taken could come after it.
 */
async function takeTheSlot(hasher: PasswordHasher): Promise<{ done: Promise<boolean> }> {
  slowStored ??= new PasswordHasher({ params: { logN: 15, r: 8, p: 1 } }).hash(pw("slow"));
  const stored = await slowStored;
  // In an object: an async function's promise would wait for the check itself.
  return { done: hasher.verify(pw("not it"), stored) }; // wrong: nothing is remembered
}

Deno.test("password: a proven password is remembered: a returning user costs no scrypt", async () => {
  const hasher = busyHasher();
  const alice = await hasher.hash(pw("wonderland"));
  const bob = await hasher.hash(pw("wonderland")); // same password, another salt
  assert.equal(await hasher.verify(pw("wonderland"), alice), true); // full check, remembered
  const blocker = await takeTheSlot(hasher);
  try {
    assert.equal(await hasher.verify(pw("wonderland"), alice), true, "remembered: no slot needed");
    await assert.rejects(hasher.verify(pw("wonderlan"), alice), HasherBusyError, "wrong: scrypt");
    await assert.rejects(hasher.verify(pw("wonderland"), bob), HasherBusyError, "other hash");
    await assert.rejects(hasher.verify(pw("wonderland"), undefined), HasherBusyError, "unknown");
  } finally {
    await blocker.done;
  }
});

Deno.test("password: remembering can be turned off, and the oldest is forgotten first", async () => {
  const off = busyHasher(0);
  const stored = await off.hash(pw("secret"));
  assert.equal(await off.verify(pw("secret"), stored), true);
  let blocker = await takeTheSlot(off);
  await assert.rejects(off.verify(pw("secret"), stored), HasherBusyError);
  await blocker.done;

  const one = busyHasher(1);
  const first = await one.hash(pw("one"));
  const second = await one.hash(pw("two"));
  assert.equal(await one.verify(pw("one"), first), true);
  assert.equal(await one.verify(pw("two"), second), true); // pushes "one" out
  blocker = await takeTheSlot(one);
  try {
    assert.equal(await one.verify(pw("two"), second), true);
    await assert.rejects(one.verify(pw("one"), first), HasherBusyError);
  } finally {
    await blocker.done;
  }
});
