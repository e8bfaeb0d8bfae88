/**
 * The import stat cache (src/store/import/fs-import-cache.ts): what changes
 * a tree's fingerprint, the racy rule, and `strata import` answering from it.
 * Files must be older than the racy margin (2.5 s) for a cache entry to be
 * written, hence one wait per tree.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fingerprintTree, ImportCache } from "../../src/store/import/fs-import-cache.js";
import { defaultStoreEnv, runStrata } from "../helpers/cli.js";

const RACY_WAIT_MS = 2700;

function makeTree(root: string): void {
  mkdirSync(join(root, "sub", "deeper"), { recursive: true });
  writeFileSync(join(root, "a.txt"), "hello\n");
  writeFileSync(join(root, "sub", "b.bin"), Buffer.alloc(5000, 7));
  writeFileSync(join(root, "sub", "deeper", "c"), "c");
  symlinkSync("../a.txt", join(root, "sub", "link"));
  mkdirSync(join(root, "empty"));
}

async function strata(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await runStrata(args, undefined, env);
  assert.equal(r.code, 0, `strata ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.toString().trim();
}

describe("import stat cache", () => {
  let base: string;
  let tree: string;

  after(() => rmSync(base, { recursive: true, force: true }));
  before(async () => {
    base = mkdtempSync(join(tmpdir(), "strata-import-cache-"));
    tree = join(base, "tree");
    makeTree(tree);
    await sleep(RACY_WAIT_MS);
  });

  test("the fingerprint changes with content, mode, names, entries and symlink targets, and only then", () => {
    const fresh = join(base, "fp");
    makeTree(fresh);
    const fp = () => fingerprintTree(fresh).digest;
    const first = fp();
    assert.equal(fp(), first, "stable when nothing changed");
    assert.equal(fingerprintTree(fresh).entries, 8);
    const changes: [string, () => void][] = [
      ["same-size rewrite", () => writeFileSync(join(fresh, "a.txt"), "HELLO\n")],
      ["chmod +x", () => chmodSync(join(fresh, "sub", "b.bin"), 0o755)],
      [
        "rename",
        () => renameSync(join(fresh, "sub", "deeper", "c"), join(fresh, "sub", "deeper", "d")),
      ],
      ["new file", () => writeFileSync(join(fresh, "empty", "new"), "")],
      [
        "symlink retarget",
        () => {
          unlinkSync(join(fresh, "sub", "link"));
          symlinkSync("../A.txt", join(fresh, "sub", "link"));
        },
      ],
      ["removed directory", () => rmSync(join(fresh, "sub", "deeper"), { recursive: true })],
    ];
    const seen = new Set([first]);
    for (const [what, change] of changes) {
      change();
      const now = fp();
      assert.ok(!seen.has(now), `${what} changes the fingerprint`);
      seen.add(now);
    }
  });

  test("a change that is undone (directory moved away and back, symlink retargeted and back) still changes the fingerprint", () => {
    const fresh = join(base, "undo");
    makeTree(fresh);
    const first = fingerprintTree(fresh).digest;
    renameSync(join(fresh, "sub", "deeper"), join(base, "deeper-away"));
    renameSync(join(base, "deeper-away"), join(fresh, "sub", "deeper"));
    const moved = fingerprintTree(fresh).digest;
    assert.notEqual(moved, first, "the directory's ctime changed");
    unlinkSync(join(fresh, "sub", "link"));
    symlinkSync("../other", join(fresh, "sub", "link"));
    unlinkSync(join(fresh, "sub", "link"));
    symlinkSync("../a.txt", join(fresh, "sub", "link"));
    assert.notEqual(fingerprintTree(fresh).digest, moved, "a new symlink inode");
  });

  test("a cache directory that cannot be created costs a miss, never the import", () => {
    const blocker = join(base, "not-a-dir");
    writeFileSync(blocker, "");
    const cache = new ImportCache(join(blocker, "cache"));
    const fp = fingerprintTree(tree);
    cache.record(tree, "tree", fp, "/nix/store/00000000000000000000000000000000-tree");
    assert.equal(cache.lookup(tree, "tree", fp), undefined);
  });

  test("fresh files make the fingerprint racy: nothing is recorded for it", () => {
    const fresh = join(base, "racy");
    makeTree(fresh);
    const fp = fingerprintTree(fresh);
    assert.equal(fp.racy, true);
    assert.equal(fingerprintTree(tree).racy, false);
    const dir = join(base, "cache-racy");
    const cache = new ImportCache(dir);
    cache.record(fresh, "racy", fp, "/nix/store/00000000000000000000000000000000-racy");
    assert.equal(cache.lookup(fresh, "racy", fp), undefined);
  });

  test("strata import answers an unchanged tree from the cache, and re-reads a changed one", async () => {
    const env = defaultStoreEnv(join(base, "store"));
    const first = await strata(["import", "--quiet", tree], env);
    const cacheDir = join(base, "store", "xdg", "strata", "import-cache");
    const files = readdirSync(cacheDir);
    assert.equal(files.length, 1, "one cache entry for the import");
    assert.equal(await strata(["import", "--quiet", tree], env), first);

    // Point the entry at another path the store has: the CLI now answers
    // with it, which shows the hit is what answered (no file was read)...
    const other = join(base, "other");
    mkdirSync(other);
    writeFileSync(join(other, "x"), "x");
    const otherPath = await strata(["import", "--quiet", "--name", "tree", other], env);
    const entryFile = join(cacheDir, files[0]!);
    const entry = JSON.parse(readFileSync(entryFile, "utf8")) as { storePath: string };
    writeFileSync(entryFile, JSON.stringify({ ...entry, storePath: otherPath }));
    assert.equal(await strata(["import", "--quiet", tree], env), otherPath);
    // ...and --no-stat-cache reads the tree again.
    assert.equal(await strata(["import", "--quiet", "--no-stat-cache", tree], env), first);

    // A cached path the store does not have is not trusted.
    writeFileSync(
      entryFile,
      JSON.stringify({ ...entry, storePath: "/nix/store/00000000000000000000000000000000-tree" }),
    );
    assert.equal(await strata(["import", "--quiet", tree], env), first);

    // A corrupt entry is a miss, not a failure.
    writeFileSync(entryFile, "{not json");
    assert.equal(await strata(["import", "--quiet", tree], env), first);

    // A same-size change is seen (new ctime): a new store path.
    writeFileSync(join(tree, "a.txt"), "HELLO\n");
    const changed = await strata(["import", "--quiet", tree], env);
    assert.notEqual(changed, first);
    assert.equal(
      await strata(["import", "--quiet", "--no-stat-cache", tree], env),
      changed,
      "the changed tree's path is the one a full read gives",
    );
  });
});
