import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { runStrata } from "../helpers/cli.js";
import { corpusDir } from "../helpers/corpus.js";
import { nixBinary, requireNix } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

describe("strata CLI", () => {
  test("no arguments prints the help and succeeds (npm start)", async () => {
    const r = await runStrata([]);
    assert.equal(r.code, 0);
    assert.match(r.stdout.toString(), /Usage: strata/);
    assert.match(r.stdout.toString(), /nar/);
  });

  for (const cmd of [
    ["nar"],
    ["nar", "pack"],
    ["nar", "unpack"],
    ["nar", "hash"],
    ["nar", "ls"],
    ["store-path"],
  ]) {
    test(`${cmd.join(" ")} --help explains itself`, async () => {
      const r = await runStrata([...cmd, "--help"]);
      assert.equal(r.code, 0);
      assert.match(r.stdout.toString(), /Usage: strata/);
    });
  }

  test("unknown commands and missing arguments fail with a message", async () => {
    const a = await runStrata(["frobnicate"]);
    assert.notEqual(a.code, 0);
    assert.match(a.stderr, /unknown command/);
    const b = await runStrata(["nar", "pack"]);
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /missing required argument/);
  });

  test("a missing path is one readable error line, no stack trace", async () => {
    const r = await runStrata(["nar", "pack", "/nonexistent/x"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*no such file or directory/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test("store-path rejects an invalid name", async () => {
    const r = await runStrata([
      "store-path",
      "--name",
      "bad name",
      join(corpusDir(), "single-file-tiny"),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /character ' ' at position 3 is not allowed/);
  });

  test("nar ls lists like `nix nar ls -lR`", async (t) => {
    const dir = tempDir(t);
    const nar = (await runStrata(["nar", "pack", join(corpusDir(), "mixed")])).stdout;
    const file = join(dir, "mixed.nar");
    writeFileSync(file, nar);
    const r = await runStrata(["nar", "ls", file]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.toString().trim().split("\n");
    assert.ok(lines.includes(`-r-xr-xr-x ${"20".padStart(20)} ./bin/tool`), lines.join("\n"));
    assert.ok(lines.includes(`lrwxrwxrwx ${"0".padStart(20)} ./lib/libfoo.so -> libfoo.so.1`));
    if (requireNix(t)) {
      const theirs = nixBinary("nix", ["nar", "ls", "-lR", file, "/"])
        .toString()
        .trim()
        .split("\n");
      // Nix prints the root's children only; strata also prints the root as ".".
      assert.deepEqual(lines.slice(1), theirs);
    }
    // The same NAR on stdin.
    const s = await runStrata(["nar", "ls"], nar);
    assert.deepEqual(s.stdout, r.stdout);
  });

  test("nar ls and nar unpack reject a corrupt NAR naming the byte offset, leaving nothing behind", async (t) => {
    const dir = tempDir(t);
    const nar = Buffer.from((await runStrata(["nar", "pack", join(corpusDir(), "mixed")])).stdout);
    const bad = Buffer.from(nar);
    bad[200] = bad[200]! ^ 0xff;
    const ls = await runStrata(["nar", "ls"], bad);
    assert.equal(ls.code, 1);
    assert.match(ls.stderr, /^error: NAR: .* at byte \d+/);
    const dest = join(dir, "out");
    const truncated = nar.subarray(0, nar.length - 100);
    const u = await runStrata(["nar", "unpack", dest], truncated);
    assert.equal(u.code, 1);
    assert.match(u.stderr, /^error: NAR: /);
    assert.equal(existsSync(dest), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  test("nar unpack refuses an existing destination", async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, "exists"));
    const nar = (await runStrata(["nar", "pack", join(corpusDir(), "single-file-tiny")])).stdout;
    const r = await runStrata(["nar", "unpack", join(dir, "exists")], nar);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exists/);
  });
});
