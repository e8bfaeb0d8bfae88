/**
 * NAR ingestion: a NAR byte stream becomes castore content (blobs,
 * directories) plus its NAR size and SHA-256, in one pass. Small files are
 * uploaded concurrently, large ones streamed into a blob writer.
 *
 * Nothing of a NAR that fails to parse, or whose hash or size differs from
 * the expected one, is referenced afterwards: the directory closure is only
 * committed after the whole NAR was read and checked (blobs that were
 * already written stay behind unreferenced, for garbage collection).
 */

import { createBlake3 } from "../../castore/blake3.js";
import {
  ConcurrentBlobUploader,
  type ConcurrentUploaderInit,
} from "../../castore/blob/concurrent-uploader.js";
import { bytesEqual, copyBytes, toHex } from "../../castore/bytes.js";
import type { CallOptions } from "../../castore/call-options.js";
import type { B3Digest } from "../../castore/digest.js";
import { IntegrityError, InvalidInputError } from "../../errors.js";
import { readNar } from "../nar/reader.js";
import { createSha256 } from "../sha256-node.js";
import type { CastoreWriters, IngestResult } from "./ingest-source.js";
import { CastoreTreeBuilder } from "./tree-builder.js";

export interface NarIngestInit extends ConcurrentUploaderInit {
  /** Files up to this size are buffered and uploaded concurrently (default 1 MiB). */
  smallFileBytes?: number;
  /** Reject the NAR (IntegrityError) unless its SHA-256 is this. */
  expectedNarSha256?: Uint8Array;
  /** Reject the NAR (IntegrityError) unless it has this many bytes. */
  expectedNarSize?: number;
  /** Called with the number of NAR bytes read so far, for progress. */
  onProgress?: (narBytes: number) => void;
}

/** Ingests a NAR stream; durable when it resolves (like `ingestSource`). */
export async function ingestNar(
  source: AsyncIterable<Uint8Array>,
  services: CastoreWriters,
  init: NarIngestInit = {},
  options: CallOptions = {},
): Promise<IngestResult> {
  const sha = createSha256();
  let narSize = 0;
  const onProgress = init.onProgress;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      sha.update(chunk);
      narSize += chunk.length;
      onProgress?.(narSize);
      yield chunk;
    }
  }

  const small = init.smallFileBytes ?? 1024 * 1024;
  const uploader = new ConcurrentBlobUploader(
    services.blobs,
    init.maxBytesInFlight === undefined ? {} : { maxBytesInFlight: init.maxBytesInFlight },
    options,
  );
  const tree = new CastoreTreeBuilder(services.directories, options);
  const last = (path: readonly Uint8Array[]): Uint8Array | undefined => path[path.length - 1];

  try {
    for await (const ev of readNar(hashed(), options.signal ? { signal: options.signal } : {})) {
      switch (ev.type) {
        case "directory":
          tree.enter(last(ev.path));
          break;
        case "end":
          await tree.leave();
          break;
        case "symlink":
          tree.place(last(ev.path), { type: "symlink", target: ev.target });
          break;
        case "file": {
          let digest: B3Digest;
          if (ev.size <= small) {
            const h = createBlake3();
            const kept: Uint8Array[] = [];
            for await (const c of ev.contents) {
              h.update(c);
              kept.push(copyBytes(c));
            }
            digest = h.digest() as B3Digest;
            await uploader.upload(kept, ev.size, digest);
          } else {
            const w = services.blobs.openWrite(options);
            try {
              for await (const c of ev.contents) await w.write(c, options);
              digest = await w.close(options);
            } catch (err) {
              await w.abort(err);
              throw err;
            }
          }
          tree.place(last(ev.path), {
            type: "file",
            digest,
            size: ev.size,
            executable: ev.executable,
          });
          break;
        }
      }
    }
    const root = tree.root;
    if (root === undefined) throw new InvalidInputError("NAR: empty input");
    const narSha256 = sha.digest();
    if (init.expectedNarSize !== undefined && init.expectedNarSize !== narSize) {
      throw new IntegrityError(`NAR has ${narSize} bytes, expected ${init.expectedNarSize}`);
    }
    if (init.expectedNarSha256 !== undefined && !bytesEqual(init.expectedNarSha256, narSha256)) {
      throw new IntegrityError(
        `NAR hash mismatch: got sha256 ${toHex(narSha256)}, expected ${toHex(init.expectedNarSha256)}`,
      );
    }
    await uploader.finish();
    await services.blobs.sync(options);
    await tree.commit();
    return { node: root, narSha256, narSize };
  } catch (err) {
    await tree.abort(err);
    await uploader.finish().catch(() => undefined);
    throw err;
  }
}
