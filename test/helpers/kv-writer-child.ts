/**
 * Test-only child process for kv-durability.test.ts: writes directory
 * closures (putMultiple) and path infos to LMDB services in a loop until it
 * is killed, printing each item only after its write resolved:
 *
 *   ready
 *   dir <b3 root> <number of directories in its closure>
 *   pathinfo <hex store path digest> <b3 root it points to>
 *
 * Usage: node kv-writer-child.js <directories path> <path infos path>
 * Several loops run at once so that commits are shared between writers.
 */
import { randomBytes } from "node:crypto";
import { toHex, utf8 } from "../../src/castore/bytes.js";
import { formatB3, hashB3 } from "../../src/castore/digest.js";
import { LmdbDirectoryService } from "../../src/castore/directory/lmdb.js";
import { Directory } from "../../src/castore/directory.js";
import { directoryNode, fileNode, symlinkNode } from "../../src/castore/node.js";
import type { PathInfo } from "../../src/store/path-info.js";
import { LmdbPathInfoService } from "../../src/store/pathinfo/lmdb.js";
import { StorePath } from "../../src/store/store-path.js";

const [directoriesPath, pathInfosPath] = process.argv.slice(2);
if (directoriesPath === undefined || pathInfosPath === undefined) {
  throw new Error("usage: kv-writer-child.js <directories path> <path infos path>");
}

const directories = await LmdbDirectoryService.open({ path: directoriesPath });
const pathInfos = await LmdbPathInfoService.open({ path: pathInfosPath });
// Unique per run, so that a rerun never finds its items stored already.
const salt = randomBytes(8).toString("hex");

function print(line: string): void {
  // Pipes are synchronous on Linux: once written, the line reaches the parent
  // even if this process is killed right after.
  process.stdout.write(`${line}\n`);
}

function leafOf(tag: string): Directory {
  return Directory.fromEntries([
    { name: "data", node: fileNode(hashB3(utf8(tag)), tag.length) },
    { name: "link", node: symlinkNode(utf8(`../${tag}`)) },
  ]);
}

/** A three-level closure: `width` leaves under each of two middles, under one root. */
function closure(tag: string, width: number): Directory[] {
  const out: Directory[] = [];
  const middles: Directory[] = [];
  for (let m = 0; m < 2; m++) {
    const leaves = Array.from({ length: width }, (_, i) => leafOf(`${tag}-${m}-${i}`));
    out.push(...leaves);
    const middle = Directory.fromEntries(
      leaves.map((l, i) => ({ name: `l${i}`, node: directoryNode(l.digest(), l.size) })),
    );
    out.push(middle);
    middles.push(middle);
  }
  const root = Directory.fromEntries(
    middles.map((m, i) => ({ name: `m${i}`, node: directoryNode(m.digest(), m.size) })),
  );
  out.push(root);
  return out;
}

function pathInfoFor(tag: string, root: Directory): PathInfo {
  const digest = hashB3(utf8(`store path ${tag}`)).subarray(0, 20);
  return {
    storePath: StorePath.fromParts(digest, `item-${tag}`),
    node: directoryNode(root.digest(), root.size),
    references: [],
    narSize: 1000,
    narSha256: hashB3(utf8(`nar ${tag}`)),
    signatures: [],
  };
}

async function writer(id: number): Promise<never> {
  for (let i = 0; ; i++) {
    const tag = `${salt}-${id}-${i}`;
    const dirs = closure(tag, 1 + (i % 20));
    const putter = directories.putMultiple();
    for (const d of dirs) await putter.put(d);
    const root = await putter.close();
    print(`dir ${formatB3(root)} ${dirs.length}`);
    const info = pathInfoFor(tag, dirs[dirs.length - 1]!);
    await pathInfos.put(info);
    print(`pathinfo ${toHex(info.storePath.digest)} ${formatB3(root)}`);
  }
}

print("ready");
await Promise.all([0, 1, 2, 3].map(writer));
