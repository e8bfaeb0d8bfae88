/**
 * A path info service over several stores read through a selection
 * strategy: the `priority` and `race` types (ARCHITECTURE §4; strategies in
 * castore/combinators/select.ts). Browser-safe.
 *
 * Reads: `get` takes the first positive answer; a failing store is skipped
 * with a warning naming it; all stores failing is an UnavailableError.
 * `list` streams every store's listing in list order, each store path once
 * (for race too: a listing is not a race).
 *
 * Writes (`put`) go to the first store of the list only.
 *
 * `negativeTtlMs` remembers store paths no store had (only when every store
 * answered); a path info put through this combinator is forgotten as a miss.
 */
import type { CallOptions } from "../../../castore/call-options.js";
import { NegativeCache } from "../../../castore/combinators/negative-cache.js";
import type { SelectCaller, Selector } from "../../../castore/combinators/select.js";
import {
  type CombinatorDeps,
  CombinatorState,
  innerError,
  type Member,
} from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import { type Logger, logger } from "../../../observability/log.js";
import type { PathInfo } from "../../path-info.js";
import type { PathInfoService } from "../service.js";
import { describeDigest, unionList } from "./union-list.js";

export interface SelectPathInfoInit {
  /** The stores, at least one; writes go to the first. */
  readonly stores: readonly Member<PathInfoService>[];
  /** `prioritySelector` or `raceSelector(...)`. */
  readonly selector: Selector;
  /** How long a miss of every store is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class SelectPathInfoService implements PathInfoService {
  readonly #stores: readonly Member<PathInfoService>[];
  readonly #selector: Selector;
  readonly #misses: NegativeCache;
  readonly #state: CombinatorState;
  readonly #caller: SelectCaller;

  constructor(init: SelectPathInfoInit, deps: CombinatorDeps = {}) {
    if (init.stores.length === 0)
      throw new RangeError("a priority or race needs at least one store");
    const name = deps.instanceName ?? "anonymous";
    this.#stores = init.stores;
    this.#selector = init.selector;
    this.#misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    const what = `path info ${init.selector.name} '${name}'`;
    this.#state = new CombinatorState(
      what,
      init.stores.map((s) => s.service),
    );
    const log: Logger =
      deps.log ?? logger(`store.pathinfo.${init.selector.name}`, { instance: name });
    this.#caller = { what, log };
  }

  async get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const outcome = await this.#selector.select(
      this.#stores,
      `get ${describeDigest(digest)}`,
      (s, o) => s.get(digest, o),
      options,
      this.#caller,
    );
    if (outcome.value === undefined && outcome.complete) this.#misses.add(key);
    return outcome.value;
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    this.#state.check(options);
    const primary = this.#stores[0]!;
    let stored: PathInfo;
    try {
      stored = await primary.service.put(info, options);
    } catch (err) {
      throw innerError(err, `${this.#caller.what}: first store '${primary.name}' failed (put)`);
    }
    this.#misses.forget(digestKey(stored.storePath.digest));
    return stored;
  }

  list(options?: CallOptions): AsyncIterable<PathInfo> {
    return unionList(this.#stores, this.#state, options, this.#caller);
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
