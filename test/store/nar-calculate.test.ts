import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import type { BlobService } from "../../src/castore/blob/service.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { ingestSource } from "../../src/store/import/ingest-source.js";
import { NarCalculator } from "../../src/store/nar/calculate.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { corpusDir, corpusItems, expectedItems } from "../helpers/corpus.js";

/** Delays each openRead by `ms` (a far store); counts calls and the most in flight at once. */
function slowBlobs(
  inner: BlobService,
  ms: number,
): BlobService & { opens: number; maxInFlight: number } {
  const wrapped = Object.create(inner) as BlobService & { opens: number; maxInFlight: number };
  wrapped.opens = 0;
  wrapped.maxInFlight = 0;
  let inFlight = 0;
  wrapped.openRead = async (d, o) => {
    wrapped.opens++;
    wrapped.maxInFlight = Math.max(wrapped.maxInFlight, ++inFlight);
    await new Promise((r) => setTimeout(r, ms));
    inFlight--;
    return inner.openRead(d, o);
  };
  return wrapped;
}

describe("NarCalculator", () => {
  test("size and SHA-256 match Nix for every corpus item, with and without read-ahead", async () => {
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    for (const item of corpusItems()) {
      const e = expectedItems().get(item)!;
      const { node } = await ingestSource(fsNarSource(join(corpusDir(), item)), {
        blobs,
        directories,
      });
      for (const windowBytes of [0, 1, 64 * 1024 * 1024]) {
        const calc = new NarCalculator(blobs, directories, { windowBytes });
        const r = await calc.calculate(node);
        assert.equal(r.size, e.narSize, `${item} window ${windowBytes}`);
        assert.equal(
          Buffer.from(r.sha256).toString("hex"),
          e.narSha256Hex,
          `${item} window ${windowBytes}`,
        );
      }
    }
  });

  test("read-ahead overlaps round trips to a slow store; results are cached per root", async () => {
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    const { node } = await ingestSource(fsNarSource(join(corpusDir(), "modes")), {
      blobs,
      directories,
    });
    const sequential = slowBlobs(blobs, 5);
    await new NarCalculator(sequential, directories, { windowBytes: 0 }).calculate(node);
    assert.equal(sequential.maxInFlight, 1);
    const slow = slowBlobs(blobs, 5);
    const calc = new NarCalculator(slow, directories, { windowBytes: 1 << 20 });
    const first = await calc.calculate(node);
    // All 12 small files fit the window: their round trips overlap.
    assert.ok(slow.maxInFlight >= 10, `at most ${slow.maxInFlight} reads in flight`);
    const opens = slow.opens;
    assert.deepEqual(await calc.calculate(node), first);
    assert.equal(slow.opens, opens, "the second calculation came from the cache");
  });

  test("a missing blob is an IntegrityError", async () => {
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    const { node } = await ingestSource(fsNarSource(join(corpusDir(), "mixed")), {
      blobs,
      directories,
    });
    await assert.rejects(
      new NarCalculator(new MemoryBlobService(), directories).calculate(node),
      /is missing/,
    );
  });
});
