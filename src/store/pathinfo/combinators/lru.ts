/**
 * Keeps the most recently used path infos of an inner store in memory (the
 * `lru` type): `get` answers from memory when it can; `put` and what `get`
 * fetched are remembered. Entries are kept in their protobuf encoding, so
 * callers can change neither what is held through what they passed in nor
 * through what they got back (as with the memory backend). Misses are not
 * remembered (that is `negative_ttl_ms` of cache, priority and race); `list`
 * goes to the inner store. Browser-safe.
 */
import type { CallOptions } from "../../../castore/call-options.js";
import { type LruInit, LruInner } from "../../../castore/combinators/lru-inner.js";
import { type CombinatorDeps, guarded } from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import type { PathInfo } from "../../path-info.js";
import { decodePathInfo, encodePathInfo } from "../../path-info-proto.js";
import type { PathInfoService } from "../service.js";
import { describeDigest, PATH_INFO_KIND } from "./union-list.js";

export type LruPathInfoInit = LruInit<PathInfoService>;

export class LruPathInfoService implements PathInfoService {
  readonly #lru: LruInner<PathInfoService, PathInfo, Uint8Array>;

  constructor(init: LruPathInfoInit, deps: CombinatorDeps = {}) {
    this.#lru = new LruInner(PATH_INFO_KIND, init, deps, {
      encode: encodePathInfo,
      decode: decodePathInfo,
    });
  }

  /** Path infos held in memory (for tests and diagnostics). */
  get size(): number {
    return this.#lru.size;
  }

  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    return this.#lru.get(digestKey(digest), `get ${describeDigest(digest)}`, options, (s) =>
      s.get(digest, options),
    );
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    const stored = await this.#lru.call(`put ${info.storePath.absolute}`, options, (s) =>
      s.put(info, options),
    );
    this.#lru.remember(digestKey(stored.storePath.digest), stored);
    return stored;
  }

  list(options?: CallOptions): AsyncIterable<PathInfo> {
    const lru = this.#lru;
    return guarded(lru.inner.service.list(options), lru.state, options, lru.context("list"));
  }

  close(): Promise<void> {
    return this.#lru.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
