/**
 * The inner store of an `lru` combinator and the entries kept of it in
 * memory, the same for directories and path infos: `get` answers from
 * memory when it can, and what passes through is remembered. Each kind's
 * `Lru*Service` says what passes through and how an entry is kept.
 * Browser-safe.
 */
import type { CallOptions, Closeable } from "../call-options.js";
import { LruMap } from "./lru-map.js";
import {
  askInner,
  type CombinatorDeps,
  type CombinatorKind,
  CombinatorState,
  combinatorIdentity,
  type Member,
} from "./support.js";

/** What an `lru` combinator is built from. */
export interface LruInit<S> {
  readonly inner: Member<S>;
  /** How many entries are kept (>= 1). */
  readonly capacity: number;
}

/** How an item is kept in memory (`V`) and handed out again (`T`). */
export interface LruCodec<T, V> {
  encode(item: T): V;
  decode(held: V): T;
}

/** Items kept as they are (immutable ones, such as directories). */
export function keptAsIs<T>(): LruCodec<T, T> {
  return { encode: (item) => item, decode: (held) => held };
}

export class LruInner<S extends Closeable, T, V> {
  readonly inner: Member<S>;
  readonly state: CombinatorState;
  readonly #entries: LruMap<V>;
  readonly #codec: LruCodec<T, V>;

  constructor(kind: CombinatorKind, init: LruInit<S>, deps: CombinatorDeps, codec: LruCodec<T, V>) {
    this.inner = init.inner;
    this.#entries = new LruMap(init.capacity);
    this.#codec = codec;
    this.state = new CombinatorState(combinatorIdentity(kind, "lru", deps).what, [
      init.inner.service,
    ]);
  }

  /** Entries held in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** The context of a failure of the inner store during `op` (which names the item). */
  context(op: string): string {
    return `${this.state.what}: inner store '${this.inner.name}' failed (${op})`;
  }

  /** A call to the inner store; its failure is re-thrown naming the lru and the store. */
  call<R>(
    op: string,
    options: CallOptions | undefined,
    call: (inner: S) => Promise<R>,
  ): Promise<R> {
    return this.state.call(options, this.context(op), () => call(this.inner.service));
  }

  /** The item with key `key`: from memory, else from the inner store (and then remembered). */
  async get(
    key: string,
    op: string,
    options: CallOptions | undefined,
    fetch: (inner: S) => Promise<T | undefined>,
  ): Promise<T | undefined> {
    this.state.check(options);
    const held = this.#entries.get(key);
    if (held !== undefined) return this.#codec.decode(held);
    const item = await askInner(this.context(op), () => fetch(this.inner.service));
    if (item !== undefined) this.remember(key, item);
    return item;
  }

  /** Keeps `item` under `key`, as the most recently used entry. */
  remember(key: string, item: T): void {
    this.#entries.set(key, this.#codec.encode(item));
  }

  close(): Promise<void> {
    this.#entries.clear();
    return this.state.close();
  }
}
