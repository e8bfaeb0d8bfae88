/**
 * The stores of a `priority` or `race` combinator, the same for all three
 * kinds: reads through the selection strategy (select.ts) with misses
 * remembered, writes to the first store. Each kind's `Select*Service` says
 * which of its calls are reads and which are writes. Browser-safe.
 */
import type { CallOptions, Closeable } from "../call-options.js";
import { NegativeCache } from "./negative-cache.js";
import type { Probe, SelectCaller, SelectOutcome, Selector } from "./select.js";
import {
  type CombinatorDeps,
  type CombinatorKind,
  CombinatorState,
  combinatorIdentity,
  type Member,
} from "./support.js";

/** What a `priority` or `race` combinator is built from. */
export interface SelectInit<S> {
  /** The stores, at least one; writes go to the first. */
  readonly stores: readonly Member<S>[];
  /** `prioritySelector` or `raceSelector(...)`. */
  readonly selector: Selector;
  /** How long a miss of every store is remembered, in ms; 0 (default): not at all. */
  readonly negativeTtlMs?: number;
}

/** A miss remembered from an earlier read. */
const REMEMBERED_MISS: SelectOutcome<never> = { value: undefined, index: -1, complete: true };

export class SelectStores<S extends Closeable> {
  readonly stores: readonly Member<S>[];
  readonly misses: NegativeCache;
  readonly state: CombinatorState;
  /** The combinator's name and logger, as the strategies want them. */
  readonly caller: SelectCaller;
  readonly #selector: Selector;

  constructor(kind: CombinatorKind, init: SelectInit<S>, deps: CombinatorDeps) {
    if (init.stores.length === 0)
      throw new RangeError("a priority or race needs at least one store");
    this.caller = combinatorIdentity(kind, init.selector.name, deps);
    this.stores = init.stores;
    this.#selector = init.selector;
    this.misses = new NegativeCache(init.negativeTtlMs ?? 0, deps.now);
    this.state = new CombinatorState(
      this.caller.what,
      init.stores.map((s) => s.service),
    );
  }

  /** The store writes go to. */
  get primary(): Member<S> {
    return this.stores[0]!;
  }

  /** The context of a failure of store `store` during `op` (op names the item). */
  context(store: Member<S>, op: string): string {
    return `${this.state.what}: store '${store.name}' failed (${op})`;
  }

  /**
   * Asks the stores for the item with cache key `key` (`op` names the read
   * and the item); a miss every store answered is remembered, and a
   * remembered one answers at once. `release` frees an answer not used.
   */
  async select<T>(
    key: string,
    op: string,
    probe: Probe<S, T>,
    options: CallOptions | undefined,
    release?: (value: T) => void,
  ): Promise<SelectOutcome<T>> {
    this.state.check(options);
    if (this.misses.has(key)) return REMEMBERED_MISS;
    const outcome = await this.#selector.select(
      this.stores,
      op,
      probe,
      options,
      this.caller,
      release,
    );
    if (outcome.value === undefined && outcome.complete) this.misses.add(key);
    return outcome;
  }

  /** The context of a failure of the first store during `op`. */
  primaryContext(op: string): string {
    return `${this.state.what}: first store '${this.primary.name}' failed (${op})`;
  }

  /** A write, which goes to the first store only. */
  write<T>(
    op: string,
    options: CallOptions | undefined,
    call: (primary: S) => Promise<T>,
  ): Promise<T> {
    return this.state.call(options, this.primaryContext(op), () => call(this.primary.service));
  }

  close(): Promise<void> {
    return this.state.close();
  }
}
