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
import { throwIfAborted, UnavailableError } from "../../../errors.js";
import { type Logger, logger } from "../../../observability/log.js";
import type { CallOptions } from "../../call-options.js";
import { backoffDelay, type RetryPolicy, retrying } from "../../combinators/retry-policy.js";
import {
  type CombinatorDeps,
  CombinatorState,
  isUnavailable,
  type Member,
  sleep,
} from "../../combinators/support.js";
import { type B3Digest, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta, StreamOptions } from "../service.js";

export interface RetryBlobInit {
  readonly inner: Member<BlobService>;
  readonly policy: RetryPolicy;
}

export class RetryBlobService implements BlobService {
  readonly #inner: Member<BlobService>;
  readonly #policy: RetryPolicy;
  readonly #state: CombinatorState;
  readonly #log: Logger;

  constructor(init: RetryBlobInit, deps: CombinatorDeps = {}) {
    const name = deps.instanceName ?? "anonymous";
    this.#inner = init.inner;
    this.#policy = init.policy;
    this.#state = new CombinatorState(`blob retry '${name}'`, [init.inner.service]);
    this.#log = deps.log ?? logger("castore.blob.retry", { instance: name });
  }

  async #retry<T>(
    op: string,
    options: CallOptions | undefined,
    call: () => Promise<T>,
  ): Promise<T> {
    this.#state.check(options);
    return retrying(
      this.#policy,
      `${this.#state.what}: ${op} on '${this.#inner.name}'`,
      options,
      this.#log,
      () => {
        this.#state.check(options);
        return call();
      },
    );
  }

  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    return this.#retry(`has ${formatB3(digest)}`, options, () =>
      this.#inner.service.has(digest, options),
    );
  }

  async openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    const what = `${this.#state.what}: reading ${formatB3(digest)} from '${this.#inner.name}'`;
    const reader = await this.#retry(`openRead ${formatB3(digest)}`, options, () =>
      this.#inner.service.openRead(digest, options),
    );
    return reader === undefined
      ? undefined
      : new RetryReader(reader, this.#policy, what, this.#log);
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#state.check(options);
    return this.#inner.service.openWrite(options);
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#retry(`chunks ${formatB3(digest)}`, options, () =>
      this.#inner.service.chunks(digest, options),
    );
  }

  sync(options?: CallOptions): Promise<void> {
    return this.#retry("sync", options, () => this.#inner.service.sync(options));
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

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

  async *stream(offset = 0, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    let pos = offset;
    let failed = 0;
    for (;;) {
      throwIfAborted(options?.signal);
      try {
        for await (const chunk of this.#inner.stream(pos, options)) {
          pos += chunk.length;
          failed = 0;
          yield chunk;
        }
        return;
      } catch (err) {
        if (!isUnavailable(err) || options?.signal?.aborted === true) throw err;
        failed++;
        if (failed >= this.#policy.attempts) {
          throw new UnavailableError(
            `${this.#what}: giving up after ${failed} attempts (stream at byte ${pos})`,
            { cause: err },
          );
        }
        const delay = backoffDelay(this.#policy, failed + 1);
        this.#log.debug(`stream failed at byte ${pos}, resuming in ${delay} ms`, { error: err });
        await sleep(delay, options?.signal);
      }
    }
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
