/**
 * A blob service over several stores read through a selection strategy:
 * the `priority` (in list order) and `race` (concurrently, losers aborted)
 * types (ARCHITECTURE §4; strategies in castore/combinators/select.ts).
 * Browser-safe.
 *
 * Reads (`has`, `openRead`, `chunks`): the first store with a positive
 * answer wins; a failing store is skipped with a warning naming it; all
 * stores failing is an UnavailableError.
 *
 * Writes (`openWrite`, `sync`) go to the first store of the list only — the
 * others are read-only mirrors or substituters from this combinator's point
 * of view. (Put a `cache` in front to keep what is read, or write to the
 * stores directly.)
 *
 * `negativeTtlMs` remembers blobs no store had (only when every store
 * answered: a miss caused by a failing store is not remembered); writing the
 * blob through this combinator forgets the miss.
 */
import { type Logger, logger } from "../../../observability/log.js";
import type { CallOptions } from "../../call-options.js";
import { NegativeCache } from "../../combinators/negative-cache.js";
import type { SelectCaller, Selector } from "../../combinators/select.js";
import {
  type CombinatorDeps,
  CombinatorState,
  innerError,
  type Member,
} from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta } from "../service.js";
import { ForgettingWriter } from "./forgetting-writer.js";

export interface SelectBlobInit {
  /** The stores, at least one; writes go to the first. */
  readonly stores: readonly Member<BlobService>[];
  /** `prioritySelector` or `raceSelector(...)`. */
  readonly selector: Selector;
  /** How long a miss of every store is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

export class SelectBlobService implements BlobService {
  readonly #stores: readonly Member<BlobService>[];
  readonly #selector: Selector;
  readonly #misses: NegativeCache;
  readonly #state: CombinatorState;
  readonly #caller: SelectCaller;

  constructor(init: SelectBlobInit, deps: CombinatorDeps = {}) {
    if (init.stores.length === 0)
      throw new RangeError("a priority or race needs at least one store");
    const name = deps.instanceName ?? "anonymous";
    this.#stores = init.stores;
    this.#selector = init.selector;
    this.#misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    const what = `blob ${init.selector.name} '${name}'`;
    this.#state = new CombinatorState(
      what,
      init.stores.map((s) => s.service),
    );
    const log: Logger =
      deps.log ?? logger(`castore.blob.${init.selector.name}`, { instance: name });
    this.#caller = { what, log };
  }

  async #select<T>(
    digest: B3Digest,
    op: string,
    probe: (s: BlobService, o: CallOptions) => Promise<T | undefined>,
    options: CallOptions | undefined,
    release?: (value: T) => void,
  ): Promise<T | undefined> {
    this.#state.check(options);
    const key = digestKey(digest);
    if (this.#misses.has(key)) return undefined;
    const outcome = await this.#selector.select(
      this.#stores,
      `${op} ${formatB3(digest)}`,
      probe,
      options,
      this.#caller,
      release,
    );
    if (outcome.value === undefined && outcome.complete) this.#misses.add(key);
    return outcome.value;
  }

  async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    const found = await this.#select(
      digest,
      "has",
      async (s, o) => ((await s.has(digest, o)) ? true : undefined),
      options,
    );
    return found === true;
  }

  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    return this.#select(
      digest,
      "openRead",
      (s, o) => s.openRead(digest, o),
      options,
      (reader) => void reader.close().catch(() => undefined),
    );
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#select(digest, "chunks", (s, o) => s.chunks(digest, o), options);
  }

  get #primary(): Member<BlobService> {
    return this.#stores[0]!;
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#state.check(options);
    const writer = this.#primary.service.openWrite(options);
    return this.#misses.enabled ? new ForgettingWriter(writer, this.#misses) : writer;
  }

  async sync(options?: CallOptions): Promise<void> {
    this.#state.check(options);
    try {
      await this.#primary.service.sync(options);
    } catch (err) {
      throw innerError(
        err,
        `${this.#state.what}: first store '${this.#primary.name}' failed (sync)`,
      );
    }
  }

  close(): Promise<void> {
    return this.#state.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
