/**
 * A BlobWriter that, once its blob is stored, tells a combinator's negative
 * cache to forget any remembered miss of it (the `negative_ttl_ms` rule: a
 * miss is forgotten as soon as the item is put through the same
 * combinator). Browser-safe.
 */
import type { CallOptions } from "../../call-options.js";
import type { NegativeCache } from "../../combinators/negative-cache.js";
import { type B3Digest, digestKey } from "../../digest.js";
import type { BlobWriter } from "../service.js";

export class ForgettingWriter implements BlobWriter {
  readonly #inner: BlobWriter;
  readonly #misses: NegativeCache;

  constructor(inner: BlobWriter, misses: NegativeCache) {
    this.#inner = inner;
    this.#misses = misses;
  }

  get bytesWritten(): number {
    return this.#inner.bytesWritten;
  }

  write(data: Uint8Array, options?: CallOptions): Promise<void> {
    return this.#inner.write(data, options);
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    const digest = await this.#inner.close(options);
    this.#misses.forget(digestKey(digest));
    return digest;
  }

  abort(reason?: unknown): Promise<void> {
    return this.#inner.abort(reason);
  }
}
