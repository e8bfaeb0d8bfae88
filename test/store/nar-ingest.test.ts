import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { IntegrityError, InvalidInputError } from "../../src/errors.js";
import { ingestNar } from "../../src/store/import/nar-ingest.js";
import { castoreNarSource, castoreReaders } from "../../src/store/nar/castore-source.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { writeNar } from "../../src/store/nar/writer.js";
import { corpusDir, corpusItems, expectedItems } from "../helpers/corpus.js";
import { chunked, collectBytes } from "../helpers/nar-tree.js";

describe("ingestNar", () => {
  test("every corpus NAR round-trips through the castore byte for byte", async () => {
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    for (const item of corpusItems()) {
      const nar = await collectBytes(writeNar(fsNarSource(join(corpusDir(), item))));
      const e = expectedItems().get(item)!;
      const r = await ingestNar(
        chunked(nar, 65521),
        { blobs, directories },
        { smallFileBytes: 4096 },
      );
      assert.equal(r.narSize, e.narSize);
      assert.equal(Buffer.from(r.narSha256).toString("hex"), e.narSha256Hex);
      const again = await collectBytes(
        writeNar(castoreNarSource(r.node, castoreReaders(blobs, directories))),
      );
      assert.ok(again.equals(nar), item);
    }
  });

  test("an expected hash or size that does not match is an IntegrityError and commits no directories", async () => {
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    const nar = await collectBytes(writeNar(fsNarSource(join(corpusDir(), "mixed"))));
    await assert.rejects(
      ingestNar(
        chunked(nar, 4096),
        { blobs, directories },
        { expectedNarSha256: new Uint8Array(32) },
      ),
      (e: unknown) => e instanceof IntegrityError && /NAR hash mismatch/.test(e.message),
    );
    await assert.rejects(
      ingestNar(chunked(nar, 4096), { blobs, directories }, { expectedNarSize: nar.length + 1 }),
      (e: unknown) => e instanceof IntegrityError && /expected/.test(e.message),
    );
    // The root directory of that NAR was never committed.
    const good = await ingestNar(chunked(nar, 4096), {
      blobs: new MemoryBlobService(),
      directories: new MemoryDirectoryService(),
    });
    assert.equal(good.node.type, "directory");
    if (good.node.type === "directory")
      assert.equal(await directories.get(good.node.digest), undefined);
    const ok = await ingestNar(
      chunked(nar, 4096),
      { blobs, directories },
      {
        expectedNarSha256: createHash("sha256").update(nar).digest(),
        expectedNarSize: nar.length,
      },
    );
    assert.deepEqual(ok.node, good.node);
  });

  test("a corrupt NAR is rejected with its offset and commits nothing", async () => {
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    const nar = await collectBytes(writeNar(fsNarSource(join(corpusDir(), "mixed"))));
    const truncated = nar.subarray(0, nar.length - 16);
    await assert.rejects(
      ingestNar(chunked(truncated, 1000), { blobs, directories }),
      (e: unknown) => e instanceof InvalidInputError && /at byte \d+/.test(e.message),
    );
  });
});
