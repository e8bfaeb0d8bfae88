/**
 * A castore root node as a NAR source: directories are fetched as the walk
 * reaches them, blob contents come from a caller-supplied function.
 */

import type { BlobReader, BlobService } from "../../castore/blob/service.js";
import type { CallOptions } from "../../castore/call-options.js";
import type { B3Digest } from "../../castore/digest.js";
import { formatB3 } from "../../castore/digest.js";
import type { DirectoryService } from "../../castore/directory/service.js";
import type { Directory } from "../../castore/directory.js";
import type { Node } from "../../castore/node.js";
import { IntegrityError } from "../../errors.js";
import type { NarSourceEntry, NarSourceNode } from "./writer.js";

export interface CastoreReaders {
  /** The directory with this digest, or undefined if it is missing. */
  getDirectory(digest: B3Digest): Promise<Directory | undefined>;
  /** The blob's contents as a stream, or undefined if it is missing. */
  openBlob(digest: B3Digest, size: number): Promise<AsyncIterable<Uint8Array> | undefined>;
}

export function castoreNarSource(node: Node, readers: CastoreReaders): NarSourceNode {
  switch (node.type) {
    case "file":
      return {
        type: "file",
        executable: node.executable,
        size: node.size,
        contents: () => blobContents(node.digest, node.size, readers),
      };
    case "symlink":
      return { type: "symlink", target: node.target };
    case "directory":
      return { type: "directory", entries: () => directoryEntries(node.digest, readers) };
  }
}

async function* blobContents(
  digest: B3Digest,
  size: number,
  readers: CastoreReaders,
): AsyncGenerator<Uint8Array> {
  const stream = await readers.openBlob(digest, size);
  if (stream === undefined)
    throw new IntegrityError(`blob ${formatB3(digest)} referenced by the tree is missing`);
  yield* stream;
}

async function* directoryEntries(
  digest: B3Digest,
  readers: CastoreReaders,
): AsyncGenerator<NarSourceEntry> {
  const dir = await readers.getDirectory(digest);
  if (dir === undefined)
    throw new IntegrityError(`directory ${formatB3(digest)} referenced by the tree is missing`);
  for (const { name, node } of dir.entries) yield { name, node: castoreNarSource(node, readers) };
}

/**
 * Reads through castore services (the usual case). With `transient`, blob
 * streams recycle their buffers: only for a NAR writer in transient mode
 * whose consumer does not keep chunks.
 */
export function castoreReaders(
  blobs: Pick<BlobService, "openRead">,
  directories: Pick<DirectoryService, "get">,
  options: CallOptions = {},
  init: { transient?: boolean } = {},
): CastoreReaders {
  return {
    getDirectory: (digest) => directories.get(digest, options),
    openBlob: async (digest, size) => {
      const reader = await blobs.openRead(digest, options);
      if (reader === undefined) return undefined;
      if (reader.size !== size) {
        await reader.close();
        throw new IntegrityError(
          `blob ${formatB3(digest)} has ${reader.size} bytes, the tree says ${size}`,
        );
      }
      return closing(reader.stream(0, { ...options, transient: init.transient === true }), reader);
    },
  };
}

async function* closing(
  stream: AsyncIterable<Uint8Array>,
  reader: BlobReader,
): AsyncGenerator<Uint8Array> {
  try {
    yield* stream;
  } finally {
    await reader.close();
  }
}
