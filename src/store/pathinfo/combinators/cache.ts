/**
 * A path info cache: a fast `near` store in front of a slow `far` one (the
 * `cache` type, ARCHITECTURE §4). Browser-safe.
 *
 * Reads: near first; a path info found in far is put into near before it is
 * returned (a failing near store does not fail the read: the fill is given
 * up with a warning). `list` streams near's entries, then far's entries near
 * does not have (each store path once; near's version wins).
 *
 * Writes go to near; with `write: "through"` to near and then far.
 *
 * `negativeTtlMs` remembers store paths neither tier has; a path info put
 * through this cache is forgotten as a miss at once.
 */
import type { CallOptions } from "../../../castore/call-options.js";
import { type CacheInit, CacheTiers } from "../../../castore/combinators/cache-tiers.js";
import { type CombinatorDeps, guarded } from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import type { PathInfo } from "../../path-info.js";
import type { PathInfoService } from "../service.js";
import { describeDigest, PATH_INFO_KIND } from "./union-list.js";

export type CachePathInfoInit = CacheInit<PathInfoService>;

export class CachePathInfoService implements PathInfoService {
  readonly #tiers: CacheTiers<PathInfoService>;

  constructor(init: CachePathInfoInit, deps: CombinatorDeps = {}) {
    this.#tiers = new CacheTiers(PATH_INFO_KIND, init, deps);
  }

  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    return this.#tiers.read(
      digestKey(digest),
      `get ${describeDigest(digest)}`,
      options,
      (s) => s.get(digest, options),
      (far) => this.#fill(far, options),
    );
  }

  /** Puts what far had into near; a failure is only a warning. */
  async #fill(info: PathInfo, options: CallOptions | undefined): Promise<PathInfo> {
    const tiers = this.#tiers;
    try {
      await tiers.near.service.put(info, options);
      tiers.log.debug("filled the near tier", { path: info.storePath.absolute });
    } catch (err) {
      if (options?.signal?.aborted === true) throw err;
      tiers.fillFailed({ path: info.storePath.absolute }, err);
    }
    return info;
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    const stored = await this.#tiers.write(`put ${info.storePath.absolute}`, options, (s) =>
      s.put(info, options),
    );
    this.#tiers.misses.forget(digestKey(stored.storePath.digest));
    return stored;
  }

  async *list(options?: CallOptions): AsyncGenerator<PathInfo> {
    const tiers = this.#tiers;
    tiers.state.check(options);
    const seen = new Set<string>();
    for (const tier of [tiers.near, tiers.far]) {
      for await (const info of guarded(
        tier.service.list(options),
        tiers.state,
        options,
        tiers.context(tier, "list"),
      )) {
        const key = digestKey(info.storePath.digest);
        if (seen.has(key)) continue;
        seen.add(key);
        yield info;
      }
    }
  }

  close(): Promise<void> {
    return this.#tiers.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
