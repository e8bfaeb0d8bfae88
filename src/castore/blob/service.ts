import type { CallOptions, Closeable } from "../call-options.js";
import type { B3Digest } from "../digest.js";

/** A verified piece of a blob (for backends that store blobs chunked). */
export interface ChunkMeta {
  readonly digest: B3Digest;
  readonly size: number;
}

export interface StreamOptions extends CallOptions {
  /**
   * The consumer promises not to keep a chunk once it asked for the next one
   * (hashing, writing synchronously), so the backend may recycle its buffers
   * instead of faulting in fresh memory for every chunk. Default false.
   */
  transient?: boolean;
}

/**
 * Random access to one blob. Obtained from `BlobService.openRead`; the blob's
 * digest was verified when it was written, and backends that read from an
 * untrusted place re-verify what they return.
 */
export interface BlobReader {
  /** Length of the blob in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `offset` (a range read; the blob is never loaded
   * whole). Returns fewer bytes only at the end of the blob. `offset` beyond
   * `size` is an InvalidInputError.
   */
  read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array>;
  /**
   * Streams the blob from `offset` (default 0) to its end, in chunks of at
   * most 1 MiB. The consumer may keep the chunks, unless it passed
   * `transient: true`.
   */
  stream(offset?: number, options?: StreamOptions): AsyncIterable<Uint8Array>;
  /**
   * Optional: copies `length` bytes at `position` of the blob into `target`
   * at `targetOffset` (positional reads into the caller's memory: NAR
   * rendering fills its output buffers without a copy per chunk). Out of
   * bounds is an InvalidInputError.
   */
  readInto?(
    target: Uint8Array,
    targetOffset: number,
    length: number,
    position: number,
    options?: CallOptions,
  ): Promise<void>;
  /** Releases the reader (file handles). Idempotent. */
  close(): Promise<void>;
}

/**
 * Writes one blob. Bytes go in with `write`; `close` verifies and returns
 * the BLAKE3 digest. Nothing is visible through `has`/`openRead` before
 * `close` resolved; after `abort` (or a crash) nothing is visible at all.
 */
export interface BlobWriter {
  /** Bytes accepted so far. */
  readonly bytesWritten: number;
  /** Appends bytes. The writer copies or consumes them before resolving; the caller may reuse the buffer. */
  write(data: Uint8Array, options?: CallOptions): Promise<void>;
  /**
   * Finishes the blob: computes its digest and makes it visible (atomically;
   * concurrent writers of the same content are safe). Resolves to the digest.
   * Durability: see `BlobService.sync`.
   */
  close(options?: CallOptions): Promise<B3Digest>;
  /** Discards everything written; idempotent; nothing becomes visible. */
  abort(reason?: unknown): Promise<void>;
}

/**
 * Content-addressed blob storage (BLAKE3 of the contents).
 *
 * Durability rule: a blob is visible once its writer's `close()` resolved,
 * and durable (survives a crash or power loss) once a `sync()` started after
 * that close resolved. Callers that are about to store something referencing
 * blobs (a Directory, a PathInfo) call `sync()` once for the whole batch
 * first; this groups the expensive fsyncs instead of paying one per blob.
 */
export interface BlobService extends Closeable {
  /** Whether the blob exists (complete and verified). */
  has(digest: B3Digest, options?: CallOptions): Promise<boolean>;
  /** Opens the blob for reading; `undefined` if it does not exist. */
  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined>;
  /** Starts writing a new blob. */
  openWrite(options?: CallOptions): BlobWriter;
  /**
   * Optional fast path for a whole blob already in memory (the small files
   * of an import): stores `data` unless the blob exists and resolves to its
   * digest, computed by the service. Visibility and durability as for a
   * writer's `close()`. `data` must stay unmodified until the promise
   * settles. Callers use `openWrite` when a service does not offer it.
   */
  putBytes?(data: Uint8Array, options?: CallOptions): Promise<B3Digest>;
  /**
   * Optional, for stores whose metadata is local: whether the blob of this
   * digest and size exists, answered synchronously without waiting on I/O.
   * May answer false for a blob that exists (the caller then stores it
   * again, which is harmless); never true for one that does not.
   */
  hasLocal?(digest: B3Digest, size: number): boolean;
  /**
   * Optional, for stores that keep small blobs in local memory or files:
   * synchronously copies the blob's bytes into `target` at `at` and returns
   * its length, or copies nothing and returns the length when the blob does
   * not fit there; undefined when the blob is not kept that way (then
   * `openRead`). Not re-verified.
   */
  readSmallInto?(digest: B3Digest, target: Uint8Array, at: number): number | undefined;
  /**
   * The blob's chunk list, for backends that store blobs chunked: `[]` when
   * the blob exists but is stored whole, `undefined` when it does not exist.
   */
  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined>;
  /** Makes every blob whose writer closed before this call durable. */
  sync(options?: CallOptions): Promise<void>;
}
