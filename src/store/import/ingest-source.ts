/**
 * One pass over a tree (any NarSourceNode: a directory on disk, ...) that at
 * the same time renders its NAR for the SHA-256, BLAKE3-hashes every file,
 * uploads the blobs, and uploads the directories leaves first.
 *
 * Small files (<= `smallFileBytes`) are kept in memory and uploaded
 * concurrently (bounded bytes in flight). Large files are hashed as they
 * stream past and, only if their blob is missing, read a second time into a
 * blob writer: re-importing a tree then costs one read of each file and no
 * writes, and a first import reads large files twice (from the page cache).
 */

import { blake3, createBlake3 } from "../../castore/blake3.js";
import { ConcurrentBlobUploader } from "../../castore/blob/concurrent-uploader.js";
import type { BlobService } from "../../castore/blob/service.js";
import { copyBytes } from "../../castore/bytes.js";
import type { CallOptions } from "../../castore/call-options.js";
import { type B3Digest, digestKey, formatB3 } from "../../castore/digest.js";
import type { DirectoryPutter, DirectoryService } from "../../castore/directory/service.js";
import { Directory } from "../../castore/directory.js";
import type { Node } from "../../castore/node.js";
import { IntegrityError, StorageError } from "../../errors.js";
import { hashNarStream } from "../nar/hash.js";
import { type NarSourceEntry, type NarSourceNode, writeNar } from "../nar/writer.js";

export interface IngestInit {
  /** Files up to this size are buffered and uploaded concurrently (default 1 MiB). */
  smallFileBytes?: number;
  /** Bytes of small files held for pending uploads (default 64 MiB). */
  maxBytesInFlight?: number;
  /**
   * The source's chunks are only valid until the next one is requested (see
   * NarWriteOptions.transient). Default true: sources from fsNarSource with
   * `reuseBuffer` are transient.
   */
  transient?: boolean;
  /** Called after each file with its size, for progress. */
  onFile?: (size: number) => void;
}

export interface IngestResult {
  /** The castore root node (unnamed). */
  readonly node: Node;
  readonly narSha256: Uint8Array;
  readonly narSize: number;
}

export interface CastoreWriters {
  readonly blobs: BlobService;
  readonly directories: DirectoryService;
}

/**
 * Ingests a tree. When it resolves, every blob and directory of the result is
 * durable (blobs synced, directory closure committed), so a PathInfo may now
 * reference it. On failure nothing references what was written.
 */
export async function ingestSource(
  root: NarSourceNode,
  services: CastoreWriters,
  init: IngestInit = {},
  options: CallOptions = {},
): Promise<IngestResult> {
  const ctx = new IngestContext(services, init, options);
  let rootNode: Node | undefined;
  try {
    const wrapped = ctx.wrap(root, (n) => {
      rootNode = n;
    });
    const nar = await hashNarStream(
      writeNar(wrapped, {
        transient: init.transient ?? true,
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    );
    await ctx.finish();
    if (rootNode === undefined) throw new StorageError("ingest: the root node was not produced");
    return { node: rootNode, narSha256: nar.sha256, narSize: nar.size };
  } catch (err) {
    await ctx.abort(err);
    throw err;
  }
}

function hashChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return blake3(chunks[0]!);
  const h = createBlake3();
  for (const c of chunks) h.update(c);
  return h.digest();
}

class IngestContext {
  readonly #blobs: BlobService;
  readonly #directories: DirectoryService;
  readonly #small: number;
  readonly #uploader: ConcurrentBlobUploader;
  readonly #opts: CallOptions;
  readonly #onFile: ((size: number) => void) | undefined;
  #putter: DirectoryPutter | undefined;

  constructor(services: CastoreWriters, init: IngestInit, options: CallOptions) {
    this.#blobs = services.blobs;
    this.#directories = services.directories;
    this.#small = init.smallFileBytes ?? 1024 * 1024;
    this.#opts = options;
    this.#onFile = init.onFile;
    this.#uploader = new ConcurrentBlobUploader(
      services.blobs,
      init.maxBytesInFlight === undefined ? {} : { maxBytesInFlight: init.maxBytesInFlight },
      options,
    );
  }

  wrap(node: NarSourceNode, done: (n: Node) => void): NarSourceNode {
    switch (node.type) {
      case "symlink":
        done({ type: "symlink", target: node.target });
        return node;
      case "file":
        return {
          type: "file",
          executable: node.executable,
          size: node.size,
          contents: () => this.#fileContents(node, done),
        };
      case "directory":
        return { type: "directory", entries: () => this.#dirEntries(node, done) };
    }
  }

  async *#fileContents(
    node: Extract<NarSourceNode, { type: "file" }>,
    done: (n: Node) => void,
  ): AsyncGenerator<Uint8Array> {
    const small = node.size <= this.#small;
    // Small files are hashed from their copies in one call (hash-wasm below
    // 2 KiB, no native hasher object per file); large ones as they stream.
    const hasher = small ? undefined : createBlake3();
    const kept: Uint8Array[] = [];
    for await (const chunk of node.contents()) {
      hasher?.update(chunk);
      // Chunks may be recycled by the source: keep copies of small files only.
      if (small) kept.push(copyBytes(chunk));
      yield chunk;
    }
    const digest = (hasher === undefined ? hashChunks(kept) : hasher.digest()) as B3Digest;
    if (small) await this.#uploader.upload(kept, node.size, digest);
    else await this.#uploadLarge(node, digest);
    this.#onFile?.(node.size);
    done({ type: "file", digest, size: node.size, executable: node.executable });
  }

  #uploadLarge(node: Extract<NarSourceNode, { type: "file" }>, digest: B3Digest): Promise<void> {
    return storeIfMissing(this.#blobs, digest, () => node.contents(), this.#opts);
  }

  async *#dirEntries(
    node: Extract<NarSourceNode, { type: "directory" }>,
    done: (n: Node) => void,
  ): AsyncGenerator<NarSourceEntry> {
    const children: { name: Uint8Array; node: Node }[] = [];
    for await (const entry of node.entries()) {
      yield {
        name: entry.name,
        node: this.wrap(entry.node, (n) => {
          children.push({ name: entry.name, node: n });
        }),
      };
    }
    const dir = Directory.fromEntries(children);
    this.#putter ??= this.#directories.putMultiple(this.#opts);
    await this.#putter.put(dir, this.#opts);
    done({ type: "directory", digest: dir.digest(), size: dir.size });
  }

  /** Blobs first (uploaded and synced), then the directory closure. */
  async finish(): Promise<void> {
    await this.#uploader.finish();
    await this.#blobs.sync(this.#opts);
    if (this.#putter !== undefined) {
      const putter = this.#putter;
      this.#putter = undefined;
      await putter.close(this.#opts);
    }
  }

  async abort(reason: unknown): Promise<void> {
    await this.#putter?.abort(reason);
    this.#putter = undefined;
    // Let started uploads settle so nothing keeps running after we return.
    await this.#uploader.finish().catch(() => undefined);
  }
}

/**
 * Stores a blob whose digest was computed on a first read, by reading its
 * contents again, unless the store has it already. A second read that
 * hashes differently (the file changed in between) fails with IntegrityError
 * and stores nothing.
 */
export async function storeIfMissing(
  blobs: BlobService,
  digest: B3Digest,
  contents: () => AsyncIterable<Uint8Array>,
  options: CallOptions,
): Promise<void> {
  if (await blobs.has(digest, options)) return;
  const w = blobs.openWrite(options);
  try {
    for await (const chunk of contents()) await w.write(chunk, options);
    const got = await w.close(options);
    if (digestKey(got) !== digestKey(digest)) {
      throw new IntegrityError(
        `file changed while being imported: first read hashed to ${formatB3(digest)}, second to ${formatB3(got)}`,
      );
    }
  } catch (err) {
    await w.abort(err);
    throw err;
  }
}
