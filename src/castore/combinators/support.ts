/**
 * What the combinators of all three service kinds (cache, priority, race,
 * lru, retry; ARCHITECTURE §4) share: the named inner instances they hold,
 * how a kind and an instance name themselves, their own open/closed state,
 * the rule for adding context to an inner failure, guarded iteration, and
 * an abortable sleep. Browser-safe.
 *
 * The logic of each combinator type, generic over the kind, lives next to
 * this file (cache-tiers.ts, select-stores.ts, lru-inner.ts,
 * retried-inner.ts); each kind's `*Service` class only maps its interface
 * onto it.
 */
import {
  AbortedError,
  InvalidInputError,
  StorageError,
  StrataError,
  throwIfAborted,
  withContext,
} from "../../errors.js";
import { Logger, type LogSink, logger, parseLogSpec } from "../../observability/log.js";
import type { CallOptions, Closeable } from "../call-options.js";

/** An inner instance of a combinator, with the instance name used in messages and logs. */
export interface Member<S> {
  readonly name: string;
  readonly service: S;
}

/** What every combinator gets besides its tunables (dependencies, STYLE 9). */
export interface CombinatorDeps {
  /** Its instance name (config key or URL). Default `"anonymous"`. */
  readonly instanceName?: string;
  /** Logger for warnings (skipped stores, failed cache fills); default: the process logger. */
  readonly log?: Logger;
  /** Milliseconds clock for TTLs; default `Date.now`. */
  readonly now?: () => number;
}

/**
 * How the combinators of one service kind name themselves; the combinator
 * code is the same for every kind, only these words differ.
 */
export interface CombinatorKind {
  /** The kind in messages: `blob`, `directory`, `path info` (`path info cache 'root'`). */
  readonly noun: string;
  /** Prefix of the log module: `castore.blob` (`castore.blob.cache`). */
  readonly module: string;
}

/** The castore kinds (path info's is in store/pathinfo/combinators/union-list.ts). */
export const BLOB_KIND: CombinatorKind = { noun: "blob", module: "castore.blob" };
export const DIRECTORY_KIND: CombinatorKind = { noun: "directory", module: "castore.directory" };

/** Who a combinator instance is: the name its errors start with, and its logger. */
export interface CombinatorIdentity {
  /** E.g. `path info cache 'root'`. */
  readonly what: string;
  readonly log: Logger;
}

/** The identity of a combinator of type `type` (`cache`, `priority`, ...) of `kind`. */
export function combinatorIdentity(
  kind: CombinatorKind,
  type: string,
  deps: CombinatorDeps,
): CombinatorIdentity {
  const name = deps.instanceName ?? "anonymous";
  return {
    what: `${kind.noun} ${type} '${name}'`,
    log: deps.log ?? logger(`${kind.module}.${type}`, { instance: name }),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export function silentLogger(module = "test"): Logger {
  const sink: LogSink = () => undefined;
  return new Logger({ module, sink, filter: parseLogSpec("off") });
}

/**
 * Whether an inner failure concerns the caller rather than the store: an
 * InvalidInputError (bad argument) or an AbortedError. Those pass through
 * combinators unchanged: a priority list does not "skip" a bad argument, and
 * a cancelled call stays a cancelled call.
 */
export function isCallerError(err: unknown): boolean {
  return err instanceof InvalidInputError || err instanceof AbortedError;
}

/**
 * The error a combinator throws for a failure of an inner instance: the same
 * class, with a message naming the combinator and the inner instance, the
 * original as cause. Caller errors (see `isCallerError`) are returned as is.
 */
export function innerError(err: unknown, message: string): unknown {
  if (isCallerError(err)) return err;
  return withContext(err, message);
}

/**
 * Awaits `call`; an inner failure is re-thrown with `context` (see
 * `innerError`), so it says which combinator and which inner store failed.
 */
export async function askInner<T>(context: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw innerError(err, context);
  }
}

/** Open/closed state and the inner instances a combinator closes with itself. */
export class CombinatorState {
  readonly #what: string;
  readonly #children: readonly Closeable[];
  #closed = false;

  /** `what` names the combinator in errors, e.g. `path info cache 'root'`. */
  constructor(what: string, children: readonly Closeable[]) {
    this.#what = what;
    this.#children = children;
  }

  get what(): string {
    return this.#what;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws the StorageError every call after close gets, or the AbortedError of a fired signal. */
  check(options?: CallOptions): void {
    if (this.#closed) throw new StorageError(`${this.#what} is closed`);
    throwIfAborted(options?.signal);
  }

  /**
   * A call to an inner instance: checks this state and the caller's signal
   * first; a failure is re-thrown with `context` (see `askInner`).
   */
  async call<T>(
    options: CallOptions | undefined,
    context: string,
    call: () => Promise<T>,
  ): Promise<T> {
    this.check(options);
    return askInner(context, call);
  }

  /**
   * Closes the inner instances (each once, even when listed twice). In a
   * composition they are handles whose close does nothing: the composition
   * closes every instance itself. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const unique = [...new Set(this.#children)];
    const results = await Promise.allSettled(unique.map((c) => c.close()));
    const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    if (failed.length > 0) {
      throw new StorageError(`closing ${this.#what}`, {
        cause: failed.length === 1 ? failed[0] : new AggregateError(failed),
      });
    }
  }
}

/**
 * Iterates `source`, checking the combinator's state and the caller's signal
 * before each item is handed out and when the consumer asks for the next,
 * and wrapping inner failures with `context`.
 */
export async function* guarded<T>(
  source: AsyncIterable<T>,
  state: CombinatorState,
  options: CallOptions | undefined,
  context: string,
): AsyncGenerator<T, void, undefined> {
  state.check(options);
  const it = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<T>;
      try {
        next = await it.next();
      } catch (err) {
        state.check(options);
        throw innerError(err, context);
      }
      if (next.done === true) return;
      state.check(options);
      yield next.value;
      state.check(options);
    }
  } finally {
    await closeIterator(it);
  }
}

/** Ends an iterator early (its `finally` blocks run); errors doing so are ignored. */
export async function closeIterator(it: AsyncIterator<unknown>): Promise<void> {
  try {
    await it.return?.();
  } catch {
    // The iteration already failed or was abandoned; nothing left to report.
  }
}

/** Resolves after `ms`; rejects with AbortedError as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError("operation aborted", { cause: signal.reason }));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError("operation aborted", { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `options` with `signal` fired also when `extra` fires. */
export function withSignal(options: CallOptions | undefined, extra: AbortSignal): CallOptions {
  const own = options?.signal;
  return { ...options, signal: own === undefined ? extra : AbortSignal.any([own, extra]) };
}

/** Whether `err` is a StrataError with code `Unavailable` (what retry and skip logic look at). */
export function isUnavailable(err: unknown): boolean {
  return err instanceof StrataError && err.code === "Unavailable";
}
