/**
 * The two tiers of a `cache` combinator, the same for all three kinds: the
 * read path (remembered misses, near first, then far), writing through, and
 * the messages naming a failed tier. How what comes from far gets into near
 * differs per kind (a tee for blobs, a validated closure for directories, a
 * put for path infos) and stays in each kind's `Cache*Service`.
 * Browser-safe.
 */
import type { Logger } from "../../observability/log.js";
import type { CallOptions, Closeable } from "../call-options.js";
import { NegativeCache } from "./negative-cache.js";
import {
  askInner,
  type CombinatorDeps,
  type CombinatorKind,
  CombinatorState,
  combinatorIdentity,
  type Member,
} from "./support.js";

/** What a `cache` combinator is built from. */
export interface CacheInit<S> {
  readonly near: Member<S>;
  readonly far: Member<S>;
  /** `near` (default): writes go to near only; `through`: to near and far. */
  readonly write?: "near" | "through";
  /** How long a miss of both tiers is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class CacheTiers<S extends Closeable> {
  readonly near: Member<S>;
  readonly far: Member<S>;
  /** Whether writes go through to far. */
  readonly through: boolean;
  readonly misses: NegativeCache;
  readonly state: CombinatorState;
  readonly log: Logger;

  constructor(kind: CombinatorKind, init: CacheInit<S>, deps: CombinatorDeps) {
    const { what, log } = combinatorIdentity(kind, "cache", deps);
    this.near = init.near;
    this.far = init.far;
    this.through = init.write === "through";
    this.misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    this.state = new CombinatorState(what, [init.near.service, init.far.service]);
    this.log = log;
  }

  /** The context of a failure of `tier` during `op` (which names the item: `get b3:...`). */
  context(tier: Member<S>, op: string): string {
    const which = tier === this.near ? "near" : "far";
    return `${this.state.what}: ${which} tier '${tier.name}' failed (${op})`;
  }

  /** Calls `tier`; a failure is re-thrown naming the cache and the tier. */
  ask<T>(tier: Member<S>, op: string, call: (service: S) => Promise<T>): Promise<T> {
    return askInner(this.context(tier, op), () => call(tier.service));
  }

  /**
   * Reads the item with cache key `key`: a remembered miss answers at once,
   * then near is asked, then far; a miss of both is remembered. Far's answer
   * goes through `fromFar` (where a cache fills near) before it is returned.
   */
  async read<T>(
    key: string,
    op: string,
    options: CallOptions | undefined,
    call: (service: S) => Promise<T | undefined>,
    fromFar: (value: T) => T | Promise<T> = (value) => value,
  ): Promise<T | undefined> {
    this.state.check(options);
    if (this.misses.has(key)) return undefined;
    const near = await this.ask(this.near, op, call);
    if (near !== undefined) return near;
    const far = await this.ask(this.far, op, call);
    if (far === undefined) {
      this.misses.add(key);
      return undefined;
    }
    return fromFar(far);
  }

  /** A write: to near, then (writing through) to far; resolves to near's answer. */
  async write<T>(
    op: string,
    options: CallOptions | undefined,
    call: (service: S) => Promise<T>,
  ): Promise<T> {
    this.state.check(options);
    const stored = await this.ask(this.near, op, call);
    if (this.through) await this.ask(this.far, op, call);
    return stored;
  }

  /** Logs that an item from far could not be put into near (the read goes on without caching). */
  fillFailed(item: Readonly<Record<string, string>>, err: unknown): void {
    this.log.warn("filling the near tier failed; serving from far without caching", {
      ...item,
      store: this.near.name,
      error: err,
    });
  }

  close(): Promise<void> {
    return this.state.close();
  }
}
