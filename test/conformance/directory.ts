/**
 * The DirectoryService conformance suite: every backend, combinator and
 * client runs it (ARCHITECTURE §9, STYLE 2). It uses only the interface,
 * checks errors by `code` (so that clients which map wire errors back to
 * codes pass too) and opens a fresh service per case.
 *
 * Contract details this suite pins down beyond the interface's doc comments:
 * - `putMultiple()` itself never throws; a putter of a closed service, or
 *   one whose signal fired, rejects in `put`/`close`;
 * - getRecursive is checked for the breadth-first property (root first,
 *   every directory after all directories nearer to the root, each once),
 *   not for one order within a level.
 */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import { utf8 } from "../../src/castore/bytes.js";
import type { B3Digest } from "../../src/castore/digest.js";
import { b3Digest, digestKey, formatB3, hashB3 } from "../../src/castore/digest.js";
import type { DirectoryPutter, DirectoryService } from "../../src/castore/directory/service.js";
import { Directory } from "../../src/castore/directory.js";
import {
  type DirectoryNode,
  directoryNode,
  fileNode,
  symlinkNode,
} from "../../src/castore/node.js";
import { collect } from "../helpers/collect.js";
import { withCode } from "../helpers/error-matchers.js";
import { openForCase, type ServiceUnderTest } from "./service-under-test.js";

export type DirectoryServiceUnderTest = ServiceUnderTest<DirectoryService>;

export interface DirectoryServiceCapabilities {
  /** Directories in the large-closure case (default 5,000). */
  largeClosureSize?: number;
}

/** A leaf with one entry of every non-directory kind, unique per `tag`. */
export function leaf(tag: string): Directory {
  return Directory.fromEntries([
    { name: "file", node: fileNode(hashB3(utf8(`file ${tag}`)), 5 + tag.length) },
    { name: "run", node: fileNode(hashB3(utf8(`exe ${tag}`)), 7, true) },
    { name: "link", node: symlinkNode(utf8(`../target/${tag}`)) },
  ]);
}

/** A directory holding the given children (as `d0`, `d1`, ...) and a file unique per `tag`. */
export function parent(tag: string, children: readonly Directory[]): Directory {
  return Directory.fromEntries([
    { name: `tag-${tag}`, node: fileNode(hashB3(utf8(tag)), 1) },
    ...children.map((c, i) => ({ name: `d${i}`, node: nodeOf(c) })),
  ]);
}

export function nodeOf(d: Directory): DirectoryNode {
  return directoryNode(d.digest(), d.size);
}

function assertSameDirectory(actual: Directory | undefined, expected: Directory): void {
  assert.ok(actual !== undefined, `directory ${formatB3(expected.digest())} is missing`);
  assert.equal(formatB3(actual.digest()), formatB3(expected.digest()));
  assert.deepEqual(actual.encode(), expected.encode());
}

async function upload(service: DirectoryService, dirs: readonly Directory[]): Promise<B3Digest> {
  const putter = service.putMultiple();
  for (const d of dirs) await putter.put(d);
  return putter.close();
}

/**
 * Sends `dirs` and expects the upload to be rejected with InvalidInput,
 * early in `put` or at `close` (both are allowed), then checks that none of
 * `invisible` became visible.
 */
async function uploadRejected(
  service: DirectoryService,
  dirs: readonly Directory[],
  pattern: RegExp,
  invisible: readonly Directory[] = dirs,
): Promise<void> {
  const putter = service.putMultiple();
  let rejected = false;
  for (const d of dirs) {
    try {
      await putter.put(d);
    } catch (err) {
      withCode("InvalidInput", pattern)(err);
      rejected = true;
      break;
    }
  }
  if (!rejected) await assert.rejects(putter.close(), withCode("InvalidInput", pattern));
  else await putter.abort();
  for (const d of invisible) {
    assert.equal(
      await service.get(d.digest()),
      undefined,
      `${formatB3(d.digest())} is visible after a rejected upload`,
    );
  }
}

/** Depth of each directory of the closure (shortest distance from the root), by digestKey. */
function depths(root: Directory, all: readonly Directory[]): Map<string, number> {
  const byKey = new Map(all.map((d) => [digestKey(d.digest()), d]));
  const depth = new Map<string, number>([[digestKey(root.digest()), 0]]);
  const queue = [root];
  for (let i = 0; i < queue.length; i++) {
    const d = queue[i]!;
    for (const { node } of d.directories()) {
      const k = digestKey(node.digest);
      if (depth.has(k)) continue;
      depth.set(k, depth.get(digestKey(d.digest()))! + 1);
      queue.push(byKey.get(k)!);
    }
  }
  return depth;
}

function assertBreadthFirst(got: readonly Directory[], root: Directory, all: Directory[]): void {
  const depth = depths(root, all);
  assert.equal(got.length, depth.size, "each directory of the closure exactly once");
  assert.equal(formatB3(got[0]!.digest()), formatB3(root.digest()), "root first");
  const seen = new Set<string>();
  let last = 0;
  for (const d of got) {
    const k = digestKey(d.digest());
    assert.ok(!seen.has(k), `${formatB3(d.digest())} yielded twice`);
    seen.add(k);
    const dep = depth.get(k);
    assert.ok(dep !== undefined, `${formatB3(d.digest())} is not in the closure`);
    assert.ok(dep >= last, `breadth-first: depth ${dep} after depth ${last}`);
    last = dep;
  }
}

export function directoryServiceConformance(
  name: string,
  open: () => Promise<DirectoryServiceUnderTest>,
  capabilities: DirectoryServiceCapabilities = {},
): void {
  const largeClosureSize = capabilities.largeClosureSize ?? 5000;

  const setup = (t: TestContext): Promise<DirectoryService> => openForCase(t, open);

  describe(`DirectoryService conformance: ${name}`, () => {
    test("put/get round trip of a directory with every entry kind", async (t) => {
      const s = await setup(t);
      const child = leaf("child");
      const dir = Directory.fromEntries([
        { name: "a-file", node: fileNode(hashB3(utf8("a")), 1) },
        { name: "b-exe", node: fileNode(hashB3(utf8("b")), 1234, true) },
        { name: "c-link", node: symlinkNode(utf8("/nix/store/somewhere")) },
        { name: "d-dir", node: nodeOf(child) },
        { name: new Uint8Array([0xff, 0xfe]), node: fileNode(hashB3(utf8("not utf-8")), 0) },
      ]);
      assert.equal(formatB3(await s.put(child)), formatB3(child.digest()));
      assert.equal(formatB3(await s.put(dir)), formatB3(dir.digest()));
      assertSameDirectory(await s.get(dir.digest()), dir);
      assertSameDirectory(await s.get(child.digest()), child);
      // Putting the same directory again is fine and changes nothing.
      assert.equal(formatB3(await s.put(dir)), formatB3(dir.digest()));
      assertSameDirectory(await s.get(dir.digest()), dir);
    });

    test("the empty directory", async (t) => {
      const s = await setup(t);
      const digest = await s.put(Directory.EMPTY);
      assert.equal(formatB3(digest), "b3:rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=");
      const got = await s.get(digest);
      assertSameDirectory(got, Directory.EMPTY);
      assert.equal(got?.size, 0);
      const outer = parent("outer", [Directory.EMPTY]);
      await s.put(outer);
      assert.equal((await collect(s.getRecursive(outer.digest()))).length, 2);
    });

    test("get of an unknown digest is undefined", async (t) => {
      const s = await setup(t);
      assert.equal(await s.get(b3Digest(new Uint8Array(32).fill(0xab))), undefined);
    });

    test("put of a directory whose child is not stored is rejected", async (t) => {
      const s = await setup(t);
      const child = leaf("missing");
      const dir = parent("p", [child]);
      await assert.rejects(s.put(dir), withCode("InvalidInput", /d0/));
      assert.equal(await s.get(dir.digest()), undefined);
    });

    test("put of a directory with a wrong child size is rejected", async (t) => {
      const s = await setup(t);
      const child = leaf("c");
      await s.put(child);
      const dir = Directory.fromEntries([
        { name: "sub", node: directoryNode(child.digest(), child.size + 1) },
      ]);
      await assert.rejects(s.put(dir), withCode("InvalidInput", /size/));
      assert.equal(await s.get(dir.digest()), undefined);
    });

    test("putMultiple: a three-level tree", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = parent("b", [a]);
      const c = parent("c", [b]);
      assert.equal(formatB3(await upload(s, [a, b, c])), formatB3(c.digest()));
      for (const d of [a, b, c]) assertSameDirectory(await s.get(d.digest()), d);
      const got = await collect(s.getRecursive(c.digest()));
      assert.deepEqual(
        got.map((d) => formatB3(d.digest())),
        [c, b, a].map((d) => formatB3(d.digest())),
      );
      // The closure of an inner directory is a closure too.
      assert.equal((await collect(s.getRecursive(b.digest()))).length, 2);
    });

    test("putMultiple: a diamond (two parents share a child, sent once)", async (t) => {
      const s = await setup(t);
      const shared = leaf("shared");
      const left = parent("left", [shared]);
      const right = parent("right", [shared]);
      const top = parent("top", [left, right]);
      assert.equal(formatB3(await upload(s, [shared, left, right, top])), formatB3(top.digest()));
      const got = await collect(s.getRecursive(top.digest()));
      assertBreadthFirst(got, top, [shared, left, right, top]);
      assert.equal(got.filter((d) => formatB3(d.digest()) === formatB3(shared.digest())).length, 1);
    });

    test("putMultiple: a single directory is its own root", async (t) => {
      const s = await setup(t);
      const a = leaf("alone");
      assert.equal(formatB3(await upload(s, [a])), formatB3(a.digest()));
      assertSameDirectory(await s.get(a.digest()), a);
    });

    test("putMultiple rejects a missing child; nothing of the upload is stored", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const missing = leaf("missing");
      const b = parent("b", [a, missing]);
      await uploadRejected(s, [a, b], /neither sent|not stored|missing/, [a, b]);
    });

    test("putMultiple rejects a wrong child size; nothing of the upload is stored", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = Directory.fromEntries([
        { name: "sub", node: directoryNode(a.digest(), a.size + 3) },
      ]);
      await uploadRejected(s, [a, b], /size/);
    });

    test("putMultiple rejects two roots; nothing of the upload is stored", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = parent("b", [a]);
      const stray = leaf("stray");
      await uploadRejected(s, [a, stray, b], /root/);
      // Also when the stray directory comes last.
      await uploadRejected(s, [a, b, stray], /root/);
    });

    test("putMultiple rejects an empty upload", async (t) => {
      const s = await setup(t);
      await assert.rejects(s.putMultiple().close(), withCode("InvalidInput"));
    });

    test("putMultiple: abort() stores nothing and is idempotent", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = parent("b", [a]);
      const putter = s.putMultiple();
      await putter.put(a);
      await putter.put(b);
      await putter.abort();
      await putter.abort(new Error("again"));
      assert.equal(await s.get(a.digest()), undefined);
      assert.equal(await s.get(b.digest()), undefined);
    });

    test("putMultiple: an abandoned putter stores nothing", async (t) => {
      const s = await setup(t);
      const a = leaf("abandoned");
      const putter: DirectoryPutter = s.putMultiple();
      await putter.put(a);
      assert.equal(await s.get(a.digest()), undefined);
    });

    test("putMultiple: a child stored by an earlier upload need not be sent again", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = parent("b", [a]);
      await upload(s, [a, b]);
      const c = parent("c", [b, leaf("new")]);
      const root = await upload(s, [leaf("new"), c]);
      assert.equal(formatB3(root), formatB3(c.digest()));
      const got = await collect(s.getRecursive(c.digest()));
      assertBreadthFirst(got, c, [a, b, leaf("new"), c]);
      // ... and the stored child's size is checked too.
      const wrong = Directory.fromEntries([
        { name: "b", node: directoryNode(b.digest(), b.size - 1) },
      ]);
      await uploadRejected(s, [wrong], /size/);
      // Single put: children stored before are fine.
      const d = parent("d", [a, b]);
      assert.equal(formatB3(await s.put(d)), formatB3(d.digest()));
    });

    test("putMultiple: a directory sent twice is stored once", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = parent("b", [a]);
      const root = await upload(s, [a, a, b]);
      assert.equal(formatB3(root), formatB3(b.digest()));
      assert.equal((await collect(s.getRecursive(b.digest()))).length, 2);
    });

    test("getRecursive: root first, breadth-first, each once, on a wide and deep tree", async (t) => {
      const s = await setup(t);
      const all: Directory[] = [];
      const shared = leaf("shared");
      all.push(shared);
      // A chain six deep whose bottom shares a leaf with a wide level.
      let chain = parent("chain-0", [shared]);
      all.push(chain);
      for (let i = 1; i < 6; i++) {
        chain = parent(`chain-${i}`, [chain]);
        all.push(chain);
      }
      const wide: Directory[] = [];
      for (let i = 0; i < 12; i++) {
        const kids = [leaf(`w${i}-x`), leaf(`w${i}-y`)];
        all.push(...kids);
        const w = parent(`wide-${i}`, i % 4 === 0 ? [...kids, shared] : kids);
        all.push(w);
        wide.push(w);
      }
      const root = parent("root", [...wide, chain]);
      all.push(root);
      await upload(s, all);
      const got = await collect(s.getRecursive(root.digest()));
      assertBreadthFirst(got, root, all);
    });

    test("getRecursive of an unknown root yields nothing", async (t) => {
      const s = await setup(t);
      assert.deepEqual(await collect(s.getRecursive(leaf("nowhere").digest())), []);
    });

    test(`putMultiple: a large closure (${largeClosureSize} directories) in one upload`, async (t) => {
      const s = await setup(t);
      const perMid = 50;
      const mids = Math.max(1, Math.floor((largeClosureSize - 1) / (perMid + 1)));
      const leaves = largeClosureSize - 1 - mids;
      const dirs: Directory[] = [];
      const midDirs: Directory[] = [];
      for (let m = 0; m < mids; m++) {
        const kids: Directory[] = [];
        for (let i = m; i < leaves; i += mids) kids.push(leaf(`large-${i}`));
        dirs.push(...kids);
        const mid = parent(`mid-${m}`, kids);
        dirs.push(mid);
        midDirs.push(mid);
      }
      const root = parent("large-root", midDirs);
      dirs.push(root);
      assert.equal(dirs.length, largeClosureSize);
      assert.equal(formatB3(await upload(s, dirs)), formatB3(root.digest()));
      const got = await collect(s.getRecursive(root.digest()));
      assert.equal(got.length, largeClosureSize);
      assertSameDirectory(await s.get(dirs[0]!.digest()), dirs[0]!);
    });

    test("every method honours an aborted signal", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      await s.put(a);
      const signal = AbortSignal.abort(new Error("test abort"));
      await assert.rejects(s.get(a.digest(), { signal }), withCode("Aborted"));
      await assert.rejects(s.put(leaf("b"), { signal }), withCode("Aborted"));
      assert.equal(await s.get(leaf("b").digest()), undefined);
      await assert.rejects(collect(s.getRecursive(a.digest(), { signal })), withCode("Aborted"));
      // The upload's signal ...
      const p1 = s.putMultiple({ signal });
      await assert.rejects(p1.put(leaf("c")), withCode("Aborted"));
      await assert.rejects(p1.close(), withCode("Aborted"));
      // ... and each call's.
      const p2 = s.putMultiple();
      await assert.rejects(p2.put(leaf("c"), { signal }), withCode("Aborted"));
      await p2.put(leaf("c"));
      await assert.rejects(p2.close({ signal }), withCode("Aborted"));
      await p2.abort();
      assert.equal(await s.get(leaf("c").digest()), undefined);
    });

    test("a signal firing during getRecursive stops it between items", async (t) => {
      const s = await setup(t);
      const kids = [leaf("x"), leaf("y"), leaf("z")];
      const root = parent("root", kids);
      await upload(s, [...kids, root]);
      const c = new AbortController();
      const it = s.getRecursive(root.digest(), { signal: c.signal })[Symbol.asyncIterator]();
      const first = await it.next();
      assert.equal(first.done, false);
      c.abort();
      await assert.rejects(it.next(), withCode("Aborted"));
    });

    test("a signal firing during putMultiple discards the upload", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      const b = parent("b", [a]);
      const c = new AbortController();
      const putter = s.putMultiple({ signal: c.signal });
      await putter.put(a);
      c.abort();
      await assert.rejects(putter.put(b), withCode("Aborted"));
      await assert.rejects(putter.close(), withCode("Aborted"));
      assert.equal(await s.get(a.digest()), undefined);
    });

    test("calls after close are rejected; close is idempotent", async (t) => {
      const s = await setup(t);
      const a = leaf("a");
      await s.put(a);
      const pending = s.putMultiple();
      await pending.put(leaf("pending"));
      await s.close();
      await s.close();
      await assert.rejects(s.get(a.digest()), withCode("Storage"));
      await assert.rejects(s.put(leaf("b")), withCode("Storage"));
      await assert.rejects(collect(s.getRecursive(a.digest())), withCode("Storage"));
      const putter = s.putMultiple();
      await assert.rejects(putter.put(leaf("c")), withCode("Storage"));
      await assert.rejects(putter.close(), withCode("Storage"));
      await assert.rejects(pending.close(), withCode("Storage"));
    });

    test("close during getRecursive ends it with a Storage error", async (t) => {
      const s = await setup(t);
      const kids = [leaf("x"), leaf("y")];
      const root = parent("root", kids);
      await upload(s, [...kids, root]);
      const it = s.getRecursive(root.digest())[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false);
      await s.close();
      await assert.rejects(it.next(), withCode("Storage"));
    });

    test("Symbol.asyncDispose closes the service", async (t) => {
      const s = await setup(t);
      await s[Symbol.asyncDispose]();
      await assert.rejects(s.get(leaf("a").digest()), withCode("Storage"));
    });
  });
}
