// The layer rule of README.md ("How it is built"): each folder of lib/ is a layer, and no file
// imports a layer above its own. This test reads every import line of lib/ and fails on one that
// climbs.
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), "../lib");

/** What each layer may import besides itself. Anything not listed is above it. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  protocol: [],
  hub: ["protocol"],
  observe: [],
  store: ["protocol"],
  cluster: ["protocol", "hub", "observe"],
  transport: ["protocol", "hub", "observe"],
  client: ["protocol"],
  server: ["protocol", "hub", "observe", "store", "cluster", "transport"],
};

/** Every .ts and .js file under `dir`. */
function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...sourceFiles(path));
    else if (/\.(ts|js)$/.test(entry.name)) files.push(path);
  }
  return files;
}

/** The relative module specifiers a file imports (static, dynamic and `export ... from`). */
export function importsOf(source: string): string[] {
  // Doc examples import too, but they are not the module's own code: leave comments out.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const found: string[] = [];
  const pattern = /(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (const match of code.matchAll(pattern)) found.push(match[1]);
  return found;
}

/** The layer (top folder of lib/) a path is in, or null outside lib/. */
function layerOf(path: string): string | null {
  const inLib = relative(LIB, path);
  if (inLib.startsWith("..")) return null;
  return inLib.split("/")[0];
}

Deno.test("layers: every folder of lib/ is a known layer", () => {
  const folders = [...Deno.readDirSync(LIB)].filter((e) => e.isDirectory).map((e) => e.name);
  assert.deepEqual(folders.sort(), Object.keys(MAY_IMPORT).sort());
  const loose = [...Deno.readDirSync(LIB)].filter((e) => e.isFile).map((e) => e.name);
  assert.deepEqual(loose, [], "no file of lib/ outside a layer");
});

Deno.test("layers: no import climbs a layer", () => {
  const climbing: string[] = [];
  let imports = 0;
  for (const file of sourceFiles(LIB)) {
    const from = layerOf(file);
    assert.ok(from !== null);
    for (const specifier of importsOf(Deno.readTextFileSync(file))) {
      imports++;
      const to = layerOf(resolve(dirname(file), specifier));
      if (to === null) {
        // Outside lib/: only deno.json (the version) may be read.
        if (!specifier.endsWith("/deno.json")) {
          climbing.push(`${relative(LIB, file)} → ${specifier}`);
        }
      } else if (to !== from && !MAY_IMPORT[from].includes(to)) {
        climbing.push(`${relative(LIB, file)} (${from}) → ${specifier} (${to})`);
      }
    }
  }
  assert.ok(imports > 50, `read ${imports} imports`);
  assert.deepEqual(climbing, []);
});

Deno.test("layers: the rule reads imports as the files write them", () => {
  const source = [
    'import { a } from "../hub/hub.ts";',
    'import type { B } from "./b.ts";',
    'export { c } from "../protocol/codec.ts";',
    'const d = await import("../store/sqlite_store.ts");',
    "/**",
    ' * import { e } from "../server/config.ts";',
    " */",
    '// import { f } from "../server/server.ts";',
    'import { g } from "node:util";',
  ].join("\n");
  assert.deepEqual(importsOf(source), [
    "../hub/hub.ts",
    "./b.ts",
    "../protocol/codec.ts",
    "../store/sqlite_store.ts",
  ]);
});
