/**
 * Retries the calls of an inner path info service that fail with
 * `Unavailable` (the `retry` type; policy in
 * castore/combinators/retry-policy.ts). Browser-safe.
 *
 * Retried: `get`, `put` (idempotent: a put replaces the entry with the same
 * content) and `list` — a listing that fails part-way is restarted and the
 * store paths already handed out are skipped.
 */
import type { CallOptions } from "../../../castore/call-options.js";
import {
  backoffDelay,
  type RetryPolicy,
  retrying,
} from "../../../castore/combinators/retry-policy.js";
import {
  type CombinatorDeps,
  CombinatorState,
  isUnavailable,
  type Member,
  sleep,
} from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import { throwIfAborted, UnavailableError } from "../../../errors.js";
import { type Logger, logger } from "../../../observability/log.js";
import type { PathInfo } from "../../path-info.js";
import type { PathInfoService } from "../service.js";
import { describeDigest } from "./union-list.js";

export interface RetryPathInfoInit {
  readonly inner: Member<PathInfoService>;
  readonly policy: RetryPolicy;
}

export class RetryPathInfoService implements PathInfoService {
  readonly #inner: Member<PathInfoService>;
  readonly #policy: RetryPolicy;
  readonly #state: CombinatorState;
  readonly #log: Logger;

  constructor(init: RetryPathInfoInit, deps: CombinatorDeps = {}) {
    const name = deps.instanceName ?? "anonymous";
    this.#inner = init.inner;
    this.#policy = init.policy;
    this.#state = new CombinatorState(`path info retry '${name}'`, [init.inner.service]);
    this.#log = deps.log ?? logger("store.pathinfo.retry", { instance: name });
  }

  #what(op: string): string {
    return `${this.#state.what}: ${op} on '${this.#inner.name}'`;
  }

  async #retry<T>(
    op: string,
    options: CallOptions | undefined,
    call: () => Promise<T>,
  ): Promise<T> {
    this.#state.check(options);
    return retrying(this.#policy, this.#what(op), options, this.#log, () => {
      this.#state.check(options);
      return call();
    });
  }

  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    return this.#retry(`get ${describeDigest(digest)}`, options, () =>
      this.#inner.service.get(digest, options),
    );
  }

  put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    return this.#retry(`put ${info.storePath.absolute}`, options, () =>
      this.#inner.service.put(info, options),
    );
  }

  async *list(options?: CallOptions): AsyncGenerator<PathInfo> {
    this.#state.check(options);
    const seen = new Set<string>();
    let failed = 0;
    for (;;) {
      throwIfAborted(options?.signal);
      try {
        for await (const info of this.#inner.service.list(options)) {
          this.#state.check(options);
          const key = digestKey(info.storePath.digest);
          if (seen.has(key)) continue;
          seen.add(key);
          failed = 0;
          yield info;
          this.#state.check(options);
        }
        return;
      } catch (err) {
        this.#state.check(options);
        if (!isUnavailable(err) || options?.signal?.aborted === true) throw err;
        failed++;
        if (failed >= this.#policy.attempts) {
          throw new UnavailableError(`${this.#what("list")}: giving up after ${failed} attempts`, {
            cause: err,
          });
        }
        const delay = backoffDelay(this.#policy, failed + 1);
        this.#log.debug(`listing failed after ${seen.size} entries, restarting in ${delay} ms`, {
          error: err,
        });
        await sleep(delay, options?.signal);
      }
    }
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
