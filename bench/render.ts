/**
 * Renders a finished run again from its JSON: `<base>.md` and `<base>.svg` from `<base>.json`,
 * with `<base>-restart.md` appended as bench/run.ts does when it exists. For a report whose
 * format changed after the run; the figures are the run's own.
 *
 * ```sh
 * deno run -A bench/render.ts bench/results/2026-11-30-vm.json
 * ```
 *
 * @module
 */

import { renderMarkdown, type Report } from "./report.ts";

/**
 * Writes `<base>.md` and `<base>.svg` for `report`, with `<base>-restart.md` (bench/restart.ts's
 * report) appended as a section when `withRestart` and it exists, then `extra`; returns the
 * Markdown.
 */
export function writeRendered(
  report: Report,
  base: string,
  withRestart = true,
  extra = "",
): string {
  const rendered = renderMarkdown(report, base.slice(base.lastIndexOf("/") + 1) + ".svg");
  let markdown = rendered.markdown;
  if (withRestart) {
    try {
      markdown += "\n## " + Deno.readTextFileSync(`${base}-restart.md`).replace(/^# /, "");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  markdown += extra;
  Deno.writeTextFileSync(`${base}.md`, markdown);
  Deno.writeTextFileSync(`${base}.svg`, rendered.svg);
  return markdown;
}

if (import.meta.main) {
  const json = Deno.args[0];
  if (json === undefined || !json.endsWith(".json")) {
    console.error("usage: deno run -A bench/render.ts <run>.json");
    Deno.exit(2);
  }
  const base = json.slice(0, -".json".length);
  writeRendered(JSON.parse(Deno.readTextFileSync(json)) as Report, base);
  console.error(`bench: wrote ${base}.md and .svg`);
}
