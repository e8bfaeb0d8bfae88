/**
 * The CLI side of store composition (issue 4): `--config FILE` on store
 * commands, its conflict with `--*-service-addr`, and `strata config check`
 * on local files (the README examples are checked in
 * test/composition/examples.test.ts).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { urlPath } from "../../src/composition/open.js";
import { defaultStoreEnv, runStrata } from "../helpers/cli.js";
import { tempDir } from "../helpers/tmp.js";

/** A config of local stores under `dir`, path infos behind an lru. */
function localConfig(dir: string): string {
  const file = join(dir, "store.toml");
  writeFileSync(
    file,
    `[blobservices]
root = "objectstore+file://${urlPath(join(dir, "blobs"))}"

[directoryservices.root]
type = "lmdb"
path = ${JSON.stringify(join(dir, "directories"))}

[pathinfoservices.root]
type = "lru"
inner = "disk"
capacity = 100

[pathinfoservices.disk]
type = "lmdb"
path = ${JSON.stringify(join(dir, "pathinfo"))}
`,
  );
  return file;
}

describe("strata --config", () => {
  test("store commands open the roots of the config file", async (t) => {
    const dir = tempDir(t);
    const config = localConfig(dir);
    const tree = join(dir, "tree");
    mkdirSync(tree);
    writeFileSync(join(tree, "hello.txt"), "hello\n");
    const imported = await runStrata(
      ["import", "--config", config, tree],
      undefined,
      defaultStoreEnv(dir),
    );
    assert.equal(imported.code, 0, imported.stderr);
    const path = imported.stdout.toString().trim();
    assert.match(path, /^\/nix\/store\/[0-9a-z]{32}-tree$/);
    const info = await runStrata(
      ["path-info", "--config", config, path],
      undefined,
      defaultStoreEnv(dir),
    );
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout.toString(), /sha256-/);
    assert.ok(existsSync(join(dir, "pathinfo")), "the config's stores were used");
    assert.ok(!existsSync(join(dir, "xdg", "strata")), "the default store was not touched");
    // The same store without --config is the (empty) default store.
    const other = await runStrata(["path-info", path], undefined, defaultStoreEnv(dir));
    assert.notEqual(other.code, 0);
  });

  test("--config with a --*-service-addr flag is an error; the variables only fill gaps", async (t) => {
    const dir = tempDir(t);
    const config = localConfig(dir);
    const r = await runStrata(
      ["path-info", "--config", config, "--blob-service-addr", "memory://", "/nix/store/x"],
      undefined,
      defaultStoreEnv(dir),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: --config and --blob-service-addr cannot be combined/);
    const tree = join(dir, "t");
    mkdirSync(tree);
    writeFileSync(join(tree, "f"), "x");
    const ok = await runStrata(["import", "--config", config, tree], undefined, {
      ...defaultStoreEnv(dir),
      BLOB_SERVICE_ADDR: "memory://",
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(existsSync(join(dir, "blobs")), "the file's blob store, not BLOB_SERVICE_ADDR");
  });

  test("a bad config file is one readable error with the reference path", async (t) => {
    const dir = tempDir(t);
    const file = join(dir, "bad.toml");
    writeFileSync(
      file,
      '[pathinfoservices.root]\ntype = "cache"\nnear = "memory://"\nfar = "upstream"\n',
    );
    for (const args of [
      ["config", "check", file],
      ["path-info", "--config", file, "/nix/store/x"],
    ]) {
      const r = await runStrata(args, undefined, defaultStoreEnv(dir));
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `error: config file '${file}': pathinfoservices.root.far -> pathinfoservices.upstream: not defined (pathinfoservices has: root; a URL must contain '://')\n`,
      );
    }
    const missing = await runStrata(["config", "check", join(dir, "nope.toml")]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /^error: config file '.*nope\.toml': cannot be read\n {2}caused by: ENOENT/,
    );
  });

  test("config check prints the tree", async (t) => {
    const dir = tempDir(t);
    const r = await runStrata(
      ["config", "check", localConfig(dir)],
      undefined,
      defaultStoreEnv(dir),
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.toString().trimEnd().split("\n");
    assert.deepEqual(lines, [
      `blobservices.root = objectstore+file://${urlPath(join(dir, "blobs"))} [objectstore]`,
      "directoryservices.root [lmdb]",
      "pathinfoservices.root [lru]",
      "└─ inner: pathinfoservices.disk [lmdb]",
    ]);
  });

  test("config --help explains the subcommands", async () => {
    const r = await runStrata(["config", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout.toString(), /check/);
    assert.match(r.stdout.toString(), /schema/);
  });
});
