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
import type { CallOptions } from "../../call-options.js";
import { RetriedInner, type RetryInit } from "../../combinators/retried-inner.js";
import { type CombinatorDeps, DIRECTORY_KIND } from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter } from "./putters.js";

export type RetryDirectoryInit = RetryInit<DirectoryService>;

export class RetryDirectoryService implements DirectoryService {
  readonly #retried: RetriedInner<DirectoryService>;

  constructor(init: RetryDirectoryInit, deps: CombinatorDeps = {}) {
    this.#retried = new RetriedInner(DIRECTORY_KIND, init, deps);
  }

  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    return this.#retried.call(`get ${formatB3(digest)}`, options, (s) => s.get(digest, options));
  }

  put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    return this.#retried.call("put", options, (s) => s.put(directory, options));
  }

  getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    return this.#retried.restarting(
      `getRecursive ${formatB3(root)}`,
      options,
      (s) => s.getRecursive(root, options),
      (directory) => digestKey(directory.digest()),
      { stream: "closure stream", items: "directories" },
    );
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => this.#retried.inner.service.putMultiple(options),
      this.#retried.state,
      undefined,
      this.#retried.what("putMultiple"),
    );
  }

  close(): Promise<void> {
    return this.#retried.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
