/**
 * Runs every ```sh block of the README's "Examples" section with bash, in a
 * scratch directory with its own default store, `strata` being the built CLI.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { STRATA_BIN } from "../helpers/cli.js";
import { tempDir } from "../helpers/tmp.js";

const README = join(import.meta.dirname, "../../../README.md");

function exampleBlocks(): string[] {
  const text = readFileSync(README, "utf8");
  const start = text.indexOf("### Examples");
  assert.ok(start >= 0, "README has an Examples section");
  const rest = text.slice(start);
  const end = rest.indexOf("\n## ", 1);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

test("README examples run as written", (t) => {
  const blocks = exampleBlocks();
  assert.ok(blocks.length >= 2);
  const dir = tempDir(t);
  const bin = join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(
    join(bin, "strata"),
    `#!/bin/sh\nexec "${process.execPath}" "${STRATA_BIN}" "$@"\n`,
    { mode: 0o755 },
  );
  const work = join(dir, "work");
  mkdirSync(work);
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    XDG_DATA_HOME: join(dir, "xdg"),
    BLOB_SERVICE_ADDR: "",
    DIRECTORY_SERVICE_ADDR: "",
    PATH_INFO_SERVICE_ADDR: "",
  };
  // One shell for all blocks: later blocks use files made by earlier ones.
  const script = `set -euo pipefail\n${blocks.join("\n")}`;
  const r = spawnSync("bash", ["-c", script], { cwd: work, env, encoding: "utf8" });
  assert.equal(r.status, 0, `README examples failed:\n${r.stderr}\n--- stdout:\n${r.stdout}`);
  assert.match(r.stdout, /\/nix\/store\/[0-9a-z]{32}-demo/);
  assert.match(r.stdout, /hello/);
});
