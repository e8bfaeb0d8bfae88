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
import { LruMap } from "../../../castore/combinators/lru-map.js";
import {
  type CombinatorDeps,
  CombinatorState,
  guarded,
  innerError,
  type Member,
} from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import type { PathInfo } from "../../path-info.js";
import { decodePathInfo, encodePathInfo } from "../../path-info-proto.js";
import type { PathInfoService } from "../service.js";
import { describeDigest } from "./union-list.js";

export interface LruPathInfoInit {
  readonly inner: Member<PathInfoService>;
  /** How many path infos are kept (>= 1). */
  readonly capacity: number;
}

export class LruPathInfoService implements PathInfoService {
  readonly #inner: Member<PathInfoService>;
  readonly #entries: LruMap<Uint8Array>;
  readonly #state: CombinatorState;

  constructor(init: LruPathInfoInit, deps: CombinatorDeps = {}) {
    this.#inner = init.inner;
    this.#entries = new LruMap(init.capacity);
    this.#state = new CombinatorState(`path info lru '${deps.instanceName ?? "anonymous"}'`, [
      init.inner.service,
    ]);
  }

  /** Path infos held in memory (for tests and diagnostics). */
  get size(): number {
    return this.#entries.size;
  }

  #context(op: string): string {
    return `${this.#state.what}: inner store '${this.#inner.name}' failed (${op})`;
  }

  async get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    const held = this.#entries.get(key);
    if (held !== undefined) return decodePathInfo(held);
    let info: PathInfo | undefined;
    try {
      info = await this.#inner.service.get(digest, options);
    } catch (err) {
      throw innerError(err, this.#context(`get ${describeDigest(digest)}`));
    }
    if (info !== undefined) this.#entries.set(key, encodePathInfo(info));
    return info;
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    this.#state.check(options);
    let stored: PathInfo;
    try {
      stored = await this.#inner.service.put(info, options);
    } catch (err) {
      throw innerError(err, this.#context(`put ${info.storePath.absolute}`));
    }
    this.#entries.set(digestKey(stored.storePath.digest), encodePathInfo(stored));
    return stored;
  }

  list(options?: CallOptions): AsyncIterable<PathInfo> {
    return guarded(this.#inner.service.list(options), this.#state, options, this.#context("list"));
  }

  close(): Promise<void> {
    this.#entries.clear();
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
