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
import type { DirectoryPutter } from "../../castore/directory/service.js";
import { Directory } from "../../castore/directory.js";
import type { Node } from "../../castore/node.js";
import { IntegrityError, InvalidInputError } from "../../errors.js";
import { readNar } from "../nar/reader.js";
import { createSha256 } from "../sha256-node.js";
import type { CastoreWriters, IngestResult } from "./ingest-source.js";

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

interface Frame {
  readonly entries: { name: Uint8Array; node: Node }[];
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
  let putter: DirectoryPutter | undefined;
  const stack: Frame[] = [];
  let root: Node | undefined;
  const place = (path: readonly Uint8Array[], node: Node): void => {
    const parent = stack[stack.length - 1];
    if (parent === undefined) root = node;
    else parent.entries.push({ name: path[path.length - 1]!, node });
  };

  try {
    for await (const ev of readNar(hashed(), options.signal ? { signal: options.signal } : {})) {
      switch (ev.type) {
        case "directory":
          stack.push({ entries: [] });
          break;
        case "end": {
          const frame = stack.pop()!;
          const dir = Directory.fromEntries(frame.entries);
          putter ??= services.directories.putMultiple(options);
          await putter.put(dir, options);
          place(ev.path, { type: "directory", digest: dir.digest(), size: dir.size });
          break;
        }
        case "symlink":
          place(ev.path, { type: "symlink", target: ev.target });
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
          place(ev.path, { type: "file", digest, size: ev.size, executable: ev.executable });
          break;
        }
      }
    }
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
    if (putter !== undefined) {
      const p = putter;
      putter = undefined;
      await p.close(options);
    }
    return { node: root, narSha256, narSize };
  } catch (err) {
    await putter?.abort(err);
    await uploader.finish().catch(() => undefined);
    throw err;
  }
}
