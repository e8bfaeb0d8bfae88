/**
 * Retries the calls of an inner blob service that fail with `Unavailable`
 * (the `retry` type; policy in castore/combinators/retry-policy.ts).
 * Browser-safe.
 *
 * Retried: `has`, `openRead`, `chunks`, `sync`, and on the readers it hands
 * out `read` and `stream` — a stream that fails part-way is resumed from the
 * byte it reached (the attempt count starts over once bytes arrive again).
 * Not retried: uploads (`openWrite`): repeating one would need the bytes
 * again, so the caller repeats the whole upload.
 */
import type { Logger } from "../../../observability/log.js";
import type { CallOptions } from "../../call-options.js";
import { RetriedInner, type RetryInit } from "../../combinators/retried-inner.js";
import { type RetryPolicy, retrying, retryingStream } from "../../combinators/retry-policy.js";
import { BLOB_KIND, type CombinatorDeps } from "../../combinators/support.js";
import { type B3Digest, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta, StreamOptions } from "../service.js";

export type RetryBlobInit = RetryInit<BlobService>;

export class RetryBlobService implements BlobService {
  readonly #retried: RetriedInner<BlobService>;

  constructor(init: RetryBlobInit, deps: CombinatorDeps = {}) {
    this.#retried = new RetriedInner(BLOB_KIND, init, deps);
  }

  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    return this.#retried.call(`has ${formatB3(digest)}`, options, (s) => s.has(digest, options));
  }

  async openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    const r = this.#retried;
    const what = `${r.state.what}: reading ${formatB3(digest)} from '${r.inner.name}'`;
    const reader = await r.call(`openRead ${formatB3(digest)}`, options, (s) =>
      s.openRead(digest, options),
    );
    return reader === undefined ? undefined : new RetryReader(reader, r.policy, what, r.log);
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#retried.state.check(options);
    return this.#retried.inner.service.openWrite(options);
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#retried.call(`chunks ${formatB3(digest)}`, options, (s) =>
      s.chunks(digest, options),
    );
  }

  sync(options?: CallOptions): Promise<void> {
    return this.#retried.call("sync", options, (s) => s.sync(options));
  }

  close(): Promise<void> {
    return this.#retried.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A reader whose range reads are retried and whose streams resume at the byte they reached. */
class RetryReader implements BlobReader {
  readonly #inner: BlobReader;
  readonly #policy: RetryPolicy;
  readonly #what: string;
  readonly #log: Logger;

  constructor(inner: BlobReader, policy: RetryPolicy, what: string, log: Logger) {
    this.#inner = inner;
    this.#policy = policy;
    this.#what = what;
    this.#log = log;
  }

  get size(): number {
    return this.#inner.size;
  }

  read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    return retrying(this.#policy, `${this.#what} (read at ${offset})`, options, this.#log, () =>
      this.#inner.read(offset, length, options),
    );
  }

  stream(offset = 0, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    let pos = offset;
    return retryingStream(this.#policy, this.#what, options, this.#log, {
      open: () => this.#inner.stream(pos, options),
      take: (chunk) => {
        pos += chunk.length;
        return true;
      },
      retryNote: () => `stream failed at byte ${pos}, resuming`,
      giveUpNote: () => ` (stream at byte ${pos})`,
    });
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
