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
import { NegativeCache } from "../../../castore/combinators/negative-cache.js";
import {
  type CombinatorDeps,
  CombinatorState,
  guarded,
  innerError,
  type Member,
} from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import { type Logger, logger } from "../../../observability/log.js";
import type { PathInfo } from "../../path-info.js";
import type { PathInfoService } from "../service.js";
import { describeDigest } from "./union-list.js";

export interface CachePathInfoInit {
  readonly near: Member<PathInfoService>;
  readonly far: Member<PathInfoService>;
  /** `near` (default): writes go to near only; `through`: to near and far. */
  readonly write?: "near" | "through";
  /** How long a miss of both tiers is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class CachePathInfoService implements PathInfoService {
  readonly #near: Member<PathInfoService>;
  readonly #far: Member<PathInfoService>;
  readonly #through: boolean;
  readonly #misses: NegativeCache;
  readonly #state: CombinatorState;
  readonly #log: Logger;

  constructor(init: CachePathInfoInit, deps: CombinatorDeps = {}) {
    const name = deps.instanceName ?? "anonymous";
    this.#near = init.near;
    this.#far = init.far;
    this.#through = init.write === "through";
    this.#misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    this.#state = new CombinatorState(`path info cache '${name}'`, [
      init.near.service,
      init.far.service,
    ]);
    this.#log = deps.log ?? logger("store.pathinfo.cache", { instance: name });
  }

  #tier(tier: Member<PathInfoService>, op: string): string {
    const which = tier === this.#near ? "near" : "far";
    return `${this.#state.what}: ${which} tier '${tier.name}' failed (${op})`;
  }

  async #ask<T>(tier: Member<PathInfoService>, op: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw innerError(err, this.#tier(tier, op));
    }
  }

  async get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const op = `get ${describeDigest(digest)}`;
    const near = await this.#ask(this.#near, op, () => this.#near.service.get(digest, options));
    if (near !== undefined) return near;
    const far = await this.#ask(this.#far, op, () => this.#far.service.get(digest, options));
    if (far === undefined) {
      this.#misses.add(key);
      return undefined;
    }
    try {
      await this.#near.service.put(far, options);
      this.#log.debug("filled the near tier", { path: far.storePath.absolute });
    } catch (err) {
      if (options?.signal?.aborted === true) throw err;
      this.#log.warn("filling the near tier failed; serving from far without caching", {
        path: far.storePath.absolute,
        store: this.#near.name,
        error: err,
      });
    }
    return far;
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    this.#state.check(options);
    const op = `put ${info.storePath.absolute}`;
    const stored = await this.#ask(this.#near, op, () => this.#near.service.put(info, options));
    if (this.#through) await this.#ask(this.#far, op, () => this.#far.service.put(info, options));
    this.#misses.forget(digestKey(stored.storePath.digest));
    return stored;
  }

  async *list(options?: CallOptions): AsyncGenerator<PathInfo> {
    this.#state.check(options);
    const seen = new Set<string>();
    for (const tier of [this.#near, this.#far]) {
      for await (const info of guarded(
        tier.service.list(options),
        this.#state,
        options,
        this.#tier(tier, "list"),
      )) {
        const key = digestKey(info.storePath.digest);
        if (seen.has(key)) continue;
        seen.add(key);
        yield info;
      }
    }
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
