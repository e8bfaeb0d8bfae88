/**
 * Durability of the LMDB services under a real crash: a child process
 * writes directory closures and path infos and prints each one once its
 * write resolved; it is killed with SIGKILL mid-stream. Everything printed
 * must be there, intact, after reopening, and the stores must take new
 * writes. (A process kill, not a power cut: what fsync adds on top is not
 * testable here.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fromHex } from "../../src/castore/bytes.js";
import { formatB3, parseB3 } from "../../src/castore/digest.js";
import { LmdbDirectoryService } from "../../src/castore/directory/lmdb.js";
import { Directory } from "../../src/castore/directory.js";
import { LmdbPathInfoService } from "../../src/store/pathinfo/lmdb.js";
import { samplePathInfo } from "../conformance/pathinfo.js";
import { runAndKill } from "../helpers/kill-child.js";
import { tempDir } from "../helpers/tmp.js";

const CHILD = fileURLToPath(new URL("../helpers/kv-writer-child.js", import.meta.url));
const RUN_MS = 1000;

/** Runs the writer until RUN_MS after it said "ready", SIGKILLs it; returns the writes it acknowledged. */
async function runAndKillWriter(directories: string, pathInfos: string): Promise<string[]> {
  const lines = await runAndKill(CHILD, [directories, pathInfos], {
    ready: (out) => out.startsWith("ready\n"),
    runMs: RUN_MS,
  });
  return lines.slice(1);
}

test("LMDB services keep every acknowledged write across SIGKILL", async (t) => {
  const dir = tempDir(t);
  const directoriesPath = join(dir, "directories");
  const pathInfosPath = join(dir, "pathinfo");
  const lines = await runAndKillWriter(directoriesPath, pathInfosPath);

  const roots: { root: string; count: number }[] = [];
  const infos: { digest: string; root: string }[] = [];
  for (const line of lines) {
    const [kind, a, b] = line.split(" ");
    if (kind === "dir") roots.push({ root: a!, count: Number(b) });
    else if (kind === "pathinfo") infos.push({ digest: a!, root: b! });
    else assert.fail(`unexpected line from the writer: ${line}`);
  }
  assert.ok(roots.length >= 4, `the writer acknowledged only ${roots.length} closures`);
  t.diagnostic(`acknowledged before SIGKILL: ${roots.length} closures, ${infos.length} path infos`);

  {
    await using directories = await LmdbDirectoryService.open({ path: directoriesPath });
    for (const { root, count } of roots) {
      const got: Directory[] = [];
      for await (const d of directories.getRecursive(parseB3(root))) got.push(d);
      assert.equal(got.length, count, `closure of ${root}`);
      assert.equal(formatB3(got[0]!.digest()), root);
    }
    await using pathInfos = await LmdbPathInfoService.open({ path: pathInfosPath });
    for (const { digest, root } of infos) {
      const info = await pathInfos.get(fromHex(digest)!);
      assert.ok(info !== undefined, `path info ${digest} is missing`);
      assert.equal(info.node.type, "directory");
      if (info.node.type === "directory") assert.equal(formatB3(info.node.digest), root);
    }

    // The stores take new writes after the crash.
    const fresh = Directory.fromEntries([
      { name: "after-crash", node: { type: "symlink", target: new Uint8Array([0x78]) } },
    ]);
    await directories.put(fresh);
    assert.ok((await directories.get(fresh.digest())) !== undefined);
    const info = samplePathInfo(424242);
    await pathInfos.put(info);
    assert.ok((await pathInfos.get(info.storePath.digest)) !== undefined);
  }
});
