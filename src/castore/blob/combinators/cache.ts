/**
 * A blob cache: a fast `near` store in front of a slow `far` one (the `cache`
 * type, ARCHITECTURE §4). Browser-safe.
 *
 * Reads: near first; on a miss, far. A blob that comes from far is written
 * into near while it is streamed to the reader (a tee, chunk by chunk: a
 * blob is never held in memory whole): the first `stream(0)` of a reader
 * opened from far fills near, and the fill is verified — near's writer
 * computes the BLAKE3 digest, and a far store that sent other bytes than the
 * digest promises fails the stream with an IntegrityError at its end. Range
 * reads (`read`, `stream(offset > 0)`) are served from far and do not fill
 * (NAR rendering, `cat` and the gRPC `Read` all stream from 0). A failing
 * near store does not fail a read: the fill is given up with a warning.
 *
 * Writes go to near; with `write: "through"` to near and far at once (the
 * writer closes both and checks that they agree).
 *
 * `negativeTtlMs` remembers blobs neither tier has; a blob written through
 * this cache is forgotten as a miss at once.
 */
import { IntegrityError } from "../../../errors.js";
import { type Logger, logger } from "../../../observability/log.js";
import { bytesEqual } from "../../bytes.js";
import type { CallOptions } from "../../call-options.js";
import { NegativeCache } from "../../combinators/negative-cache.js";
import {
  type CombinatorDeps,
  CombinatorState,
  innerError,
  type Member,
} from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta, StreamOptions } from "../service.js";
import { ForgettingWriter } from "./forgetting-writer.js";

export interface CacheBlobInit {
  readonly near: Member<BlobService>;
  readonly far: Member<BlobService>;
  /** `near` (default): writes go to near only; `through`: to near and far. */
  readonly write?: "near" | "through";
  /** How long a miss of both tiers is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class CacheBlobService implements BlobService {
  readonly #near: Member<BlobService>;
  readonly #far: Member<BlobService>;
  readonly #through: boolean;
  readonly #misses: NegativeCache;
  readonly #state: CombinatorState;
  readonly #log: Logger;
  /** Digests being filled into near by a reader's stream right now (one tee per blob). */
  readonly #filling = new Set<string>();

  constructor(init: CacheBlobInit, deps: CombinatorDeps = {}) {
    const name = deps.instanceName ?? "anonymous";
    this.#near = init.near;
    this.#far = init.far;
    this.#through = init.write === "through";
    this.#misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    this.#state = new CombinatorState(`blob cache '${name}'`, [
      init.near.service,
      init.far.service,
    ]);
    this.#log = deps.log ?? logger("castore.blob.cache", { instance: name });
  }

  #tier(tier: Member<BlobService>, op: string, digest?: B3Digest): string {
    const which = tier === this.#near ? "near" : "far";
    const what = digest === undefined ? op : `${op} ${formatB3(digest)}`;
    return `${this.#state.what}: ${which} tier '${tier.name}' failed (${what})`;
  }

  async #ask<T>(
    tier: Member<BlobService>,
    op: string,
    digest: B3Digest | undefined,
    call: () => Promise<T>,
  ): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw innerError(err, this.#tier(tier, op, digest));
    }
  }

  async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return false;
    if (await this.#ask(this.#near, "has", digest, () => this.#near.service.has(digest, options))) {
      return true;
    }
    if (await this.#ask(this.#far, "has", digest, () => this.#far.service.has(digest, options))) {
      return true;
    }
    this.#misses.add(key);
    return false;
  }

  async openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const near = await this.#ask(this.#near, "openRead", digest, () =>
      this.#near.service.openRead(digest, options),
    );
    if (near !== undefined) return near;
    const far = await this.#ask(this.#far, "openRead", digest, () =>
      this.#far.service.openRead(digest, options),
    );
    if (far === undefined) {
      this.#misses.add(key);
      return undefined;
    }
    return new FillingReader(far, digest, {
      near: this.#near,
      filling: this.#filling,
      log: this.#log,
      what: this.#state.what,
      farName: this.#far.name,
    });
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#state.check(options);
    const near = this.#near.service.openWrite(options);
    let writer: BlobWriter = near;
    if (this.#through) {
      let far: BlobWriter;
      try {
        far = this.#far.service.openWrite(options);
      } catch (err) {
        void near.abort(err);
        throw innerError(err, this.#tier(this.#far, "openWrite"));
      }
      writer = new ThroughWriter(near, far, this.#state.what);
    }
    return this.#misses.enabled ? new ForgettingWriter(writer, this.#misses) : writer;
  }

  async chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const near = await this.#ask(this.#near, "chunks", digest, () =>
      this.#near.service.chunks(digest, options),
    );
    if (near !== undefined) return near;
    const far = await this.#ask(this.#far, "chunks", digest, () =>
      this.#far.service.chunks(digest, options),
    );
    if (far === undefined) this.#misses.add(key);
    return far;
  }

  async sync(options?: CallOptions): Promise<void> {
    this.#state.check(options);
    await Promise.all([
      this.#ask(this.#near, "sync", undefined, () => this.#near.service.sync(options)),
      this.#through
        ? this.#ask(this.#far, "sync", undefined, () => this.#far.service.sync(options))
        : undefined,
    ]);
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface FillTarget {
  readonly near: Member<BlobService>;
  readonly filling: Set<string>;
  readonly log: Logger;
  readonly what: string;
  readonly farName: string;
}

/** A reader of a blob found in far; its first whole stream fills near. */
class FillingReader implements BlobReader {
  readonly #far: BlobReader;
  readonly #digest: B3Digest;
  readonly #target: FillTarget;

  constructor(far: BlobReader, digest: B3Digest, target: FillTarget) {
    this.#far = far;
    this.#digest = digest;
    this.#target = target;
  }

  get size(): number {
    return this.#far.size;
  }

  read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    return this.#far.read(offset, length, options);
  }

  stream(offset = 0, options?: StreamOptions): AsyncIterable<Uint8Array> {
    const key = digestKey(this.#digest);
    if (offset !== 0 || this.#target.filling.has(key)) return this.#far.stream(offset, options);
    return this.#tee(key, options);
  }

  close(): Promise<void> {
    return this.#far.close();
  }

  #giveUp(writer: BlobWriter, err: unknown): undefined {
    this.#target.log.warn(`filling the near tier failed; serving from far without caching`, {
      blob: formatB3(this.#digest),
      store: this.#target.near.name,
      error: err,
    });
    void writer.abort(err).catch(() => undefined);
    return undefined;
  }

  async *#tee(key: string, options: StreamOptions | undefined): AsyncGenerator<Uint8Array> {
    if (this.#target.filling.has(key)) {
      // Another stream started filling since this one was asked for.
      yield* this.#far.stream(0, options);
      return;
    }
    this.#target.filling.add(key);
    let writer: BlobWriter | undefined;
    try {
      try {
        writer = this.#target.near.service.openWrite();
      } catch (err) {
        this.#target.log.warn("cannot write to the near tier; serving from far without caching", {
          blob: formatB3(this.#digest),
          store: this.#target.near.name,
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
            `${this.#target.what}: far tier '${this.#target.farName}' sent blob ${formatB3(this.#digest)} with content whose digest is ${formatB3(digest)}`,
          );
        }
        if (digest !== undefined) {
          this.#target.log.debug("filled the near tier", { blob: formatB3(digest) });
        }
      }
    } finally {
      this.#target.filling.delete(key);
      // The consumer stopped early or the stream failed: nothing half-written stays.
      if (writer !== undefined) await writer.abort().catch(() => undefined);
    }
  }
}

/** Writes one blob to near and far at once; both must end with the same digest. */
class ThroughWriter implements BlobWriter {
  readonly #near: BlobWriter;
  readonly #far: BlobWriter;
  readonly #what: string;

  constructor(near: BlobWriter, far: BlobWriter, what: string) {
    this.#near = near;
    this.#far = far;
    this.#what = what;
  }

  get bytesWritten(): number {
    return this.#near.bytesWritten;
  }

  async write(data: Uint8Array, options?: CallOptions): Promise<void> {
    await Promise.all([this.#near.write(data, options), this.#far.write(data, options)]);
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    const [near, far] = await Promise.allSettled([
      this.#near.close(options),
      this.#far.close(options),
    ]);
    // (When only near failed, the blob may be in far: harmless, far holds verified content.)
    if (near.status === "rejected") throw near.reason;
    if (far.status === "rejected")
      throw innerError(far.reason, `${this.#what}: writing through to far failed`);
    if (!bytesEqual(near.value, far.value)) {
      throw new IntegrityError(
        `${this.#what}: near and far computed different digests (${formatB3(near.value)}, ${formatB3(far.value)})`,
      );
    }
    return near.value;
  }

  async abort(reason?: unknown): Promise<void> {
    await Promise.all([this.#near.abort(reason), this.#far.abort(reason)]);
  }
}
