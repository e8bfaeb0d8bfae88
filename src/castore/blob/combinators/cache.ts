/**
 * A blob cache: a fast `near` store in front of a slow `far` one (the `cache`
 * type, ARCHITECTURE §4). Browser-safe.
 *
 * Reads: near first; on a miss, far. A blob that comes from far is written
 * into near while it is streamed to the reader (filling-reader.ts): the
 * first `stream(0)` of a reader opened from far fills near, verified against
 * the digest. Range reads (`read`, `stream(offset > 0)`) are served from far
 * and do not fill (NAR rendering, `cat` and the gRPC `Read` all stream from
 * 0). A failing near store does not fail a read: the fill is given up with a
 * warning.
 *
 * Writes go to near; with `write: "through"` to near and far at once (the
 * writer closes both and checks that they agree).
 *
 * `negativeTtlMs` remembers blobs neither tier has; a blob written through
 * this cache is forgotten as a miss at once.
 *
 * The optional fast paths of near (`hasLocal`, `readSmallInto`, and `putBytes`
 * unless writing through) are offered as this cache's own: what near has,
 * the cache has, and near is where writes go.
 */
import type { CallOptions } from "../../call-options.js";
import { type CacheInit, CacheTiers } from "../../combinators/cache-tiers.js";
import { BLOB_KIND, type CombinatorDeps, innerError } from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta } from "../service.js";
import { FillingReader } from "./filling-reader.js";
import { ForgettingWriter } from "./forgetting-writer.js";
import { ThroughWriter } from "./through-writer.js";

export type CacheBlobInit = CacheInit<BlobService>;

export class CacheBlobService implements BlobService {
  readonly #tiers: CacheTiers<BlobService>;
  /** Digests being filled into near by a reader's stream right now (one tee per blob). */
  readonly #filling = new Set<string>();

  readonly putBytes?: (data: Uint8Array, options?: CallOptions) => Promise<B3Digest>;
  readonly hasLocal?: (digest: B3Digest, size: number) => boolean;
  readonly readSmallInto?: NonNullable<BlobService["readSmallInto"]>;

  constructor(init: CacheBlobInit, deps: CombinatorDeps = {}) {
    const tiers = new CacheTiers(BLOB_KIND, init, deps);
    this.#tiers = tiers;
    const near = tiers.near.service;
    const { putBytes, hasLocal, readSmallInto } = near;
    if (hasLocal !== undefined) this.hasLocal = (digest, size) => hasLocal.call(near, digest, size);
    if (readSmallInto !== undefined)
      this.readSmallInto = (digest, target, at) => readSmallInto.call(near, digest, target, at);
    if (putBytes !== undefined && !tiers.through) {
      this.putBytes = async (data, options) => {
        tiers.state.check(options);
        const digest = await tiers.ask(tiers.near, "putBytes", (s) =>
          putBytes.call(s, data, options),
        );
        tiers.misses.forget(digestKey(digest));
        return digest;
      };
    }
  }

  async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    const found = await this.#tiers.read(
      digestKey(digest),
      `has ${formatB3(digest)}`,
      options,
      async (s) => ((await s.has(digest, options)) ? true : undefined),
    );
    return found === true;
  }

  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    return this.#tiers.read(
      digestKey(digest),
      `openRead ${formatB3(digest)}`,
      options,
      (s) => s.openRead(digest, options),
      (far) => new FillingReader(far, digest, this.#tiers, this.#filling),
    );
  }

  openWrite(options?: CallOptions): BlobWriter {
    const tiers = this.#tiers;
    tiers.state.check(options);
    const near = tiers.near.service.openWrite(options);
    let writer: BlobWriter = near;
    if (tiers.through) {
      let far: BlobWriter;
      try {
        far = tiers.far.service.openWrite(options);
      } catch (err) {
        void near.abort(err);
        throw innerError(err, tiers.context(tiers.far, "openWrite"));
      }
      writer = new ThroughWriter(near, far, tiers.state.what);
    }
    return tiers.misses.enabled ? new ForgettingWriter(writer, tiers.misses) : writer;
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#tiers.read(digestKey(digest), `chunks ${formatB3(digest)}`, options, (s) =>
      s.chunks(digest, options),
    );
  }

  async sync(options?: CallOptions): Promise<void> {
    const tiers = this.#tiers;
    tiers.state.check(options);
    await Promise.all([
      tiers.ask(tiers.near, "sync", (s) => s.sync(options)),
      tiers.through ? tiers.ask(tiers.far, "sync", (s) => s.sync(options)) : undefined,
    ]);
  }

  close(): Promise<void> {
    return this.#tiers.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
