/**
 * The PathInfoService conformance suite: every backend, combinator and
 * client runs it (ARCHITECTURE §9, STYLE 2). It uses only the interface,
 * checks errors by `code`, and opens a fresh service per case.
 */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import { utf8 } from "../../src/castore/bytes.js";
import { hashB3 } from "../../src/castore/digest.js";
import { directoryNode, fileNode, symlinkNode } from "../../src/castore/node.js";
import { type PathInfo, pathInfosEqual } from "../../src/store/path-info.js";
import type { PathInfoService } from "../../src/store/pathinfo/service.js";
import { StorePath } from "../../src/store/store-path.js";
import { collect } from "../helpers/collect.js";
import { withCode } from "../helpers/error-matchers.js";
import { openForCase, type ServiceUnderTest } from "./service-under-test.js";

export type PathInfoServiceUnderTest = ServiceUnderTest<PathInfoService>;

export interface PathInfoServiceCapabilities {
  /** Whether `list` enumerates what was put (default true; a binary cache cannot list). */
  list?: boolean;
  /** Entries in the listing case (default 1,000). */
  listSize?: number;
}

/** A deterministic 20-byte store path digest for `i`. */
export function storePathDigest(i: number, salt = 0x5a): Uint8Array {
  const d = new Uint8Array(20).fill(salt);
  new DataView(d.buffer).setUint32(0, i);
  return d;
}

/** A valid PathInfo with every optional field set, unique per `i`. */
export function samplePathInfo(i: number): PathInfo {
  const storePath = StorePath.fromParts(storePathDigest(i), `pkg-${i}`);
  return {
    storePath,
    node: directoryNode(hashB3(utf8(`root ${i}`)), 2 + (i % 7)),
    references: [storePath, StorePath.fromParts(storePathDigest(i, 0x17), `dep-${i}`)],
    narSize: 1000 + i,
    narSha256: new Uint8Array(32).fill(i & 0xff),
    signatures: [
      { name: "cache.example.org-1", data: new Uint8Array(64).fill(0x42) },
      { name: "other-key", data: new Uint8Array(64).fill(i & 0xff) },
    ],
    deriver: StorePath.fromParts(storePathDigest(i, 0x99), `pkg-${i}.drv`),
    ca: { method: "nar", algo: "sha256", digest: new Uint8Array(32).fill(0x33) },
  };
}

/** The same store path, minimal metadata. */
function minimalPathInfo(i: number): PathInfo {
  return {
    storePath: StorePath.fromParts(storePathDigest(i), `pkg-${i}`),
    node: symlinkNode(utf8("/nix/store/elsewhere")),
    references: [],
    narSize: 120,
    narSha256: new Uint8Array(32).fill(0xee),
    signatures: [],
  };
}

/** A StorePath built around its constructor (for invalid inputs). */
function forgedStorePath(digest: Uint8Array, name: string): StorePath {
  const p = Object.create(StorePath.prototype) as { digest: Uint8Array; name: string };
  p.digest = digest;
  p.name = name;
  return p as unknown as StorePath;
}

function assertSameInfo(actual: PathInfo | undefined, expected: PathInfo): void {
  assert.ok(actual !== undefined, `${expected.storePath.absolute} is missing`);
  assert.ok(
    pathInfosEqual(actual, expected),
    `${expected.storePath.absolute} differs: ${JSON.stringify(actual)}`,
  );
}

export function pathInfoServiceConformance(
  name: string,
  open: () => Promise<PathInfoServiceUnderTest>,
  capabilities: PathInfoServiceCapabilities = {},
): void {
  const canList = capabilities.list ?? true;
  const listSize = capabilities.listSize ?? 1000;

  const setup = (t: TestContext): Promise<PathInfoService> => openForCase(t, open);

  describe(`PathInfoService conformance: ${name}`, () => {
    test("put/get round trip (references, signatures, deriver, ca)", async (t) => {
      const s = await setup(t);
      const info = samplePathInfo(1);
      assertSameInfo(await s.put(info), info);
      assertSameInfo(await s.get(info.storePath.digest), info);
      const minimal = minimalPathInfo(2);
      assertSameInfo(await s.put(minimal), minimal);
      assertSameInfo(await s.get(minimal.storePath.digest), minimal);
      const withFile = { ...minimalPathInfo(3), node: fileNode(hashB3(utf8("f")), 3, true) };
      await s.put(withFile);
      assertSameInfo(await s.get(withFile.storePath.digest), withFile);
    });

    test("a second put for the same store path replaces the first", async (t) => {
      const s = await setup(t);
      const first = samplePathInfo(7);
      await s.put(first);
      const second: PathInfo = {
        ...first,
        narSize: first.narSize + 1,
        signatures: [{ name: "new-key", data: new Uint8Array(64).fill(1) }],
      };
      assertSameInfo(await s.put(second), second);
      assertSameInfo(await s.get(first.storePath.digest), second);
      if (canList) assert.equal((await collect(s.list())).length, 1);
    });

    test("get of an unknown store path is undefined", async (t) => {
      const s = await setup(t);
      await s.put(samplePathInfo(1));
      assert.equal(await s.get(storePathDigest(2)), undefined);
    });

    test("get with a digest that is not 20 bytes is InvalidInput", async (t) => {
      const s = await setup(t);
      await assert.rejects(s.get(new Uint8Array(19)), withCode("InvalidInput", /20/));
      await assert.rejects(s.get(new Uint8Array(32)), withCode("InvalidInput", /20/));
    });

    test("invalid path infos are rejected and not stored", async (t) => {
      const s = await setup(t);
      const base = samplePathInfo(5);
      const digest = base.storePath.digest;
      const cases: [string, PathInfo, RegExp][] = [
        ["nar_sha256 of 31 bytes", { ...base, narSha256: new Uint8Array(31) }, /narSha256|32/],
        ["NAR size 0", { ...base, narSize: 0 }, /narSize|nar_size/],
        ["NAR size not an integer", { ...base, narSize: 1.5 }, /narSize/],
        [
          "a reference listed twice",
          { ...base, references: [base.storePath, base.storePath] },
          /twice/,
        ],
        [
          "a reference whose digest does not fit its name",
          { ...base, references: [forgedStorePath(new Uint8Array(19), "short")] },
          /reference/,
        ],
        [
          "a store path name with '/'",
          { ...base, storePath: forgedStorePath(digest, "a/b") },
          /not allowed|name/,
        ],
        [
          "a signature of 63 bytes",
          { ...base, signatures: [{ name: "k", data: new Uint8Array(63) }] },
          /signature/,
        ],
        [
          "a deriver without .drv",
          { ...base, deriver: StorePath.fromParts(storePathDigest(9), "pkg") },
          /deriver/,
        ],
        [
          "a content address of the wrong length",
          { ...base, ca: { method: "nar", algo: "sha256", digest: new Uint8Array(20) } },
          /content address/,
        ],
        [
          "a symlink node with an empty target",
          { ...base, node: symlinkNode(new Uint8Array()) },
          /target/,
        ],
        [
          "a directory node with a negative size",
          { ...base, node: directoryNode(hashB3(utf8("x")), -1) },
          /size/,
        ],
      ];
      for (const [what, info, pattern] of cases) {
        await assert.rejects(s.put(info), withCode("InvalidInput", pattern), what);
        assert.equal(await s.get(digest), undefined, `${what}: nothing stored`);
      }
      if (canList) assert.deepEqual(await collect(s.list()), []);
    });

    if (canList) {
      test(`list streams everything put (${listSize} entries)`, async (t) => {
        const s = await setup(t);
        assert.deepEqual(await collect(s.list()), [], "empty store, empty listing");
        const expected = new Map<string, PathInfo>();
        for (let i = 0; i < listSize; i++) {
          const info = samplePathInfo(i);
          expected.set(info.storePath.basename, info);
        }
        await Promise.all([...expected.values()].map((info) => s.put(info)));
        const got = await collect(s.list());
        assert.equal(got.length, listSize);
        for (const info of got) {
          const want = expected.get(info.storePath.basename);
          assert.ok(want !== undefined, `unexpected ${info.storePath.absolute}`);
          assertSameInfo(info, want);
          expected.delete(info.storePath.basename);
        }
        assert.equal(expected.size, 0);
      });
    }

    test("every method honours an aborted signal", async (t) => {
      const s = await setup(t);
      const info = samplePathInfo(1);
      await s.put(info);
      const signal = AbortSignal.abort(new Error("test abort"));
      await assert.rejects(s.get(info.storePath.digest, { signal }), withCode("Aborted"));
      const other = samplePathInfo(2);
      await assert.rejects(s.put(other, { signal }), withCode("Aborted"));
      assert.equal(await s.get(other.storePath.digest), undefined);
      await assert.rejects(collect(s.list({ signal })), withCode("Aborted"));
    });

    if (canList) {
      test("a signal firing during list stops it between items", async (t) => {
        const s = await setup(t);
        for (let i = 0; i < 3; i++) await s.put(samplePathInfo(i));
        const c = new AbortController();
        const it = s.list({ signal: c.signal })[Symbol.asyncIterator]();
        assert.equal((await it.next()).done, false);
        c.abort();
        await assert.rejects(it.next(), withCode("Aborted"));
      });
    }

    test("calls after close are rejected; close is idempotent", async (t) => {
      const s = await setup(t);
      const info = samplePathInfo(1);
      await s.put(info);
      await s.close();
      await s.close();
      await assert.rejects(s.get(info.storePath.digest), withCode("Storage"));
      await assert.rejects(s.put(samplePathInfo(2)), withCode("Storage"));
      await assert.rejects(collect(s.list()), withCode("Storage"));
    });

    if (canList) {
      test("close during a listing ends it with a Storage error", async (t) => {
        const s = await setup(t);
        for (let i = 0; i < 3; i++) await s.put(samplePathInfo(i));
        const it = s.list()[Symbol.asyncIterator]();
        assert.equal((await it.next()).done, false);
        await s.close();
        await assert.rejects(it.next(), withCode("Storage"));
      });
    }

    test("Symbol.asyncDispose closes the service", async (t) => {
      const s = await setup(t);
      await s[Symbol.asyncDispose]();
      await assert.rejects(s.get(storePathDigest(1)), withCode("Storage"));
    });
  });
}
