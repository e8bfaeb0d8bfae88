/** Ingestion of a tree on disk through the worker thread (fs-ingest.ts). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { ingestPath } from "../../src/store/import/fs-ingest.js";
import { ingestSource } from "../../src/store/import/ingest-source.js";
import { castoreNarSource, castoreReaders } from "../../src/store/nar/castore-source.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { hashNarStream } from "../../src/store/nar/hash.js";
import { writeNar } from "../../src/store/nar/writer.js";
import { corpusDir } from "../helpers/corpus.js";
import { tempDir } from "../helpers/tmp.js";

describe("ingestPath (worker thread reads, this thread stores)", () => {
  test("the whole corpus gives the same root, NAR hash and size as the in-process pipeline", async (t) => {
    const root = corpusDir();
    const reference = await ingestSource(fsNarSource(root), {
      blobs: new MemoryBlobService(),
      directories: new MemoryDirectoryService(),
    });
    await using blobs = await FsObjectStoreBlobService.open({ root: tempDir(t) });
    const directories = new MemoryDirectoryService();
    const got = await ingestPath(root, { blobs, directories });
    assert.deepEqual(got, reference);
  });

  test("a re-import stores nothing: small blobs are found, large files are not read twice", async (t) => {
    const root = corpusDir();
    await using blobs = await FsObjectStoreBlobService.open({ root: tempDir(t) });
    const directories = new MemoryDirectoryService();
    const first = await ingestPath(root, { blobs, directories });
    let writers = 0;
    const openWrite = blobs.openWrite.bind(blobs);
    blobs.openWrite = (o) => {
      writers++;
      return openWrite(o);
    };
    const files: number[] = [];
    const again = await ingestPath(root, { blobs, directories }, { onFile: (n) => files.push(n) });
    assert.deepEqual(again, first);
    assert.equal(writers, 0);
    assert.ok(
      files.some((n) => n > 1 << 20),
      "the corpus has files larger than a ring slot",
    );
  });

  test("smallFileBytes: files above it are stored from a second read, not from the ring", async (t) => {
    const root = corpusDir();
    await using blobs = await FsObjectStoreBlobService.open({ root: tempDir(t) });
    let whole = 0;
    const putBytes = blobs.putBytes.bind(blobs);
    blobs.putBytes = (data, o) => {
      if (data.length > 0) whole++;
      return putBytes(data, o);
    };
    const directories = new MemoryDirectoryService();
    const got = await ingestPath(root, { blobs, directories }, { smallFileBytes: 0 });
    assert.equal(whole, 0, "no non-empty file went through putBytes");
    const rendered = await hashNarStream(
      writeNar(castoreNarSource(got.node, castoreReaders(blobs, directories))),
    );
    assert.deepEqual(rendered.sha256, got.narSha256);
  });

  test("a missing blob of a large file is stored from a second read", async (t) => {
    const root = corpusDir();
    const memory = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    const first = await ingestPath(root, { blobs: memory, directories });
    await using blobs = await FsObjectStoreBlobService.open({ root: tempDir(t) });
    const again = await ingestPath(root, { blobs, directories });
    assert.deepEqual(again, first);
    const rendered = await hashNarStream(
      writeNar(castoreNarSource(again.node, castoreReaders(blobs, directories))),
    );
    assert.deepEqual(rendered.sha256, first.narSha256, "every blob is in the new store");
  });
});
