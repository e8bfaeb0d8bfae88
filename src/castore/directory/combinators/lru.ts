/**
 * Keeps the most recently used directories of an inner store in memory (the
 * `lru` type): `get` answers from memory when it can, `put` and the
 * directories passing through `getRecursive` are remembered. Misses are not
 * remembered (that is the `negative_ttl_ms` option of cache, priority and
 * race). Directories are immutable and content-addressed, so a remembered
 * one never goes stale. Browser-safe.
 */
import type { CallOptions } from "../../call-options.js";
import { keptAsIs, type LruInit, LruInner } from "../../combinators/lru-inner.js";
import { type CombinatorDeps, DIRECTORY_KIND, guarded } from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter } from "./putters.js";

export type LruDirectoryInit = LruInit<DirectoryService>;

export class LruDirectoryService implements DirectoryService {
  readonly #lru: LruInner<DirectoryService, Directory, Directory>;

  constructor(init: LruDirectoryInit, deps: CombinatorDeps = {}) {
    this.#lru = new LruInner(DIRECTORY_KIND, init, deps, keptAsIs<Directory>());
  }

  /** Directories held in memory (for tests and diagnostics). */
  get size(): number {
    return this.#lru.size;
  }

  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    return this.#lru.get(digestKey(digest), `get ${formatB3(digest)}`, options, (s) =>
      s.get(digest, options),
    );
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    const digest = await this.#lru.call("put", options, (s) => s.put(directory, options));
    this.#lru.remember(digestKey(digest), directory);
    return digest;
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    const lru = this.#lru;
    for await (const directory of guarded(
      lru.inner.service.getRecursive(root, options),
      lru.state,
      options,
      lru.context(`getRecursive ${formatB3(root)}`),
    )) {
      lru.remember(digestKey(directory.digest()), directory);
      yield directory;
    }
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => this.#lru.inner.service.putMultiple(options),
      this.#lru.state,
      undefined,
      this.#lru.context("putMultiple"),
    );
  }

  close(): Promise<void> {
    return this.#lru.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
