/**
 * Ingests a tree on disk (the pipeline behind `strata import` and `strata
 * copy`), split over two threads: a worker walks the tree, reads every file
 * once into a shared ring and BLAKE3-hashes it (fs-nar-worker.ts); this
 * thread hashes the NAR bytes (SHA-256), stores the blobs that are missing
 * and puts the directories leaves first. Node-only.
 *
 * Files up to `smallFileBytes` (at most a ring slot, 1 MiB) are stored from
 * the ring; larger ones are read a second time, and only when their blob is
 * missing, so a re-import reads every file once and writes nothing.
 */
import { lstatSync } from "node:fs";
import { ConcurrentBlobUploader } from "../../castore/blob/concurrent-uploader.js";
import type { CallOptions } from "../../castore/call-options.js";
import { b3Digest } from "../../castore/digest.js";
import { StorageError } from "../../errors.js";
import { fsNarSlots, worthAThread } from "../nar/fs-nar-stream.js";
import { fileContents, fsNarSource } from "../nar/fs-source.js";
import { createSha256 } from "../sha256-node.js";
import {
  type CastoreWriters,
  type IngestInit,
  type IngestResult,
  ingestSource,
  storeIfMissing,
} from "./ingest-source.js";
import { CastoreTreeBuilder } from "./tree-builder.js";

/** Ingests the tree at `path`; durable when it resolves (like `ingestSource`). */
export async function ingestPath(
  path: string,
  services: CastoreWriters,
  init: IngestInit = {},
  options: CallOptions = {},
): Promise<IngestResult> {
  const st = lstatSync(path);
  if (!worthAThread(st)) {
    const source = fsNarSource(path, { reuseBuffer: true });
    return ingestSource(source, services, { ...init, transient: true }, options);
  }
  const sha = createSha256();
  let narSize = 0;
  const uploader = new ConcurrentBlobUploader(
    services.blobs,
    init.maxBytesInFlight === undefined ? {} : { maxBytesInFlight: init.maxBytesInFlight },
    options,
  );
  const tree = new CastoreTreeBuilder(services.directories, options);
  try {
    const slots = fsNarSlots(path, {
      describe: true,
      signal: options.signal,
      inSlotMax: init.smallFileBytes ?? 1 << 20,
    });
    for await (const slot of slots) {
      sha.update(slot.bytes);
      narSize += slot.bytes.length;
      for (const ev of slot.events) {
        switch (ev.t) {
          case "dir":
            tree.enter(ev.name);
            break;
          case "end":
            await tree.leave();
            break;
          case "symlink":
            tree.place(ev.name, { type: "symlink", target: ev.target });
            break;
          case "file": {
            const digest = b3Digest(ev.digest);
            if (ev.at !== undefined) {
              // Copied if needed: the ring slot is reused once the next one is asked for.
              await uploader.uploadView(slot.bytes.subarray(ev.at, ev.at + ev.size), digest);
            } else {
              // The same bytes the worker hashed; a change in between fails the digest check.
              const file = Buffer.from(ev.path!);
              const contents = (): AsyncIterable<Uint8Array> =>
                fileContents(file, ev.size, { reuseBuffer: true });
              await storeIfMissing(services.blobs, digest, contents, options);
            }
            init.onFile?.(ev.size);
            tree.place(ev.name, { type: "file", digest, size: ev.size, executable: ev.executable });
            break;
          }
        }
      }
    }
    const root = tree.root;
    if (root === undefined) throw new StorageError(`ingest of '${path}': no root node`);
    await uploader.finish();
    await services.blobs.sync(options);
    await tree.commit();
    return { node: root, narSha256: sha.digest(), narSize };
  } catch (err) {
    await tree.abort(err);
    await uploader.finish().catch(() => undefined);
    throw err;
  }
}
