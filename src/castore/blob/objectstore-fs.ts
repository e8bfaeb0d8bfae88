/**
 * A BlobService on a local POSIX directory (`objectstore+file:///abs/dir`).
 * Node-only (the file name says so, ARCHITECTURE §1).
 *
 * On-disk layout under `root` (works on any POSIX filesystem: plain files,
 * at most 4,096 + 256 entries per directory for a million blobs):
 *
 *   root/blobs/<hh>/<64 hex>   one complete blob per file, named by the lowercase
 *                              hex of its BLAKE3 digest; <hh> is the digest's first
 *                              byte in hex. All 256 shard directories are created
 *                              on open. Files are created read-only (0444): content
 *                              never changes once named.
 *   root/tmp/<32 hex>.tmp      a blob being written (random name, O_CREAT|O_EXCL).
 *   root/small/, root/packs/   blobs of at most `smallBlobMaxBytes` (default 64 KiB):
 *                              an LMDB index and append-only pack files
 *                              (objectstore-fs-small.ts).
 *
 * Small blobs are packed because one file per blob makes importing 20,000
 * small files cost 20,000 creates, renames and fsyncs (seconds); packs
 * take them in a few appends, one fdatasync and one index commit.
 *
 * A writer streams into its temp file while hashing, and `close()` renames the
 * temp file to its digest's name (rename is atomic: a name either does not
 * exist or holds the complete content). If the name exists already — a
 * concurrent or earlier writer of the same content — the temp file is dropped.
 * Only names under `blobs/` are ever looked at by has/openRead, so a crashed,
 * aborted or killed writer leaves nothing visible; its temp file is deleted by
 * the next open once it is older than `staleTempAgeMs`.
 *
 * Durability: close() renames (or appends to a pack) but does not fsync.
 * The service remembers every blob file named (or found already named)
 * since the last sync, with its shard directory; `sync()` syncs the small
 * blobs' packs and index, then fsyncs those files, then the directories, in
 * parallel with bounded concurrency. An import pays one group sync instead
 * of an fsync per blob (BlobService.sync contract).
 */
import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import {
  AbortedError,
  IntegrityError,
  InvalidInputError,
  StorageError,
  StrataError,
  throwIfAborted,
} from "../../errors.js";
import { type Blake3Hasher, createBlake3 } from "../blake3.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, formatB3, hashB3 } from "../digest.js";
import { fsyncDir, SmallBlobs } from "./objectstore-fs-small.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta, StreamOptions } from "./service.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** BLAKE3 of the empty string: the one blob that is legitimately 0 bytes long. */
const EMPTY_BLOB_HEX = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

export interface FsObjectStoreOptions {
  /** Absolute path of the store directory; it and its subdirectories are created on open. */
  root: string;
  /**
   * Bytes a writer collects before issuing one write syscall (small writes are
   * coalesced; two buffers per writer, so hashing overlaps the previous write).
   * Default 1 MiB; 256 KiB..64 MiB.
   */
  writeBufferSize?: number;
  /** Chunk size `stream()` reads and yields. Default 1 MiB; 4 KiB..1 MiB. */
  readChunkSize?: number;
  /**
   * Reads `stream()` keeps in flight ahead of the consumer. They run in
   * parallel on libuv's threadpool, which is what lets a stream keep up with
   * `cat` although every chunk is fresh memory (page faults). Default 4; 1..16.
   */
  readAhead?: number;
  /**
   * Temp files older than this (by mtime) are deleted on open. Younger ones may
   * belong to a live writer in another process sharing the root. Default 1 h.
   */
  staleTempAgeMs?: number;
  /** Parallel fsyncs in `sync()`. Default 32; 1..1024. */
  syncConcurrency?: number;
  /**
   * New blobs up to this size go to packs under `root/packs` (index: LMDB
   * under `root/small`). Default 64 KiB; 0 (off: new ones become files,
   * those stored before stay readable)..1 MiB.
   */
  smallBlobMaxBytes?: number;
}

interface ResolvedOptions {
  readonly root: string;
  readonly writeBufferSize: number;
  readonly readChunkSize: number;
  readonly readAhead: number;
  readonly staleTempAgeMs: number;
  readonly syncConcurrency: number;
  readonly smallBlobMaxBytes: number;
}

/** Validates the options once, at the boundary, and fills in the defaults. */
function resolveOptions(o: FsObjectStoreOptions): ResolvedOptions {
  if (typeof o.root !== "string" || !isAbsolute(o.root)) {
    throw new InvalidInputError(
      `objectstore root must be an absolute path, got '${String(o.root)}'`,
    );
  }
  const int = (name: string, v: number | undefined, def: number, min: number, max: number) => {
    if (v === undefined) return def;
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new InvalidInputError(
        `objectstore option ${name} must be an integer in ${min}..${max}, got ${v}`,
      );
    }
    return v;
  };
  return {
    root: resolve(o.root),
    writeBufferSize: int("writeBufferSize", o.writeBufferSize, MiB, 256 * KiB, 64 * MiB),
    readChunkSize: int("readChunkSize", o.readChunkSize, MiB, 4 * KiB, MiB),
    readAhead: int("readAhead", o.readAhead, 4, 1, 16),
    staleTempAgeMs: int("staleTempAgeMs", o.staleTempAgeMs, 3_600_000, 0, Number.MAX_SAFE_INTEGER),
    syncConcurrency: int("syncConcurrency", o.syncConcurrency, 32, 1, 1024),
    smallBlobMaxBytes: int("smallBlobMaxBytes", o.smallBlobMaxBytes, 64 * KiB, 0, MiB),
  };
}

export class FsObjectStoreBlobService implements BlobService {
  /** The store directory (absolute, normalised). */
  readonly root: string;
  readonly #opts: ResolvedOptions;
  readonly #blobsDir: string;
  readonly #tmpDir: string;
  /** Directory creation and temp cleanup; every call waits for it. */
  readonly #ready: Promise<void>;
  #closed = false;
  readonly #writers = new Set<FsBlobWriter>();
  readonly #readers = new Set<FsBlobReader>();
  /** Blob files named since the last sync started, and the directories holding their names. */
  #unsyncedFiles = new Set<string>();
  #unsyncedDirs = new Set<string>();
  /** Syncs run one after another, so a sync also covers the files an earlier, still running one took. */
  #syncChain: Promise<void> = Promise.resolve();
  /** Small-blob storage (opened by #init; objectstore-fs-small.ts). */
  #small: SmallBlobs | undefined;

  /**
   * Starts opening the store; the first call waits for it and reports its
   * failure. Use `FsObjectStoreBlobService.open` to see failures right away.
   */
  constructor(options: FsObjectStoreOptions) {
    this.#opts = resolveOptions(options);
    this.root = this.#opts.root;
    this.#blobsDir = join(this.root, "blobs");
    this.#tmpDir = join(this.root, "tmp");
    this.#ready = this.#init();
    // Marked handled here; the rejection is re-raised by every call that awaits it.
    this.#ready.catch(() => undefined);
  }

  /** Opens the store, creating its directories and deleting stale temp files first. */
  static async open(options: FsObjectStoreOptions): Promise<FsObjectStoreBlobService> {
    const service = new FsObjectStoreBlobService(options);
    await service.#ready;
    return service;
  }

  async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    await this.#enter(options);
    try {
      if (this.#small?.has(digest)) return true;
      // Synchronous on purpose: a stat is ~2 us, a thread-pool round trip ~50 us,
      // and imports ask this once per file.
      // throwIfNoEntry: a miss is the common case, and building an ENOENT error costs more than the stat.
      const st = statSync(this.blobPath(digest), { throwIfNoEntry: false });
      return st !== undefined && isCompleteBlob(st, digest);
    } catch (err) {
      if (errno(err) === "ENOENT") return false;
      throw this.#error(`checking blob ${formatB3(digest)}`, err);
    }
  }

  async openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    await this.#enter(options);
    const small = this.#readSmall(digest);
    if (small !== "large") return small;
    let fh: FileHandle;
    try {
      fh = await fsp.open(this.blobPath(digest), "r");
    } catch (err) {
      if (errno(err) === "ENOENT") return undefined;
      throw this.#error(`opening blob ${formatB3(digest)}`, err);
    }
    try {
      const st = await fh.stat();
      if (!isCompleteBlob(st, digest)) {
        await fh.close();
        return undefined;
      }
      this.#checkOpen();
      const reader = new FsBlobReader(this, fh, st.size, this.#what(digest), this.#opts);
      this.#readers.add(reader);
      return reader;
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw this.#error(`opening blob ${formatB3(digest)}`, err);
    }
  }

  /**
   * Blobs up to one read chunk are read whole with synchronous calls (open,
   * fstat, read, close: ~10 us in the page cache, where four thread-pool
   * round trips cost ~0.2 ms); rendering a NAR of 20,000 small files depends
   * on it. Larger blobs return "large" and get a streaming reader.
   */
  #readSmall(digest: B3Digest): BlobReader | undefined | "large" {
    let inSmall: Uint8Array | undefined;
    try {
      inSmall = this.#small?.get(digest);
    } catch (err) {
      throw this.#error(`reading blob ${formatB3(digest)}`, err);
    }
    if (inSmall !== undefined) {
      // A copy we own. Like blob files, it is not re-hashed: this is local
      // storage that only ever receives verified content.
      return new InMemoryBlobReader(inSmall, this);
    }
    let fd: number;
    try {
      fd = openSync(this.blobPath(digest), constants.O_RDONLY);
    } catch (err) {
      if (errno(err) === "ENOENT") return undefined;
      throw this.#error(`opening blob ${formatB3(digest)}`, err);
    }
    try {
      const st = fstatSync(fd);
      if (!isCompleteBlob(st, digest)) return undefined;
      if (st.size > this.#opts.readChunkSize) return "large";
      const buf = new Uint8Array(st.size);
      let done = 0;
      while (done < st.size) {
        const n = readSync(fd, buf, done, st.size - done, done);
        if (n === 0)
          throw new IntegrityError(`${this.#what(digest)} is shorter than its size ${st.size}`);
        done += n;
      }
      this.#checkOpen();
      return new InMemoryBlobReader(buf, this);
    } catch (err) {
      throw this.#error(`reading blob ${formatB3(digest)}`, err);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * A small blob's bytes straight into the caller's buffer, without the
   * fresh buffer `openRead` makes (an allocation, a copy and GC work per
   * blob, a quarter of a NAR render of many small files): its length, the
   * bytes copied only if they fit at `at`. Undefined when the blob is not
   * stored there (a blob file, missing, or the store not open yet): use
   * `openRead`. Not re-hashed, like every local read (see #readSmall).
   */
  readSmallInto(digest: B3Digest, target: Uint8Array, at: number): number | undefined {
    this.#checkOpen();
    try {
      return this.#small?.readInto(digest, target, at);
    } catch (err) {
      throw this.#error(`reading blob ${formatB3(digest)}`, err);
    }
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#checkOpen();
    throwIfAborted(options?.signal);
    const writer = new FsBlobWriter(this, this.#opts.writeBufferSize, options?.signal);
    this.#writers.add(writer);
    return writer;
  }

  /**
   * Small blobs are answered from the small-blob index alone (no stat of a
   * file that, at that size, would not be there); larger ones by a stat.
   */
  hasLocal(digest: B3Digest, size: number): boolean {
    if (this.#closed) return false;
    if (this.#small !== undefined && this.#packsSmall(size)) {
      return this.#small.has(digest);
    }
    try {
      const path = this.blobPath(digest);
      const st = statSync(path, { throwIfNoEntry: false });
      if (st === undefined || !isCompleteBlob(st, digest)) return false;
      // It may have been renamed into place by a process that crashed before
      // syncing: whoever relies on it now gets it synced by the next sync().
      this.#unsyncedFiles.add(path);
      this.#unsyncedDirs.add(dirname(path));
      return true;
    } catch {
      return false; // "don't know": the caller stores it, and that path reports errors
    }
  }

  /**
   * A whole small blob in one call: one BLAKE3 pass, no writer, no buffer
   * copies of ours. Blobs up to smallBlobMaxBytes go to the small-blob
   * packs (only if absent there: a re-import rewrites nothing), larger ones
   * through the synchronous temp-file path of placeSmall.
   */
  async putBytes(data: Uint8Array, options?: CallOptions): Promise<B3Digest> {
    await this.#enter(options);
    const digest = hashB3(data);
    try {
      if (this.#small !== undefined && this.#packsSmall(data.length)) {
        await this.#small.put(digest, data);
      } else {
        // Handles an existing blob file too, queueing it for the next sync
        // (it may have been renamed into place by a process that crashed before syncing).
        await this.placeSmall(data, digest);
      }
    } catch (err) {
      throw this.#error(`writing blob ${formatB3(digest)}`, err);
    }
    return digest;
  }

  async chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    // Blobs are stored whole.
    return (await this.has(digest, options)) ? [] : undefined;
  }

  /**
   * Makes every blob whose writer's close() resolved before this call durable:
   * fsyncs the blob files, then their shard directories (so the names survive
   * too). Files already made durable by an earlier sync are not fsynced again.
   * On failure or abort the files stay queued for the next sync.
   */
  async sync(options?: CallOptions): Promise<void> {
    await this.#enter(options);
    const run = this.#syncChain.catch(() => undefined).then(() => this.#syncPending(options));
    this.#syncChain = run;
    return run;
  }

  /**
   * Aborts writers still open (their temp files are deleted), closes open
   * readers, and waits for a running sync. Does not sync: call `sync()`
   * first for durability. Idempotent; later calls reject with a StorageError.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const reason = new StorageError(`objectstore '${this.root}' is closed`);
    await Promise.allSettled([...this.#writers].map((w) => w.abort(reason)));
    await Promise.allSettled([...this.#readers].map((r) => r.close()));
    await this.#syncChain.catch(() => undefined);
    await this.#ready.catch(() => undefined);
    await this.#small?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Where the blob with this digest lives (whether or not it exists). */
  blobPath(digest: B3Digest): string {
    const hex = toHex(digest);
    return join(this.#blobsDir, hex.slice(0, 2), hex);
  }

  // ---- used by the writer and reader of this file ----

  /** @internal */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** @internal */
  get tmpDir(): string {
    return this.#tmpDir;
  }

  /** @internal A fresh temp file path. */
  tempPath(): string {
    return join(this.#tmpDir, `${randomBytes(16).toString("hex")}.tmp`);
  }

  /**
   * @internal Names a finished temp file by its digest (atomic rename) or, if
   * a complete blob of that name exists, drops it. Either way the name is
   * queued for the next sync: this writer's close() resolving promises it.
   */
  async place(tmp: string, digest: B3Digest): Promise<void> {
    const target = this.blobPath(digest);
    let exists = false;
    try {
      exists = isCompleteBlob(await fsp.lstat(target), digest);
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
    }
    if (exists) {
      await fsp.unlink(tmp);
    } else {
      // Queued before the rename as well as after: once the name exists,
      // another caller's has() may see it and its sync() must cover it
      // (a sync that runs before the rename finds no file and skips it).
      this.#unsyncedFiles.add(target);
      this.#unsyncedDirs.add(dirname(target));
      try {
        await fsp.rename(tmp, target);
      } catch (err) {
        if (errno(err) !== "ENOENT") throw err;
        // The shard directory was removed behind our back: recreate it and retry.
        await fsp.mkdir(dirname(target), { recursive: true });
        this.#unsyncedDirs.add(this.#blobsDir);
        await fsp.rename(tmp, target);
      }
    }
    this.#unsyncedFiles.add(target);
    this.#unsyncedDirs.add(dirname(target));
  }

  /**
   * @internal Stores a small blob written in one go, synchronously: create a
   * temp file, write, rename (or drop it if the blob exists). Same
   * guarantees as the streaming path, without five thread-pool round trips.
   */
  async placeSmall(data: Uint8Array, digest: B3Digest): Promise<void> {
    if (this.#small !== undefined && this.#packsSmall(data.length)) {
      await this.#small.put(digest, data);
      return;
    }
    const target = this.blobPath(digest);
    let exists = false;
    try {
      exists = isCompleteBlob(lstatSync(target), digest);
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
    }
    if (!exists) {
      const tmp = this.tempPath();
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o444);
      try {
        let done = 0;
        while (done < data.length) done += writeSync(fd, data, done, data.length - done);
      } catch (err) {
        closeSync(fd);
        unlinkSync(tmp);
        throw err;
      }
      closeSync(fd);
      try {
        renameSync(tmp, target);
      } catch (err) {
        unlinkSync(tmp);
        throw err;
      }
    }
    this.#unsyncedFiles.add(target);
    this.#unsyncedDirs.add(dirname(target));
  }

  /** @internal */
  forgetWriter(w: FsBlobWriter): void {
    this.#writers.delete(w);
  }

  /** @internal */
  forgetReader(r: FsBlobReader): void {
    this.#readers.delete(r);
  }

  /** @internal Throws the StorageError every call after close() gets. */
  checkOpen(): void {
    this.#checkOpen();
  }

  /** @internal Wraps a failure with this store's context (typed errors pass through). */
  error(what: string, err: unknown): StrataError {
    return this.#error(what, err);
  }

  // ---- private ----

  #checkOpen(): void {
    if (this.#closed) throw new StorageError(`objectstore '${this.root}' is closed`);
  }

  async #enter(options: CallOptions | undefined): Promise<void> {
    this.#checkOpen();
    throwIfAborted(options?.signal);
    await this.#ready;
    this.#checkOpen();
  }

  #what(digest: B3Digest): string {
    return `blob ${formatB3(digest)} in objectstore '${this.root}'`;
  }

  /** Whether a new blob of this size goes to the small-blob store. */
  #packsSmall(size: number): boolean {
    return this.#opts.smallBlobMaxBytes > 0 && size <= this.#opts.smallBlobMaxBytes;
  }

  #error(what: string, err: unknown): StrataError {
    if (err instanceof StrataError) return err;
    return new StorageError(`${what} in objectstore '${this.root}'`, { cause: err });
  }

  async #init(): Promise<void> {
    try {
      const firstCreated = await fsp.mkdir(this.root, { recursive: true });
      // Newly created ancestors (and the root's own entry in its parent) must
      // be durable too, or a power loss could take every synced blob with them.
      const fresh: string[] = [];
      if (firstCreated !== undefined) {
        const stop = dirname(firstCreated);
        for (let d = this.root; d !== stop && d !== dirname(d); d = dirname(d)) fresh.push(d);
        fresh.push(stop);
      }
      let created = fresh.length > 0;
      for (const dir of [this.#blobsDir, this.#tmpDir]) created = (await mkdirNew(dir)) || created;
      const existing = new Set(await fsp.readdir(this.#blobsDir));
      for (let i = 0; i < 256; i++) {
        const shard = i.toString(16).padStart(2, "0");
        if (!existing.has(shard)) {
          created = (await mkdirNew(join(this.#blobsDir, shard))) || created;
        }
      }
      // New directories are made durable once, here, so sync() only has to
      // care about the shard directories the blob names live in.
      if (created) {
        await Promise.all([this.#blobsDir, ...new Set([this.root, ...fresh])].map(fsyncDir));
      }
      await this.#removeStaleTemps();
      // Opened even with smallBlobMaxBytes 0: small blobs stored before stay readable.
      this.#small = await SmallBlobs.open(this.root);
    } catch (err) {
      throw this.#error("opening the store", err);
    }
  }

  async #removeStaleTemps(): Promise<void> {
    const cutoff = Date.now() - this.#opts.staleTempAgeMs;
    for (const name of await fsp.readdir(this.#tmpDir)) {
      const path = join(this.#tmpDir, name);
      try {
        const st = await fsp.lstat(path);
        if (st.mtimeMs <= cutoff) await fsp.rm(path, { recursive: true, force: true });
      } catch (err) {
        if (errno(err) !== "ENOENT") throw err; // another process cleaned it first
      }
    }
  }

  async #syncPending(options: CallOptions | undefined): Promise<void> {
    const files = this.#unsyncedFiles;
    const dirs = this.#unsyncedDirs;
    this.#unsyncedFiles = new Set();
    this.#unsyncedDirs = new Set();
    const signal = options?.signal;
    try {
      throwIfAborted(signal);
      // Data first, then names: a name made durable must point at durable data.
      if (this.#small !== undefined) await this.#small.sync();
      await forEachLimit(files, this.#opts.syncConcurrency, signal, fsyncFile);
      await forEachLimit(dirs, this.#opts.syncConcurrency, signal, fsyncDir);
    } catch (err) {
      for (const f of files) this.#unsyncedFiles.add(f);
      for (const d of dirs) this.#unsyncedDirs.add(d);
      throw this.#error("syncing blobs", err);
    }
  }
}

type WriterState = "open" | "closing" | "closed" | "aborted" | "failed";

/**
 * Streams one blob into a temp file. Writes are collected in a buffer of
 * `bufferSize` bytes; a full buffer is hashed and handed to a positional
 * write that runs while the caller produces the next buffer (double
 * buffering), so hashing, copying and the kernel write overlap.
 */
class FsBlobWriter implements BlobWriter {
  readonly #service: FsObjectStoreBlobService;
  readonly #bufferSize: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onSignal: (() => void) | undefined;
  readonly #hasher: Blake3Hasher = createBlake3();
  #state: WriterState = "open";
  #busy = false;
  #bytesWritten = 0;
  #buf: Buffer | undefined;
  #bufLength = 0;
  /** The buffer of the write in flight; free again once `#inflight` settled. */
  #spare: Buffer | undefined;
  #inflight: Promise<void> | undefined;
  #filePos = 0;
  #tmpPath: string | undefined;
  #opening: Promise<FileHandle> | undefined;
  #closing: Promise<B3Digest> | undefined;

  constructor(service: FsObjectStoreBlobService, bufferSize: number, signal?: AbortSignal) {
    this.#service = service;
    this.#bufferSize = bufferSize;
    this.#signal = signal;
    if (signal !== undefined) {
      // The openWrite signal covers the writer's whole life: firing it discards the blob.
      this.#onSignal = () => void this.abort(signal.reason);
      signal.addEventListener("abort", this.#onSignal, { once: true });
    }
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  async write(data: Uint8Array, options?: CallOptions): Promise<void> {
    this.#enter(options);
    this.#busy = true;
    try {
      let off = 0;
      while (off < data.length) {
        this.#reserve(data.length - off);
        const n = Math.min(data.length - off, this.#bufferSize - this.#bufLength);
        this.#buf!.set(data.subarray(off, off + n), this.#bufLength);
        this.#bufLength += n;
        off += n;
        if (this.#bufLength === this.#bufferSize) {
          await this.#flush();
          this.#checkAlive(options);
        }
      }
      this.#bytesWritten += data.length;
    } catch (err) {
      throw await this.#fail(err);
    } finally {
      this.#busy = false;
    }
  }

  close(options?: CallOptions): Promise<B3Digest> {
    try {
      this.#enter(options);
    } catch (err) {
      // A close cancelled by its signal discards the blob rather than leave a
      // half-written writer around (other refusals leave the writer as it is).
      if (this.#state === "open" && err instanceof AbortedError) {
        return this.abort(err).then(() => Promise.reject(err));
      }
      return Promise.reject(err);
    }
    this.#state = "closing";
    this.#closing = this.#finish(options);
    return this.#closing;
  }

  async abort(_reason?: unknown): Promise<void> {
    if (this.#state === "closing") {
      // Past the point of no return or about to fail; either way settled soon.
      await this.#closing?.catch(() => undefined);
      return;
    }
    if (this.#state !== "open") return;
    this.#state = "aborted";
    await this.#discard();
  }

  /**
   * Grows the buffer towards `bufferSize` as data comes: an import keeps
   * hundreds of small writers open at once, and a full 1 MiB buffer each
   * would cost hundreds of MiB.
   */
  #reserve(more: number): void {
    const want = Math.min(this.#bufferSize, this.#bufLength + more);
    if (this.#buf !== undefined && this.#buf.length >= want) return;
    const size = Math.min(this.#bufferSize, Math.max(want, 2 * (this.#buf?.length ?? 0), 16 * KiB));
    const grown = Buffer.allocUnsafeSlow(size);
    if (this.#buf !== undefined) this.#buf.copy(grown, 0, 0, this.#bufLength);
    this.#buf = grown;
  }

  async #finish(options: CallOptions | undefined): Promise<B3Digest> {
    try {
      if (this.#opening === undefined && this.#inflight === undefined) {
        // Everything is still in the buffer: store it in one synchronous go.
        const data = (this.#buf ?? Buffer.alloc(0)).subarray(0, this.#bufLength);
        this.#hasher.update(data);
        const digest = this.#hasher.digest() as B3Digest;
        await this.#service.ready;
        this.#checkAlive(options);
        await this.#service.placeSmall(data, digest);
        this.#state = "closed";
        this.#release();
        return digest;
      }
      if (this.#bufLength > 0) await this.#flush();
      await this.#inflight;
      const fh = await this.#file(); // an empty blob still gets its (empty) file
      this.#checkAlive(options);
      this.#opening = undefined;
      await fh.close();
      const digest = this.#hasher.digest() as B3Digest;
      this.#checkAlive(options);
      // The commit point: after the rename the blob is visible and close succeeds.
      await this.#service.place(this.#tmpPath!, digest);
      this.#state = "closed";
      this.#release();
      return digest;
    } catch (err) {
      this.#state = "failed";
      await this.#discard();
      throw this.#service.error("writing a blob", err);
    }
  }

  #enter(options: CallOptions | undefined): void {
    // The signal first: a writer aborted by its openWrite signal reports "Aborted".
    throwIfAborted(this.#signal);
    if (this.#state !== "open") {
      throw new InvalidInputError(`blob writer is ${this.#state}; it accepts no more calls`);
    }
    if (this.#busy) {
      throw new InvalidInputError("blob writer: call made while a write() is still pending");
    }
    this.#service.checkOpen();
    throwIfAborted(options?.signal);
  }

  /** Checked after every await: abort() or the service's close() may have run meanwhile. */
  #checkAlive(options: CallOptions | undefined): void {
    if (this.#state === "aborted") throw new AbortedError("blob writer was aborted");
    throwIfAborted(this.#signal);
    throwIfAborted(options?.signal);
  }

  /** Hashes the full buffer and starts writing it; waits only for the previous write. */
  async #flush(): Promise<void> {
    const buf = this.#buf!;
    const length = this.#bufLength;
    // Hashing whole buffers (not each small write) lets BLAKE3 use its SIMD
    // paths, and it runs while the previous buffer is still being written.
    this.#hasher.update(buf.subarray(0, length));
    if (this.#inflight !== undefined) await this.#inflight;
    const fh = await this.#file();
    if (this.#state === "aborted") throw new AbortedError("blob writer was aborted");
    const pending = writeFully(fh, buf, length, this.#filePos);
    pending.catch(() => undefined); // awaited by the next flush or close
    this.#inflight = pending;
    this.#filePos += length;
    this.#buf = this.#spare;
    this.#spare = buf;
    this.#bufLength = 0;
  }

  /** The temp file, created on first use so that openWrite stays synchronous. */
  #file(): Promise<FileHandle> {
    if (this.#state === "aborted")
      return Promise.reject(new AbortedError("blob writer was aborted"));
    this.#opening ??= (async () => {
      await this.#service.ready;
      for (let attempt = 0; ; attempt++) {
        const path = this.#service.tempPath();
        try {
          const fh = await fsp.open(
            path,
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
            0o444,
          );
          this.#tmpPath = path;
          return fh;
        } catch (err) {
          // 128 random bits do not collide; a few retries cover a hostile tmp/.
          if (errno(err) !== "EEXIST" || attempt >= 3) throw err;
        }
      }
    })();
    return this.#opening;
  }

  /** Moves to "failed" and cleans up, unless abort() got there first; returns the error to throw. */
  async #fail(err: unknown): Promise<StrataError> {
    if (this.#state === "aborted" && !(err instanceof StrataError)) {
      // An fs error caused by abort() closing the file under us.
      return new AbortedError("blob writer was aborted", { cause: err });
    }
    if (this.#state === "open") {
      this.#state = "failed";
      await this.#discard();
    }
    return this.#service.error("writing a blob", err);
  }

  /** Waits for everything in flight, then closes and deletes the temp file. Never throws. */
  async #discard(): Promise<void> {
    this.#buf = undefined;
    this.#spare = undefined;
    await this.#inflight?.catch(() => undefined);
    const fh = await this.#opening?.catch(() => undefined);
    this.#opening = undefined;
    await fh?.close().catch(() => undefined);
    if (this.#tmpPath !== undefined) await fsp.unlink(this.#tmpPath).catch(() => undefined);
    this.#release();
  }

  #release(): void {
    if (this.#onSignal !== undefined) this.#signal?.removeEventListener("abort", this.#onSignal);
    this.#service.forgetWriter(this);
  }
}

/** A small blob read whole at open: no file handle stays open. Hands out copies. */
class InMemoryBlobReader implements BlobReader {
  readonly size: number;
  readonly #data: Uint8Array;
  readonly #service: FsObjectStoreBlobService;
  #closed = false;

  constructor(data: Uint8Array, service: FsObjectStoreBlobService) {
    this.#data = data;
    this.size = data.length;
    this.#service = service;
  }

  async read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    this.#check(offset, options);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new InvalidInputError(`blob read: bad length ${length}`);
    }
    return this.#data.slice(offset, Math.min(this.size, offset + length));
  }

  /** Copies `length` bytes at `position` into `target` at `targetOffset` (see FsBlobReader.readInto). */
  async readInto(
    target: Uint8Array,
    targetOffset: number,
    length: number,
    position: number,
    options?: CallOptions,
  ): Promise<void> {
    this.#check(position, options);
    checkReadInto(this.size, target, targetOffset, length, position, "a blob");
    target.set(this.#data.subarray(position, position + length), targetOffset);
  }

  async *stream(offset = 0, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    this.#check(offset, options);
    if (offset < this.size) {
      // Transient consumers do not keep chunks, so they may see our buffer.
      yield options?.transient ? this.#data.subarray(offset) : this.#data.slice(offset);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #check(offset: number, options: CallOptions | undefined): void {
    if (this.#closed) throw new StorageError("blob reader is closed");
    this.#service.checkOpen();
    throwIfAborted(options?.signal);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.size) {
      throw new InvalidInputError(`blob read: offset ${offset} outside 0..${this.size}`);
    }
  }
}

/** Range reads on one open blob file (positional reads: many streams may share it). */
class FsBlobReader implements BlobReader {
  readonly size: number;
  readonly #service: FsObjectStoreBlobService;
  readonly #fh: FileHandle;
  readonly #what: string;
  readonly #chunkSize: number;
  readonly #readAhead: number;
  #closed = false;

  constructor(
    service: FsObjectStoreBlobService,
    fh: FileHandle,
    size: number,
    what: string,
    opts: ResolvedOptions,
  ) {
    this.#service = service;
    this.#fh = fh;
    this.size = size;
    this.#what = what;
    this.#chunkSize = opts.readChunkSize;
    this.#readAhead = opts.readAhead;
  }

  async read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    this.#check(options);
    this.#checkOffset(offset);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new InvalidInputError(`read of ${this.#what}: bad length ${length}`);
    }
    return this.#readAt(offset, Math.min(length, this.size - offset));
  }

  /**
   * Reads exactly `length` bytes at `position` into `target` at
   * `targetOffset`: a positional read into memory the caller owns (and
   * recycles), no allocation. Reads of one reader may run concurrently.
   * A blob shorter than promised is an IntegrityError.
   */
  async readInto(
    target: Uint8Array,
    targetOffset: number,
    length: number,
    position: number,
    options?: CallOptions,
  ): Promise<void> {
    this.#check(options);
    checkReadInto(this.size, target, targetOffset, length, position, this.#what);
    await this.#readAt(position, length, target, targetOffset);
  }

  async *stream(offset = 0, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    this.#check(options);
    this.#checkOffset(offset);
    // Reads run ahead of the consumer so the disk (or page cache copy) and
    // the consumer work at the same time. A transient consumer gets chunks
    // from a ring of readAhead + 1 recycled buffers: one it holds, the rest
    // being filled; a buffer is refilled only after the consumer asked for
    // the chunk after the one it held.
    const transient = options?.transient === true;
    const ring = transient
      ? Array.from({ length: this.#readAhead + 1 }, () => Buffer.allocUnsafeSlow(this.#chunkSize))
      : undefined;
    let issued = 0;
    const queue: Promise<Uint8Array>[] = [];
    let next = offset;
    const fill = (): void => {
      while (queue.length < this.#readAhead && next < this.size) {
        const n = Math.min(this.#chunkSize, this.size - next);
        const into = ring?.[issued++ % ring.length];
        const p = this.#readAt(next, n, into);
        p.catch(() => undefined); // awaited below, or dropped when the consumer stops early
        queue.push(p);
        next += n;
      }
    };
    fill();
    while (queue.length > 0) {
      const chunk = await queue.shift()!;
      this.#check(options);
      if (!transient) fill();
      yield chunk;
      if (transient) fill();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#service.forgetReader(this);
    // FileHandle.close waits for reads still in flight.
    await this.#fh.close().catch(() => undefined);
  }

  #check(options: CallOptions | undefined): void {
    if (this.#closed) throw new StorageError(`reader of ${this.#what} is closed`);
    this.#service.checkOpen();
    throwIfAborted(options?.signal);
  }

  #checkOffset(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.size) {
      throw new InvalidInputError(
        `read of ${this.#what}: offset ${offset} outside 0..${this.size}`,
      );
    }
  }

  /**
   * Exactly `length` bytes at `offset`, into `into` (at `at`) or else a
   * fresh buffer the caller may keep.
   */
  async #readAt(offset: number, length: number, into?: Uint8Array, at = 0): Promise<Uint8Array> {
    // Unpooled: a pooled Buffer would share its memory with unrelated data.
    const buf = into ?? Buffer.allocUnsafeSlow(length);
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await this.#fh.read(buf, at + done, length - done, offset + done);
        if (bytesRead === 0) {
          throw new IntegrityError(
            `${this.#what} is shorter than its recorded size ${this.size} (EOF at ${offset + done})`,
          );
        }
        done += bytesRead;
      }
    } catch (err) {
      if (err instanceof StrataError) throw err;
      throw new StorageError(`reading ${this.#what} at offset ${offset + done}`, { cause: err });
    }
    return new Uint8Array(buf.buffer, buf.byteOffset + at, length);
  }
}

// ---- helpers ----

/**
 * A named blob file counts only when it is a regular file and non-empty
 * (except the empty blob itself). A zero-length name is what a rename looks
 * like after a power loss on delayed-allocation filesystems when the data was
 * not synced; it must not dedup future writes of that content.
 */
function isCompleteBlob(st: Stats, digest: B3Digest): boolean {
  return st.isFile() && (st.size > 0 || toHex(digest) === EMPTY_BLOB_HEX);
}

function toHex(d: Uint8Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("hex");
}

function errno(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string"
    ? err.code
    : undefined;
}

/** The bounds of a `readInto`: inside the blob and inside the target, or InvalidInputError. */
function checkReadInto(
  size: number,
  target: Uint8Array,
  targetOffset: number,
  length: number,
  position: number,
  what: string,
): void {
  if (
    !Number.isSafeInteger(length) ||
    length < 0 ||
    !Number.isSafeInteger(position) ||
    position < 0 ||
    position + length > size ||
    targetOffset < 0 ||
    targetOffset + length > target.length
  ) {
    throw new InvalidInputError(
      `read of ${what}: ${length} bytes at ${position} into ${targetOffset} outside the blob or the target`,
    );
  }
}

/** mkdir that reports whether it created the directory. */
async function mkdirNew(path: string): Promise<boolean> {
  try {
    await fsp.mkdir(path);
    return true;
  } catch (err) {
    if (errno(err) === "EEXIST") return false;
    throw err;
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, length: number, pos: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, done, length - done, pos + done);
    done += bytesWritten;
  }
}

async function fsyncFile(path: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, "r");
  } catch (err) {
    if (errno(err) === "ENOENT") return; // deleted since (garbage collection): nothing to keep
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; stops starting new ones after a failure or abort. */
async function forEachLimit<T>(
  items: Iterable<T>,
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const it = items[Symbol.iterator]();
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      const r = it.next();
      if (r.done) return;
      try {
        throwIfAborted(signal);
        await fn(r.value);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  if (failure !== undefined) throw failure.err;
}
