/**
 * The timeout and concurrency limit of one instance: what the common options
 * `timeout_ms` and `max_concurrency` (common-options.ts) do to each call.
 */
import type { CallOptions } from "../castore/call-options.js";
import { closeIterator, withSignal } from "../castore/combinators/support.js";
import { AbortedError, throwIfAborted, UnavailableError } from "../errors.js";
import type { CommonOptions } from "./common-options.js";

/** Timeout and concurrency limit of one instance. */
export class CallGuard {
  readonly #timeoutMs: number | undefined;
  readonly #limit: number;
  readonly #what: string;
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(options: CommonOptions, what: string) {
    this.#timeoutMs = options.timeout_ms;
    this.#limit = options.max_concurrency ?? Number.POSITIVE_INFINITY;
    this.#what = what;
  }

  /** A request: waits for a slot, then runs `fn` under the timeout. */
  async call<T>(
    op: string,
    options: CallOptions | undefined,
    fn: (options: CallOptions) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(options?.signal);
    await this.#acquire(options?.signal);
    try {
      return await this.timed(op, options, fn);
    } finally {
      this.#release();
    }
  }

  /** Runs `fn` under the timeout only (no slot). */
  timed<T>(
    op: string,
    options: CallOptions | undefined,
    fn: (options: CallOptions) => Promise<T>,
  ): Promise<T> {
    const ms = this.#timeoutMs;
    if (ms === undefined) return fn(options ?? {});
    const controller = new AbortController();
    return this.#within(op, fn(withSignal(options, controller.signal)), controller);
  }

  /** A stream: each item must arrive within the timeout. */
  async *stream<T>(
    op: string,
    options: CallOptions | undefined,
    fn: (options: CallOptions) => AsyncIterable<T>,
  ): AsyncGenerator<T, void, undefined> {
    if (this.#timeoutMs === undefined) {
      yield* fn(options ?? {});
      return;
    }
    const controller = new AbortController();
    const it = fn(withSignal(options, controller.signal))[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await this.#within(op, it.next(), controller);
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      await closeIterator(it);
    }
  }

  #within<T>(op: string, work: Promise<T>, controller: AbortController): Promise<T> {
    const ms = this.#timeoutMs!;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new UnavailableError(`${this.#what}: ${op} timed out after ${ms} ms`);
        controller.abort(err);
        reject(err);
      }, ms);
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.#running < this.#limit) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", onAbort);
        this.#running++;
        resolve();
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(grant);
        if (i !== -1) this.#queue.splice(i, 1);
        reject(new AbortedError("operation aborted", { cause: signal?.reason }));
      };
      this.#queue.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #release(): void {
    this.#running--;
    this.#queue.shift()?.();
  }
}
