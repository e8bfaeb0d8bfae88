/**
 * Child process for the SIGKILL durability test (test/castore/blob-durability.test.ts).
 *
 * Usage: node blob-writer-child.js ROOT
 * Writes batches of blobs (several writers at once, random sizes up to 1 MiB)
 * to an FsObjectStoreBlobService at ROOT, forever; after each batch it calls
 * sync() and then prints the hex digest of every blob of the batch, one per
 * line. A printed digest therefore names a blob that was durable before the
 * line was written. The parent kills the process at an arbitrary moment.
 */
import { randomBytes, randomInt } from "node:crypto";
import { writeSync } from "node:fs";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import { toHex } from "../../src/castore/bytes.js";

async function writeOne(store: FsObjectStoreBlobService): Promise<string> {
  const size = randomInt(0, 1024 * 1024);
  const w = store.openWrite();
  // Odd-sized pieces so buffers are flushed at arbitrary points.
  for (let off = 0; off < size; ) {
    const n = Math.min(size - off, randomInt(1, 300_000));
    await w.write(randomBytes(n));
    off += n;
  }
  return toHex(await w.close());
}

async function main(): Promise<void> {
  const root = process.argv[2];
  if (root === undefined) throw new Error("usage: blob-writer-child ROOT");
  const store = await FsObjectStoreBlobService.open({ root });
  for (;;) {
    const digests = await Promise.all(Array.from({ length: 8 }, () => writeOne(store)));
    await store.sync();
    // writeSync: the lines are out before the next batch starts, whatever stdout is.
    writeSync(1, digests.map((d) => `${d}\n`).join(""));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
