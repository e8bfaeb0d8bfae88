import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { formatContentAddress } from "../../src/store/content-address.js";
import { importPath } from "../../src/store/import/fs-import.js";
import { castoreNarSource, castoreReaders } from "../../src/store/nar/castore-source.js";
import { hashNarStream } from "../../src/store/nar/hash.js";
import { writeNar } from "../../src/store/nar/writer.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";
import { corpusDir, corpusItems, expectedItems } from "../helpers/corpus.js";

function services(): {
  blobs: MemoryBlobService;
  directories: MemoryDirectoryService;
  pathInfos: MemoryPathInfoService;
} {
  return {
    blobs: new MemoryBlobService(),
    directories: new MemoryDirectoryService(),
    pathInfos: new MemoryPathInfoService(),
  };
}

describe("importPath", () => {
  test("every corpus item gets Nix's store path, NAR hash and size, and renders back to the same NAR", async () => {
    const s = services();
    const expected = expectedItems();
    for (const item of corpusItems()) {
      const e = expected.get(item)!;
      const info = await importPath(join(corpusDir(), item), s);
      assert.equal(info.storePath.absolute, e.storePath, item);
      assert.equal(Buffer.from(info.narSha256).toString("hex"), e.narSha256Hex, item);
      assert.equal(info.narSize, e.narSize, item);
      assert.equal(formatContentAddress(info.ca!), e.ca, item);
      const stored = await s.pathInfos.get(info.storePath.digest);
      assert.ok(stored, `${item}: PathInfo stored`);
      const again = await hashNarStream(
        writeNar(castoreNarSource(stored.node, castoreReaders(s.blobs, s.directories))),
      );
      assert.equal(
        Buffer.from(again.sha256).toString("hex"),
        e.narSha256Hex,
        `${item}: rendered from the store`,
      );
    }
  });

  test("re-import writes no new blobs", async () => {
    const s = services();
    const path = join(corpusDir(), "mixed");
    const first = await importPath(path, s);
    let writes = 0;
    const orig = s.blobs.openWrite.bind(s.blobs);
    s.blobs.openWrite = (o) => {
      writes++;
      return orig(o);
    };
    const second = await importPath(path, s);
    assert.equal(second.storePath.absolute, first.storePath.absolute);
    assert.equal(writes, 0);
  });

  test("small-file threshold 0 streams every file through a writer (two-pass path)", async () => {
    const s = services();
    const item = "sizes";
    const info = await importPath(join(corpusDir(), item), s, { smallFileBytes: 0 });
    assert.equal(info.storePath.absolute, expectedItems().get(item)!.storePath);
  });
});
