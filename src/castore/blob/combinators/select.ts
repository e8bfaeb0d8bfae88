/**
 * A blob service over several stores read through a selection strategy:
 * the `priority` (in list order) and `race` (concurrently, losers aborted)
 * types (ARCHITECTURE §4; strategies in castore/combinators/select.ts).
 * Browser-safe.
 *
 * Reads (`has`, `openRead`, `chunks`): the first store with a positive
 * answer wins; a failing store is skipped with a warning naming it; all
 * stores failing is an UnavailableError.
 *
 * Writes (`openWrite`, `sync`) go to the first store of the list only — the
 * others are read-only mirrors or substituters from this combinator's point
 * of view. (Put a `cache` in front to keep what is read, or write to the
 * stores directly.)
 *
 * `negativeTtlMs` remembers blobs no store had (only when every store
 * answered: a miss caused by a failing store is not remembered); writing the
 * blob through this combinator forgets the miss.
 */
import type { CallOptions } from "../../call-options.js";
import type { Probe } from "../../combinators/select.js";
import { type SelectInit, SelectStores } from "../../combinators/select-stores.js";
import { BLOB_KIND, type CombinatorDeps } from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta } from "../service.js";
import { ForgettingWriter } from "./forgetting-writer.js";

export type SelectBlobInit = SelectInit<BlobService>;

export class SelectBlobService implements BlobService {
  readonly #stores: SelectStores<BlobService>;

  constructor(init: SelectBlobInit, deps: CombinatorDeps = {}) {
    this.#stores = new SelectStores(BLOB_KIND, init, deps);
  }

  async #select<T>(
    digest: B3Digest,
    op: string,
    probe: Probe<BlobService, T>,
    options: CallOptions | undefined,
    release?: (value: T) => void,
  ): Promise<T | undefined> {
    const key = digestKey(digest);
    const outcome = await this.#stores.select(
      key,
      `${op} ${formatB3(digest)}`,
      probe,
      options,
      release,
    );
    return outcome.value;
  }

  async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    const found = await this.#select(
      digest,
      "has",
      async (s, o) => ((await s.has(digest, o)) ? true : undefined),
      options,
    );
    return found === true;
  }

  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    return this.#select(
      digest,
      "openRead",
      (s, o) => s.openRead(digest, o),
      options,
      (reader) => void reader.close().catch(() => undefined),
    );
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#select(digest, "chunks", (s, o) => s.chunks(digest, o), options);
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#stores.state.check(options);
    const writer = this.#stores.primary.service.openWrite(options);
    const misses = this.#stores.misses;
    return misses.enabled ? new ForgettingWriter(writer, misses) : writer;
  }

  sync(options?: CallOptions): Promise<void> {
    return this.#stores.write("sync", options, (s) => s.sync(options));
  }

  close(): Promise<void> {
    return this.#stores.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
