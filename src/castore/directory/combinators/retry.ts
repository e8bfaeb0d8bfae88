/**
 * Retries the calls of an inner directory service that fail with
 * `Unavailable` (the `retry` type; policy in
 * castore/combinators/retry-policy.ts). Browser-safe.
 *
 * Retried: `get`, `put` (idempotent: same content, same digest) and
 * `getRecursive` — a closure stream that fails part-way is restarted and the
 * directories already handed out are skipped (each directory comes once, so
 * the digest says which). Not retried: `putMultiple` uploads (repeating one
 * would need the directories again; the caller repeats the upload).
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
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter } from "./putters.js";

export interface RetryDirectoryInit {
  readonly inner: Member<DirectoryService>;
  readonly policy: RetryPolicy;
}

export class RetryDirectoryService implements DirectoryService {
  readonly #inner: Member<DirectoryService>;
  readonly #policy: RetryPolicy;
  readonly #state: CombinatorState;
  readonly #log: Logger;

  constructor(init: RetryDirectoryInit, deps: CombinatorDeps = {}) {
    const name = deps.instanceName ?? "anonymous";
    this.#inner = init.inner;
    this.#policy = init.policy;
    this.#state = new CombinatorState(`directory retry '${name}'`, [init.inner.service]);
    this.#log = deps.log ?? logger("castore.directory.retry", { instance: name });
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

  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    return this.#retry(`get ${formatB3(digest)}`, options, () =>
      this.#inner.service.get(digest, options),
    );
  }

  put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    return this.#retry("put", options, () => this.#inner.service.put(directory, options));
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    this.#state.check(options);
    const seen = new Set<string>();
    let failed = 0;
    for (;;) {
      throwIfAborted(options?.signal);
      try {
        for await (const directory of this.#inner.service.getRecursive(root, options)) {
          this.#state.check(options);
          const key = digestKey(directory.digest());
          if (seen.has(key)) continue;
          seen.add(key);
          failed = 0;
          yield directory;
          this.#state.check(options);
        }
        return;
      } catch (err) {
        this.#state.check(options);
        if (!isUnavailable(err) || options?.signal?.aborted === true) throw err;
        failed++;
        if (failed >= this.#policy.attempts) {
          throw new UnavailableError(
            `${this.#what(`getRecursive ${formatB3(root)}`)}: giving up after ${failed} attempts`,
            { cause: err },
          );
        }
        const delay = backoffDelay(this.#policy, failed + 1);
        this.#log.debug(
          `closure stream failed after ${seen.size} directories, restarting in ${delay} ms`,
          {
            error: err,
          },
        );
        await sleep(delay, options?.signal);
      }
    }
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => this.#inner.service.putMultiple(options),
      this.#state,
      undefined,
      this.#what("putMultiple"),
    );
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
