/**
 * The binary cache's whole-NAR renderer (src/server/http/nar-render.ts)
 * against the NAR writer: every corpus item, through objectstore+file (small
 * blobs peeked from LMDB, others read into the output buffers) and through
 * the memory blob service (readers streamed and copied), with buffer sizes
 * that put token and content boundaries everywhere; and its failures.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import type { BlobService } from "../../src/castore/blob/service.js";
import { type B3Digest, b3Digest } from "../../src/castore/digest.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { Directory } from "../../src/castore/directory.js";
import type { Node } from "../../src/castore/node.js";
import { IntegrityError } from "../../src/errors.js";
import { ingestSource } from "../../src/store/import/ingest-source.js";
import { NarRender, narRenderChunks } from "../../src/store/nar/castore-render-node.js";
import { castoreNarSource, castoreReaders } from "../../src/store/nar/castore-source.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { NarGeometry } from "../../src/store/nar/geometry.js";
import { writeNar } from "../../src/store/nar/writer.js";
import { corpusDir, corpusItems } from "../helpers/corpus.js";
import { collectBytes } from "../helpers/nar-tree.js";
import { tempDir } from "../helpers/tmp.js";

async function render(
  node: Node,
  geometry: NarGeometry,
  blobs: BlobService,
  bufferSize?: number,
  depth?: number,
): Promise<Buffer> {
  const r = new NarRender(node, geometry, blobs, {
    ...(bufferSize !== undefined && { bufferSize }),
    ...(depth !== undefined && { depth }),
  });
  return collectBytes(narRenderChunks(r));
}

describe("whole-NAR renderer", () => {
  test("every corpus item renders byte-identical to the NAR writer, whatever the buffer size", async (t) => {
    // A low small-blob limit: the corpus has blobs inline in LMDB (<= 1 KiB),
    // in packs, and in files.
    const fs = await FsObjectStoreBlobService.open({
      root: tempDir(t),
      smallBlobMaxBytes: 16 * 1024,
      readChunkSize: 4096,
    });
    t.after(() => fs.close());
    const mem = new MemoryBlobService();
    for (const blobs of [fs, mem]) {
      const directories = new MemoryDirectoryService();
      for (const item of corpusItems()) {
        const { node } = await ingestSource(fsNarSource(join(corpusDir(), item)), {
          blobs,
          directories,
        });
        const expected = await collectBytes(
          writeNar(castoreNarSource(node, castoreReaders(blobs, directories))),
        );
        const geometry = await NarGeometry.load(node, directories);
        const sizes = expected.length < 1 << 20 ? [8, 13, 100, 4096, undefined] : [65_537];
        for (const size of sizes) {
          for (const depth of [2, 4]) {
            const got = await render(node, geometry, blobs, size, depth);
            assert.ok(got.equals(expected), `${item}, buffers of ${size ?? "default"} x ${depth}`);
          }
        }
      }
    }
  });

  test("a missing blob or one of the wrong size is an IntegrityError", async (t) => {
    await wrongBlobs(new MemoryBlobService());
    await using fs = await FsObjectStoreBlobService.open({ root: tempDir(t) });
    await wrongBlobs(fs);
  });

  async function wrongBlobs(blobs: BlobService): Promise<void> {
    const directories = new MemoryDirectoryService();
    const put = async (data: Uint8Array): Promise<B3Digest> => {
      const w = blobs.openWrite();
      await w.write(data);
      return w.close();
    };
    const digest = await put(new TextEncoder().encode("hello"));
    const packed = await put(new Uint8Array(5000).fill(3));
    const missing = b3Digest(new Uint8Array(32).fill(7));
    const cases: [Node, RegExp][] = [
      [{ type: "file", digest: missing, size: 5, executable: false }, /missing/],
      [{ type: "file", digest, size: 6, executable: false }, /bytes/],
      [{ type: "file", digest, size: 4, executable: false }, /bytes/],
      [{ type: "file", digest: packed, size: 4999, executable: false }, /bytes/],
      [{ type: "file", digest: packed, size: 5001, executable: false }, /bytes/],
    ];
    for (const [node, message] of cases) {
      const dir = Directory.fromEntries([{ name: "f", node }]);
      await directories.put(dir);
      const root: Node = { type: "directory", digest: dir.digest(), size: dir.size };
      const geometry = await NarGeometry.load(root, directories);
      await assert.rejects(render(root, geometry, blobs), (err: unknown) => {
        assert.ok(err instanceof IntegrityError);
        assert.match(err.message, message);
        return true;
      });
    }
  }

  test("a consumer that stops early leaves no reader open", async (t) => {
    const root = tempDir(t);
    const blobs = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 0 });
    const directories = new MemoryDirectoryService();
    const { node } = await ingestSource(fsNarSource(join(corpusDir(), corpusItems()[0]!)), {
      blobs,
      directories,
    });
    const geometry = await NarGeometry.load(node, directories);
    const r = new NarRender(node, geometry, blobs, { bufferSize: 16 });
    for await (const chunk of narRenderChunks(r)) {
      assert.ok(chunk.length > 0);
      break;
    }
    // close() waits for open readers; it would hang on a leaked one.
    await blobs.close();
  });

  test("an abort wakes a render whose buffers never come back (a dead socket)", async (t) => {
    const blobs = await FsObjectStoreBlobService.open({ root: tempDir(t), smallBlobMaxBytes: 0 });
    const directories = new MemoryDirectoryService();
    const { node } = await ingestSource(fsNarSource(join(corpusDir(), corpusItems()[0]!)), {
      blobs,
      directories,
    });
    const geometry = await NarGeometry.load(node, directories);
    const abort = new AbortController();
    const r = new NarRender(node, geometry, blobs, {
      bufferSize: 16,
      depth: 2,
      signal: abort.signal,
    });
    // Buffers taken and never released: the producer runs out and waits,
    // and so does the consumer's next call.
    const PENDING = Symbol("pending");
    let waiting: Promise<unknown> | undefined;
    for (let i = 0; i < 1000 && waiting === undefined; i++) {
      const next = r.next();
      const settled = await Promise.race([
        next,
        new Promise((resolve) => setTimeout(() => resolve(PENDING), 50)),
      ]);
      if (settled === PENDING) waiting = next;
      else assert.ok(settled !== undefined, "the render ended although no buffer came back");
    }
    assert.ok(waiting !== undefined);
    abort.abort(new Error("client gone"));
    await assert.rejects(waiting, /client gone/);
    await blobs.close();
  });
});
