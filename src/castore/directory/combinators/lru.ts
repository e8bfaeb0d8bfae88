/**
 * Keeps the most recently used directories of an inner store in memory (the
 * `lru` type): `get` answers from memory when it can, `put` and the
 * directories passing through `getRecursive` are remembered. Misses are not
 * remembered (that is the `negative_ttl_ms` option of cache, priority and
 * race). Directories are immutable and content-addressed, so a remembered
 * one never goes stale. Browser-safe.
 */
import type { CallOptions } from "../../call-options.js";
import { LruMap } from "../../combinators/lru-map.js";
import {
  type CombinatorDeps,
  CombinatorState,
  guarded,
  innerError,
  type Member,
} from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter } from "./putters.js";

export interface LruDirectoryInit {
  readonly inner: Member<DirectoryService>;
  /** How many directories are kept (>= 1). */
  readonly capacity: number;
}

export class LruDirectoryService implements DirectoryService {
  readonly #inner: Member<DirectoryService>;
  readonly #entries: LruMap<Directory>;
  readonly #state: CombinatorState;

  constructor(init: LruDirectoryInit, deps: CombinatorDeps = {}) {
    this.#inner = init.inner;
    this.#entries = new LruMap(init.capacity);
    this.#state = new CombinatorState(`directory lru '${deps.instanceName ?? "anonymous"}'`, [
      init.inner.service,
    ]);
  }

  /** Directories held in memory (for tests and diagnostics). */
  get size(): number {
    return this.#entries.size;
  }

  #context(op: string, digest?: B3Digest): string {
    const what = digest === undefined ? op : `${op} ${formatB3(digest)}`;
    return `${this.#state.what}: inner store '${this.#inner.name}' failed (${what})`;
  }

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    const held = this.#entries.get(key);
    if (held !== undefined) return held;
    let directory: Directory | undefined;
    try {
      directory = await this.#inner.service.get(digest, options);
    } catch (err) {
      throw innerError(err, this.#context("get", digest));
    }
    if (directory !== undefined) this.#entries.set(key, directory);
    return directory;
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    this.#state.check(options);
    let digest: B3Digest;
    try {
      digest = await this.#inner.service.put(directory, options);
    } catch (err) {
      throw innerError(err, this.#context("put"));
    }
    this.#entries.set(digestKey(digest), directory);
    return digest;
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    for await (const directory of guarded(
      this.#inner.service.getRecursive(root, options),
      this.#state,
      options,
      this.#context("getRecursive", root),
    )) {
      this.#entries.set(digestKey(directory.digest()), directory);
      yield directory;
    }
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => this.#inner.service.putMultiple(options),
      this.#state,
      undefined,
      this.#context("putMultiple"),
    );
  }

  close(): Promise<void> {
    this.#entries.clear();
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
