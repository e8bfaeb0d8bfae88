/**
 * A directory cache: a fast `near` store in front of a slow `far` one (the
 * `cache` type, ARCHITECTURE §4). Browser-safe.
 *
 * Reads: near first. A directory near lacks is fetched from far together
 * with its whole closure (`getRecursive`), validated root first (every
 * directory referenced, sizes right, nothing missing — far is not trusted),
 * and inserted into near leaves first in one `putMultiple`, so near only
 * ever holds complete closures. Concurrent reads of the same missing root
 * share one fetch. `getRecursive` of a root near has is served by near; of a
 * fetched one, from the fetched closure in the order far sent it (root
 * first, parents before children). A failing near store does not fail a
 * read: the fill is given up with a warning.
 *
 * Writes go to near; with `write: "through"` to near and then far.
 *
 * `negativeTtlMs` remembers roots neither tier has; a directory put through
 * this cache is forgotten as a miss at once.
 */
import { type Logger, logger } from "../../../observability/log.js";
import type { CallOptions } from "../../call-options.js";
import { InFlight } from "../../combinators/in-flight.js";
import { NegativeCache } from "../../combinators/negative-cache.js";
import {
  type CombinatorDeps,
  CombinatorState,
  guarded,
  innerError,
  type Member,
} from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import { RootFirstValidator } from "../closure-validator.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter, leavesFirst, ThroughPutter } from "./putters.js";

export interface CacheDirectoryInit {
  readonly near: Member<DirectoryService>;
  readonly far: Member<DirectoryService>;
  /** `near` (default): writes go to near only; `through`: to near and far. */
  readonly write?: "near" | "through";
  /** How long a miss of both tiers is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class CacheDirectoryService implements DirectoryService {
  readonly #near: Member<DirectoryService>;
  readonly #far: Member<DirectoryService>;
  readonly #through: boolean;
  readonly #misses: NegativeCache;
  readonly #state: CombinatorState;
  readonly #log: Logger;
  /** Closures being fetched from far, by root digestKey. */
  readonly #fetches = new InFlight<readonly Directory[] | undefined>();

  constructor(init: CacheDirectoryInit, deps: CombinatorDeps = {}) {
    const name = deps.instanceName ?? "anonymous";
    this.#near = init.near;
    this.#far = init.far;
    this.#through = init.write === "through";
    this.#misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    this.#state = new CombinatorState(`directory cache '${name}'`, [
      init.near.service,
      init.far.service,
    ]);
    this.#log = deps.log ?? logger("castore.directory.cache", { instance: name });
  }

  #tier(tier: Member<DirectoryService>, op: string, digest?: B3Digest): string {
    const which = tier === this.#near ? "near" : "far";
    const what = digest === undefined ? op : `${op} ${formatB3(digest)}`;
    return `${this.#state.what}: ${which} tier '${tier.name}' failed (${what})`;
  }

  async #ask<T>(
    tier: Member<DirectoryService>,
    op: string,
    digest: B3Digest,
    call: () => Promise<T>,
  ): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw innerError(err, this.#tier(tier, op, digest));
    }
  }

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const near = await this.#ask(this.#near, "get", digest, () =>
      this.#near.service.get(digest, options),
    );
    if (near !== undefined) return near;
    const closure = await this.#fetch(digest, options);
    return closure?.[0];
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    this.#state.check(options);
    const key = digestKey(root);
    if (this.#misses.has(key)) return;
    const near = await this.#ask(this.#near, "get", root, () =>
      this.#near.service.get(root, options),
    );
    if (near !== undefined) {
      yield* guarded(
        this.#near.service.getRecursive(root, options),
        this.#state,
        options,
        this.#tier(this.#near, "getRecursive", root),
      );
      return;
    }
    const closure = await this.#fetch(root, options);
    for (const directory of closure ?? []) {
      this.#state.check(options);
      yield directory;
    }
  }

  /** The closure of `root` from far (root first), inserted into near; undefined if far lacks it. */
  async #fetch(
    root: B3Digest,
    options: CallOptions | undefined,
  ): Promise<readonly Directory[] | undefined> {
    const key = digestKey(root);
    const closure = await this.#fetches.run(key, options?.signal, (signal) =>
      this.#fill(root, signal),
    );
    this.#state.check(options);
    if (closure === undefined) this.#misses.add(key);
    return closure;
  }

  async #fill(root: B3Digest, signal: AbortSignal): Promise<readonly Directory[] | undefined> {
    const context = this.#tier(this.#far, "getRecursive", root);
    const validator = new RootFirstValidator(root, `${context}: closure`);
    const received: Directory[] = [];
    try {
      for await (const directory of this.#far.service.getRecursive(root, { signal })) {
        validator.accept(directory);
        received.push(directory);
      }
      validator.finish();
    } catch (err) {
      throw innerError(err, context);
    }
    if (received.length === 0) return undefined;
    let putter: DirectoryPutter | undefined;
    try {
      putter = this.#near.service.putMultiple({ signal });
      for (const directory of leavesFirst(root, received)) await putter.put(directory);
      await putter.close();
      this.#log.debug("filled the near tier", {
        root: formatB3(root),
        directories: received.length,
      });
    } catch (err) {
      await putter?.abort(err).catch(() => undefined);
      if (signal.aborted) throw err;
      this.#log.warn("filling the near tier failed; serving from far without caching", {
        root: formatB3(root),
        store: this.#near.name,
        error: err,
      });
    }
    return received;
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    this.#state.check(options);
    const digest = directory.digest();
    await this.#ask(this.#near, "put", digest, () => this.#near.service.put(directory, options));
    if (this.#through) {
      await this.#ask(this.#far, "put", digest, () => this.#far.service.put(directory, options));
    }
    this.#misses.forget(digestKey(digest));
    return digest;
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => {
        const near = this.#near.service.putMultiple(options);
        if (!this.#through) return near;
        return new ThroughPutter(near, this.#far.service.putMultiple(options), this.#state.what);
      },
      this.#state,
      this.#misses,
      `${this.#state.what}: putMultiple`,
    );
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
