/**
 * An in-memory BlobService: the reference implementation the conformance
 * suite is checked against, and the test double for everything above blobs.
 *
 * Blobs are kept as the list of chunks their writer produced (small writes
 * coalesced), never concatenated: a range read touches only the chunks it
 * overlaps, found by binary search over the chunk start offsets.
 * Browser-safe (no `node:` imports).
 */
import { InvalidInputError, StorageError, throwIfAborted } from "../../errors.js";
import { createBlake3 } from "../blake3.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, digestKey, formatB3 } from "../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta } from "./service.js";

/** Writes smaller than this are copied into a shared chunk rather than kept as their own. */
const COALESCE_BYTES = 256 * 1024;
/** The largest chunk `stream()` yields (BlobReader contract). */
const STREAM_CHUNK_BYTES = 1024 * 1024;

/** A complete blob: immutable chunks and the offset at which each starts. */
interface StoredBlob {
  readonly chunks: readonly Uint8Array[];
  readonly starts: readonly number[];
  readonly size: number;
}

export class MemoryBlobService implements BlobService {
  readonly #blobs = new Map<string, StoredBlob>();
  #closed = false;

  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    return this.#run(options, () => this.#blobs.has(digestKey(digest)));
  }

  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    return this.#run(options, () => {
      const blob = this.#blobs.get(digestKey(digest));
      return blob === undefined ? undefined : new MemoryBlobReader(this, blob, digest);
    });
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.checkOpen();
    throwIfAborted(options?.signal);
    return new MemoryBlobWriter(this, options?.signal);
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    // Blobs are stored whole as far as the interface is concerned.
    return this.#run(options, () => (this.#blobs.has(digestKey(digest)) ? [] : undefined));
  }

  /** Nothing to make durable: memory does not survive the process anyway. */
  sync(options?: CallOptions): Promise<void> {
    return this.#run(options, () => undefined);
  }

  /** Drops every blob. Idempotent; every later call rejects with a StorageError. */
  close(): Promise<void> {
    this.#closed = true;
    this.#blobs.clear();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal Throws the StorageError every call after close() gets. */
  checkOpen(): void {
    if (this.#closed) throw new StorageError("memory blob service is closed");
  }

  /** @internal Publishes a finished blob; a concurrent writer of the same content may have won. */
  publish(digest: B3Digest, blob: StoredBlob): void {
    this.checkOpen();
    const key = digestKey(digest);
    if (!this.#blobs.has(key)) this.#blobs.set(key, blob);
  }

  /** Runs a synchronous body as an async method: errors become rejections, never throws. */
  #run<T>(options: CallOptions | undefined, body: () => T): Promise<T> {
    try {
      this.checkOpen();
      throwIfAborted(options?.signal);
      return Promise.resolve(body());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

class MemoryBlobWriter implements BlobWriter {
  readonly #service: MemoryBlobService;
  readonly #signal: AbortSignal | undefined;
  readonly #hasher = createBlake3();
  readonly #chunks: Uint8Array[] = [];
  readonly #starts: number[] = [];
  /** Coalescing buffer for small writes, and how much of it is used. */
  #pending: Uint8Array | undefined;
  #pendingLength = 0;
  #bytesWritten = 0;
  #state: "open" | "closed" | "aborted" = "open";

  constructor(service: MemoryBlobService, signal: AbortSignal | undefined) {
    this.#service = service;
    this.#signal = signal;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  async write(data: Uint8Array, options?: CallOptions): Promise<void> {
    this.#checkUsable(options);
    this.#hasher.update(data);
    this.#bytesWritten += data.length;
    if (data.length >= COALESCE_BYTES) {
      this.#flushPending();
      // Copy: the caller may reuse its buffer once we resolve.
      this.#push(data.slice());
      return;
    }
    let off = 0;
    while (off < data.length) {
      if (this.#pending === undefined) this.#pending = new Uint8Array(COALESCE_BYTES);
      const n = Math.min(data.length - off, COALESCE_BYTES - this.#pendingLength);
      this.#pending.set(data.subarray(off, off + n), this.#pendingLength);
      this.#pendingLength += n;
      off += n;
      if (this.#pendingLength === COALESCE_BYTES) this.#flushPending();
    }
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    try {
      this.#checkUsable(options);
    } catch (err) {
      // A close that cannot finish must not leave a half-open writer around.
      if (this.#state === "open") await this.abort(err);
      throw err;
    }
    this.#flushPending();
    this.#state = "closed";
    const digest = this.#hasher.digest() as B3Digest;
    this.#service.publish(digest, {
      chunks: this.#chunks,
      starts: this.#starts,
      size: this.#bytesWritten,
    });
    return digest;
  }

  async abort(_reason?: unknown): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "aborted";
    this.#chunks.length = 0;
    this.#starts.length = 0;
    this.#pending = undefined;
  }

  #checkUsable(options: CallOptions | undefined): void {
    throwIfAborted(this.#signal);
    if (this.#state !== "open") {
      throw new InvalidInputError(`blob writer is ${this.#state}; it accepts no more calls`);
    }
    this.#service.checkOpen();
    throwIfAborted(options?.signal);
  }

  #flushPending(): void {
    if (this.#pending === undefined || this.#pendingLength === 0) return;
    // A partly filled buffer is trimmed by copying, so a tiny blob does not pin 256 KiB.
    const full = this.#pendingLength === this.#pending.length;
    this.#push(full ? this.#pending : this.#pending.slice(0, this.#pendingLength));
    this.#pending = undefined;
    this.#pendingLength = 0;
  }

  #push(chunk: Uint8Array): void {
    this.#starts.push(this.#storedLength());
    this.#chunks.push(chunk);
  }

  /** Offset of the next chunk: the sum of the stored chunk lengths. */
  #storedLength(): number {
    const n = this.#chunks.length;
    return n === 0 ? 0 : this.#starts[n - 1]! + this.#chunks[n - 1]!.length;
  }
}

class MemoryBlobReader implements BlobReader {
  readonly #service: MemoryBlobService;
  readonly #blob: StoredBlob;
  readonly #what: string;
  #closed = false;

  constructor(service: MemoryBlobService, blob: StoredBlob, digest: B3Digest) {
    this.#service = service;
    this.#blob = blob;
    this.#what = `blob ${formatB3(digest)} in memory`;
  }

  get size(): number {
    return this.#blob.size;
  }

  async read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    this.#checkUsable(options);
    checkOffset(offset, this.#blob.size, this.#what);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new InvalidInputError(`read of ${this.#what}: bad length ${length}`);
    }
    const end = Math.min(this.#blob.size, offset + length);
    return this.#copyRange(offset, end);
  }

  async *stream(offset = 0, options?: CallOptions): AsyncGenerator<Uint8Array> {
    this.#checkUsable(options);
    checkOffset(offset, this.#blob.size, this.#what);
    let pos = offset;
    while (pos < this.#blob.size) {
      const end = Math.min(this.#blob.size, pos + STREAM_CHUNK_BYTES);
      const chunk = this.#copyRange(pos, end);
      pos = end;
      yield chunk;
      // Checked after every chunk: the consumer may have aborted while holding it.
      if (pos < this.#blob.size) this.#checkUsable(options);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #checkUsable(options: CallOptions | undefined): void {
    if (this.#closed) throw new StorageError(`reader of ${this.#what} is closed`);
    this.#service.checkOpen();
    throwIfAborted(options?.signal);
  }

  /** A fresh copy of bytes [start, end): the stored chunks must stay immutable. */
  #copyRange(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start);
    const { chunks, starts } = this.#blob;
    let i = chunkIndex(starts, start);
    let o = 0;
    while (o < out.length) {
      const chunk = chunks[i]!;
      const from = start + o - starts[i]!;
      const n = Math.min(chunk.length - from, out.length - o);
      out.set(chunk.subarray(from, from + n), o);
      o += n;
      i++;
    }
    return out;
  }
}

function checkOffset(offset: number, size: number, what: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
    throw new InvalidInputError(`read of ${what}: offset ${offset} outside 0..${size}`);
  }
}

/** Index of the chunk containing byte `pos` (the last chunk starting at or before it). */
function chunkIndex(starts: readonly number[], pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
