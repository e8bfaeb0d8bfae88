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
import type { CallOptions } from "../../call-options.js";
import { type CacheInit, CacheTiers } from "../../combinators/cache-tiers.js";
import { InFlight } from "../../combinators/in-flight.js";
import {
  type CombinatorDeps,
  DIRECTORY_KIND,
  guarded,
  innerError,
} from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import { RootFirstValidator } from "../closure-validator.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter, leavesFirst, ThroughPutter } from "./putters.js";

export type CacheDirectoryInit = CacheInit<DirectoryService>;

export class CacheDirectoryService implements DirectoryService {
  readonly #tiers: CacheTiers<DirectoryService>;
  /** Closures being fetched from far, by root digestKey. */
  readonly #fetches = new InFlight<readonly Directory[] | undefined>();

  constructor(init: CacheDirectoryInit, deps: CombinatorDeps = {}) {
    this.#tiers = new CacheTiers(DIRECTORY_KIND, init, deps);
  }

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    const tiers = this.#tiers;
    tiers.state.check(options);
    if (tiers.misses.has(digestKey(digest))) return undefined;
    const near = await tiers.ask(tiers.near, `get ${formatB3(digest)}`, (s) =>
      s.get(digest, options),
    );
    if (near !== undefined) return near;
    const closure = await this.#fetch(digest, options);
    return closure?.[0];
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    const tiers = this.#tiers;
    tiers.state.check(options);
    if (tiers.misses.has(digestKey(root))) return;
    const near = await tiers.ask(tiers.near, `get ${formatB3(root)}`, (s) => s.get(root, options));
    if (near !== undefined) {
      yield* guarded(
        tiers.near.service.getRecursive(root, options),
        tiers.state,
        options,
        tiers.context(tiers.near, `getRecursive ${formatB3(root)}`),
      );
      return;
    }
    const closure = await this.#fetch(root, options);
    for (const directory of closure ?? []) {
      tiers.state.check(options);
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
    this.#tiers.state.check(options);
    if (closure === undefined) this.#tiers.misses.add(key);
    return closure;
  }

  async #fill(root: B3Digest, signal: AbortSignal): Promise<readonly Directory[] | undefined> {
    const tiers = this.#tiers;
    const context = tiers.context(tiers.far, `getRecursive ${formatB3(root)}`);
    const validator = new RootFirstValidator(root, `${context}: closure`);
    const received: Directory[] = [];
    try {
      for await (const directory of tiers.far.service.getRecursive(root, { signal })) {
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
      putter = tiers.near.service.putMultiple({ signal });
      for (const directory of leavesFirst(root, received)) await putter.put(directory);
      await putter.close();
      tiers.log.debug("filled the near tier", {
        root: formatB3(root),
        directories: received.length,
      });
    } catch (err) {
      await putter?.abort(err).catch(() => undefined);
      if (signal.aborted) throw err;
      tiers.fillFailed({ root: formatB3(root) }, err);
    }
    return received;
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    const digest = directory.digest();
    await this.#tiers.write(`put ${formatB3(digest)}`, options, (s) => s.put(directory, options));
    this.#tiers.misses.forget(digestKey(digest));
    return digest;
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    const tiers = this.#tiers;
    return new CombinatorPutter(
      () => {
        const near = tiers.near.service.putMultiple(options);
        if (!tiers.through) return near;
        return new ThroughPutter(near, tiers.far.service.putMultiple(options), tiers.state.what);
      },
      tiers.state,
      tiers.misses,
      `${tiers.state.what}: putMultiple`,
    );
  }

  close(): Promise<void> {
    return this.#tiers.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
