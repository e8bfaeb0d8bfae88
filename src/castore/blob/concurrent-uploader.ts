/**
 * Uploads small blobs concurrently with a bounded number of bytes in flight
 * (the counterpart of Snix's ConcurrentBlobUploader): an import of thousands
 * of small files must not wait for one upload round trip per file, and must
 * not buffer an unbounded amount either.
 */
import { IntegrityError, StorageError } from "../../errors.js";
import { concatBytes } from "../bytes.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, digestKey, formatB3 } from "../digest.js";
import type { BlobService } from "./service.js";

export interface ConcurrentUploaderInit {
  /** Bytes of blob contents held in memory for pending uploads (default 64 MiB). */
  maxBytesInFlight?: number;
}

export class ConcurrentBlobUploader {
  readonly #blobs: BlobService;
  readonly #max: number;
  readonly #signal: AbortSignal | undefined;
  #inFlight = 0;
  readonly #pending = new Map<string, Promise<void>>();
  #waiters: (() => void)[] = [];
  #failure: unknown;

  constructor(blobs: BlobService, init: ConcurrentUploaderInit = {}, options: CallOptions = {}) {
    this.#blobs = blobs;
    this.#max = init.maxBytesInFlight ?? 64 * 1024 * 1024;
    this.#signal = options.signal;
  }

  /**
   * Schedules the upload of a blob whose digest the caller computed; the
   * chunks must not be modified afterwards. Resolves once the upload is
   * scheduled (waits while too many bytes are in flight). A blob that
   * exists already, or is being uploaded by this uploader, is not uploaded again.
   */
  async upload(chunks: readonly Uint8Array[], size: number, digest: B3Digest): Promise<void> {
    this.#throwIfFailed();
    const key = digestKey(digest);
    if (this.#pending.has(key)) return;
    while (this.#inFlight > 0 && this.#inFlight + size > this.#max) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
      this.#throwIfFailed();
    }
    this.#inFlight += size;
    const p = this.#run(chunks, digest).then(
      () => this.#release(size),
      (err: unknown) => {
        this.#failure ??= err;
        this.#release(size);
      },
    );
    this.#pending.set(key, p);
  }

  /**
   * `upload` for bytes the caller reuses once this resolves (a ring buffer):
   * they are copied unless the blob is known to exist. A store offering
   * `putBytes` is local, so its `has` is cheap and asked first: a re-import
   * then copies and hashes nothing. Remote stores keep their concurrency
   * (the check runs inside the scheduled upload) and always get a copy.
   */
  async uploadView(view: Uint8Array, digest: B3Digest): Promise<void> {
    this.#throwIfFailed();
    const key = digestKey(digest);
    if (this.#pending.has(key)) return;
    if (this.#blobs.putBytes !== undefined) {
      const opts = this.#signal === undefined ? {} : { signal: this.#signal };
      if (await this.#blobs.has(digest, opts)) {
        this.#pending.set(key, Promise.resolve());
        return;
      }
    }
    await this.upload([view.slice()], view.length, digest);
  }

  /** Waits for every scheduled upload; rejects with the first failure. */
  async finish(): Promise<void> {
    await Promise.all(this.#pending.values());
    this.#throwIfFailed();
  }

  async #run(chunks: readonly Uint8Array[], digest: B3Digest): Promise<void> {
    const opts = this.#signal === undefined ? {} : { signal: this.#signal };
    try {
      const got = await this.#store(chunks, digest, opts);
      if (digestKey(got) !== digestKey(digest)) {
        throw new IntegrityError(
          `uploaded blob hashed to ${formatB3(got)}, expected ${formatB3(digest)}`,
        );
      }
    } catch (err) {
      throw new StorageError(`uploading blob ${formatB3(digest)}`, { cause: err });
    }
  }

  /** Stores the blob unless it exists; resolves to the digest the service computed. */
  async #store(
    chunks: readonly Uint8Array[],
    digest: B3Digest,
    opts: CallOptions,
  ): Promise<B3Digest> {
    if (this.#blobs.putBytes !== undefined) {
      return this.#blobs.putBytes(chunks.length === 1 ? chunks[0]! : concatBytes(chunks), opts);
    }
    if (await this.#blobs.has(digest, opts)) return digest;
    const w = this.#blobs.openWrite(opts);
    try {
      for (const c of chunks) await w.write(c, opts);
      return await w.close(opts);
    } catch (err) {
      await w.abort(err);
      throw err;
    }
  }

  #release(size: number): void {
    this.#inFlight -= size;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}
