/**
 * A directory service over several stores read through a selection
 * strategy: the `priority` and `race` types (ARCHITECTURE §4; strategies in
 * castore/combinators/select.ts). Browser-safe.
 *
 * Reads: `get` takes the first positive answer; `getRecursive` takes the
 * first store whose closure stream yields a first directory and streams the
 * rest of the closure from that store (a store that fails before its first
 * directory is skipped; a failure after it ends the stream with the error).
 * A failing store is skipped with a warning naming it; all stores failing is
 * an UnavailableError.
 *
 * Writes (`put`, `putMultiple`) go to the first store of the list only.
 *
 * `negativeTtlMs` remembers digests no store had (only when every store
 * answered); a directory put through this combinator is forgotten as a miss.
 */
import { type Logger, logger } from "../../../observability/log.js";
import type { CallOptions } from "../../call-options.js";
import { NegativeCache } from "../../combinators/negative-cache.js";
import {
  type Opened,
  openStream,
  releaseStream,
  resumeStream,
  type SelectCaller,
  type Selector,
} from "../../combinators/select.js";
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

export interface SelectDirectoryInit {
  /** The stores, at least one; writes go to the first. */
  readonly stores: readonly Member<DirectoryService>[];
  /** `prioritySelector` or `raceSelector(...)`. */
  readonly selector: Selector;
  /** How long a miss of every store is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class SelectDirectoryService implements DirectoryService {
  readonly #stores: readonly Member<DirectoryService>[];
  readonly #selector: Selector;
  readonly #misses: NegativeCache;
  readonly #state: CombinatorState;
  readonly #caller: SelectCaller;

  constructor(init: SelectDirectoryInit, deps: CombinatorDeps = {}) {
    if (init.stores.length === 0)
      throw new RangeError("a priority or race needs at least one store");
    const name = deps.instanceName ?? "anonymous";
    this.#stores = init.stores;
    this.#selector = init.selector;
    this.#misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    const what = `directory ${init.selector.name} '${name}'`;
    this.#state = new CombinatorState(
      what,
      init.stores.map((s) => s.service),
    );
    const log: Logger =
      deps.log ?? logger(`castore.directory.${init.selector.name}`, { instance: name });
    this.#caller = { what, log };
  }

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const outcome = await this.#selector.select(
      this.#stores,
      `get ${formatB3(digest)}`,
      (s, o) => s.get(digest, o),
      options,
      this.#caller,
    );
    if (outcome.value === undefined && outcome.complete) this.#misses.add(key);
    return outcome.value;
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    this.#state.check(options);
    const key = digestKey(root);
    if (this.#misses.has(key)) return;
    const outcome = await this.#selector.select<DirectoryService, Opened<Directory>>(
      this.#stores,
      `getRecursive ${formatB3(root)}`,
      (s, o) => openStream(s.getRecursive(root, o)),
      options,
      this.#caller,
      releaseStream,
    );
    if (outcome.value === undefined) {
      if (outcome.complete) this.#misses.add(key);
      return;
    }
    const store = this.#stores[outcome.index]!;
    yield* guarded(
      resumeStream(outcome.value),
      this.#state,
      options,
      `${this.#caller.what}: store '${store.name}' failed (getRecursive ${formatB3(root)})`,
    );
  }

  get #primary(): Member<DirectoryService> {
    return this.#stores[0]!;
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    this.#state.check(options);
    let digest: B3Digest;
    try {
      digest = await this.#primary.service.put(directory, options);
    } catch (err) {
      throw innerError(
        err,
        `${this.#caller.what}: first store '${this.#primary.name}' failed (put)`,
      );
    }
    this.#misses.forget(digestKey(digest));
    return digest;
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => this.#primary.service.putMultiple(options),
      this.#state,
      this.#misses,
      `${this.#caller.what}: first store '${this.#primary.name}' failed (putMultiple)`,
    );
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
