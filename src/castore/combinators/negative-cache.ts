/**
 * Remembers misses ("no store has X") for a bounded time, so that repeated
 * lookups of something absent do not reach slow or remote stores every time
 * (the `negative_ttl_ms` option of cache, priority and race). A miss is
 * forgotten when it expires or as soon as the item is put through the
 * combinator that remembers it. Browser-safe.
 */

/** At most this many misses are remembered; the oldest are dropped first. */
const MAX_ENTRIES = 100_000;

export class NegativeCache {
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Expiry time by key, in insertion order (oldest first). */
  readonly #entries = new Map<string, number>();

  /** `ttlMs` of 0 disables the cache (nothing is remembered). */
  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get enabled(): boolean {
    return this.#ttlMs > 0;
  }

  /** Number of misses remembered (expired ones included until looked at). */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether a miss of `key` is remembered and has not expired. */
  has(key: string): boolean {
    const expires = this.#entries.get(key);
    if (expires === undefined) return false;
    if (this.#now() < expires) return true;
    this.#entries.delete(key);
    return false;
  }

  /** Remembers a miss of `key` for the TTL (from now). */
  add(key: string): void {
    if (this.#ttlMs <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, this.#now() + this.#ttlMs);
    if (this.#entries.size > MAX_ENTRIES) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
  }

  /** Forgets a miss of `key` (the item was put). */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
