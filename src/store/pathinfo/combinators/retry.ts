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
import { RetriedInner, type RetryInit } from "../../../castore/combinators/retried-inner.js";
import type { CombinatorDeps } from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import type { PathInfo } from "../../path-info.js";
import type { PathInfoService } from "../service.js";
import { describeDigest, PATH_INFO_KIND } from "./union-list.js";

export type RetryPathInfoInit = RetryInit<PathInfoService>;

export class RetryPathInfoService implements PathInfoService {
  readonly #retried: RetriedInner<PathInfoService>;

  constructor(init: RetryPathInfoInit, deps: CombinatorDeps = {}) {
    this.#retried = new RetriedInner(PATH_INFO_KIND, init, deps);
  }

  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    return this.#retried.call(`get ${describeDigest(digest)}`, options, (s) =>
      s.get(digest, options),
    );
  }

  put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    return this.#retried.call(`put ${info.storePath.absolute}`, options, (s) =>
      s.put(info, options),
    );
  }

  list(options?: CallOptions): AsyncGenerator<PathInfo> {
    return this.#retried.restarting(
      "list",
      options,
      (s) => s.list(options),
      (info) => digestKey(info.storePath.digest),
      { stream: "listing", items: "entries" },
    );
  }

  close(): Promise<void> {
    return this.#retried.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
