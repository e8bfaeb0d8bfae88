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
import { type SelectInit, SelectStores } from "../../../castore/combinators/select-stores.js";
import type { CombinatorDeps } from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import type { PathInfo } from "../../path-info.js";
import type { PathInfoService } from "../service.js";
import { describeDigest, PATH_INFO_KIND, unionList } from "./union-list.js";

export type SelectPathInfoInit = SelectInit<PathInfoService>;

export class SelectPathInfoService implements PathInfoService {
  readonly #stores: SelectStores<PathInfoService>;

  constructor(init: SelectPathInfoInit, deps: CombinatorDeps = {}) {
    this.#stores = new SelectStores(PATH_INFO_KIND, init, deps);
  }

  async get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    const outcome = await this.#stores.select(
      digestKey(digest),
      `get ${describeDigest(digest)}`,
      (s, o) => s.get(digest, o),
      options,
    );
    return outcome.value;
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    const stored = await this.#stores.write("put", options, (s) => s.put(info, options));
    this.#stores.misses.forget(digestKey(stored.storePath.digest));
    return stored;
  }

  list(options?: CallOptions): AsyncIterable<PathInfo> {
    const stores = this.#stores;
    return unionList(stores.stores, stores.state, options, stores.caller);
  }

  close(): Promise<void> {
    return this.#stores.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
