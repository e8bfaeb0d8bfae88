/**
 * The reader a blob `cache` hands out for a blob found in far: its first
 * whole stream fills near while the bytes go to the consumer (a tee, chunk
 * by chunk: a blob is never held in memory whole), and the fill is verified
 * — near's writer computes the BLAKE3 digest, and a far store that sent
 * other bytes than the digest promises fails the stream with an
 * IntegrityError at its end. A failing near store does not fail the read:
 * the fill is given up with a warning. Browser-safe.
 */
import { IntegrityError } from "../../../errors.js";
import { bytesEqual } from "../../bytes.js";
import type { CallOptions } from "../../call-options.js";
import type { CacheTiers } from "../../combinators/cache-tiers.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, StreamOptions } from "../service.js";

export class FillingReader implements BlobReader {
  readonly #far: BlobReader;
  readonly #digest: B3Digest;
  readonly #tiers: CacheTiers<BlobService>;
  readonly #filling: Set<string>;

  /** `filling` holds the digest keys being filled right now (one tee per blob), shared by the cache's readers. */
  constructor(
    far: BlobReader,
    digest: B3Digest,
    tiers: CacheTiers<BlobService>,
    filling: Set<string>,
  ) {
    this.#far = far;
    this.#digest = digest;
    this.#tiers = tiers;
    this.#filling = filling;
  }

  get size(): number {
    return this.#far.size;
  }

  /** Range reads are served from far and do not fill. */
  read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    return this.#far.read(offset, length, options);
  }

  stream(offset = 0, options?: StreamOptions): AsyncIterable<Uint8Array> {
    const key = digestKey(this.#digest);
    if (offset !== 0 || this.#filling.has(key)) return this.#far.stream(offset, options);
    return this.#tee(key, options);
  }

  close(): Promise<void> {
    return this.#far.close();
  }

  #giveUp(writer: BlobWriter, err: unknown): undefined {
    this.#tiers.fillFailed({ blob: formatB3(this.#digest) }, err);
    void writer.abort(err).catch(() => undefined);
    return undefined;
  }

  async *#tee(key: string, options: StreamOptions | undefined): AsyncGenerator<Uint8Array> {
    if (this.#filling.has(key)) {
      // Another stream started filling since this one was asked for.
      yield* this.#far.stream(0, options);
      return;
    }
    this.#filling.add(key);
    let writer: BlobWriter | undefined;
    try {
      try {
        writer = this.#tiers.near.service.openWrite();
      } catch (err) {
        this.#tiers.log.warn("cannot write to the near tier; serving from far without caching", {
          blob: formatB3(this.#digest),
          store: this.#tiers.near.name,
          error: err,
        });
      }
      for await (const chunk of this.#far.stream(0, options)) {
        if (writer !== undefined) {
          // Written before it is handed out: the consumer may modify (or, for
          // transient streams, the far store may recycle) the chunk afterwards.
          try {
            await writer.write(chunk);
          } catch (err) {
            writer = this.#giveUp(writer, err);
          }
        }
        yield chunk;
      }
      if (writer !== undefined) {
        const w = writer;
        writer = undefined;
        let digest: B3Digest | undefined;
        try {
          digest = await w.close();
        } catch (err) {
          this.#giveUp(w, err);
        }
        if (digest !== undefined && !bytesEqual(digest, this.#digest)) {
          throw new IntegrityError(
            `${this.#tiers.state.what}: far tier '${this.#tiers.far.name}' sent blob ${formatB3(this.#digest)} with content whose digest is ${formatB3(digest)}`,
          );
        }
        if (digest !== undefined) {
          this.#tiers.log.debug("filled the near tier", { blob: formatB3(digest) });
        }
      }
    } finally {
      this.#filling.delete(key);
      // The consumer stopped early or the stream failed: nothing half-written stays.
      if (writer !== undefined) await writer.abort().catch(() => undefined);
    }
  }
}
