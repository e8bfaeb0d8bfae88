/**
 * How `priority` and `race` pick the store that answers a read — one
 * strategy interface (STYLE 10), two implementations, used by the
 * combinators of all three kinds. Browser-safe.
 *
 * Both ask "probes" (one read against one inner store) and take the first
 * positive answer (anything but `undefined`):
 * - priority asks the stores one after another, in list order;
 * - race asks them concurrently (all at once, or one more every
 *   `hedgeAfterMs` while none has answered) and aborts the losers through
 *   their AbortSignal; a positive answer that arrives after the winner's is
 *   released (readers closed, iterators ended).
 *
 * A store that fails (any error but a caller error: InvalidInput, or Aborted
 * because the caller's signal fired) is skipped with a warning naming the
 * instance and the store: an unreachable store never breaks a read another
 * store can answer. When every store failed, the read fails with an
 * UnavailableError whose cause is an AggregateError of the failures.
 */
import { AbortedError, throwIfAborted, UnavailableError, withContext } from "../../errors.js";
import type { Logger } from "../../observability/log.js";
import type { CallOptions } from "../call-options.js";
import { closeIterator, isCallerError, type Member, withSignal } from "./support.js";

/** One read against one store; `undefined` is a miss. */
export type Probe<S, T> = (service: S, options: CallOptions) => Promise<T | undefined>;

/** What `select` found. */
export interface SelectOutcome<T> {
  /** The first positive answer, or undefined when no store had it. */
  readonly value: T | undefined;
  /** Index of the store that answered (-1 for a miss). */
  readonly index: number;
  /** For a miss: every store answered (none failed), so the miss may be remembered. */
  readonly complete: boolean;
}

/** The combinator calling `select`, for messages and logs. */
export interface SelectCaller {
  /** E.g. `path info priority 'substituters'`. */
  readonly what: string;
  readonly log: Logger;
}

/** A strategy for asking several stores the same question. */
export interface Selector {
  readonly name: "priority" | "race";
  /**
   * Asks `members` with `probe` (`op` names the read in messages); resolves
   * to the first positive answer. `release` frees a positive answer that is
   * not used (race losers that answered late).
   */
  select<S, T>(
    members: readonly Member<S>[],
    op: string,
    probe: Probe<S, T>,
    options: CallOptions | undefined,
    caller: SelectCaller,
    release?: (value: T) => void,
  ): Promise<SelectOutcome<T>>;
}

function callerAborted(options: CallOptions | undefined): boolean {
  return options?.signal?.aborted === true;
}

/** Throws if `err` must not be skipped; otherwise returns it wrapped with the store's name. */
function skippable(
  err: unknown,
  options: CallOptions | undefined,
  member: Member<unknown>,
  op: string,
  caller: SelectCaller,
): unknown {
  if (callerAborted(options)) {
    throw err instanceof AbortedError
      ? err
      : new AbortedError("operation aborted", { cause: options?.signal?.reason });
  }
  if (isCallerError(err) && !(err instanceof AbortedError)) throw err;
  return withContext(err, `${caller.what}: store '${member.name}' failed (${op})`);
}

function allFailed(
  failures: readonly unknown[],
  op: string,
  caller: SelectCaller,
): UnavailableError {
  return new UnavailableError(`${caller.what}: ${op}: all ${failures.length} stores failed`, {
    cause: new AggregateError(failures, `${failures.length} stores failed`),
  });
}

/** Asks the stores in list order; the first positive answer wins. */
export const prioritySelector: Selector = {
  name: "priority",
  async select<S, T>(
    members: readonly Member<S>[],
    op: string,
    probe: Probe<S, T>,
    options: CallOptions | undefined,
    caller: SelectCaller,
  ): Promise<SelectOutcome<T>> {
    throwIfAborted(options?.signal);
    const failures: unknown[] = [];
    for (const [index, member] of members.entries()) {
      throwIfAborted(options?.signal);
      let value: T | undefined;
      try {
        value = await probe(member.service, options ?? {});
      } catch (err) {
        const failure = skippable(err, options, member, op, caller);
        failures.push(failure);
        caller.log.warn(`store '${member.name}' failed, trying the next`, {
          store: member.name,
          op,
          error: failure,
        });
        continue;
      }
      if (value !== undefined) return { value, index, complete: true };
    }
    if (members.length > 0 && failures.length === members.length) {
      throw allFailed(failures, op, caller);
    }
    return { value: undefined, index: -1, complete: failures.length === 0 };
  },
};

type Settled<T> =
  | { readonly i: number; readonly ok: true; readonly value: T | undefined }
  | { readonly i: number; readonly ok: false; readonly err: unknown };

/**
 * Asks the stores concurrently; the first positive answer wins and the
 * others are aborted. With `hedgeAfterMs`, the first store is asked alone
 * and one more is started each time that many milliseconds pass without an
 * answer (or at once when a store answers with a miss or fails).
 */
export function raceSelector(hedgeAfterMs?: number): Selector {
  return {
    name: "race",
    async select<S, T>(
      members: readonly Member<S>[],
      op: string,
      probe: Probe<S, T>,
      options: CallOptions | undefined,
      caller: SelectCaller,
      release?: (value: T) => void,
    ): Promise<SelectOutcome<T>> {
      throwIfAborted(options?.signal);
      const controllers = new Map<number, AbortController>();
      const pending = new Map<number, Promise<Settled<T>>>();
      const failures: unknown[] = [];
      let next = 0;
      let lastStart = 0;
      const start = (): void => {
        if (next >= members.length) return;
        const i = next++;
        const controller = new AbortController();
        controllers.set(i, controller);
        lastStart = Date.now();
        pending.set(
          i,
          probe(members[i]!.service, withSignal(options, controller.signal)).then(
            (value): Settled<T> => ({ i, ok: true, value }),
            (err: unknown): Settled<T> => ({ i, ok: false, err }),
          ),
        );
      };
      // Stops waiting as soon as the caller's signal fires, even for probes that ignore it.
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () =>
          reject(new AbortedError("operation aborted", { cause: options?.signal?.reason }));
        options?.signal?.addEventListener("abort", onAbort, { once: true });
      });
      aborted.catch(() => undefined);

      if (hedgeAfterMs === undefined) while (next < members.length) start();
      else start();
      try {
        while (pending.size > 0 || next < members.length) {
          if (pending.size === 0) {
            start();
            continue;
          }
          let timer: ReturnType<typeof setTimeout> | undefined;
          const waits: Promise<Settled<T> | "hedge">[] = [...pending.values(), aborted];
          if (hedgeAfterMs !== undefined && next < members.length) {
            const delay = Math.max(0, lastStart + hedgeAfterMs - Date.now());
            waits.push(
              new Promise((resolve) => {
                timer = setTimeout(() => resolve("hedge"), delay);
              }),
            );
          }
          let got: Settled<T> | "hedge";
          try {
            got = await Promise.race(waits);
          } finally {
            clearTimeout(timer);
          }
          if (got === "hedge") {
            caller.log.debug(`no answer after ${hedgeAfterMs} ms, asking the next store`, { op });
            start();
            continue;
          }
          pending.delete(got.i);
          controllers.delete(got.i);
          const member = members[got.i]!;
          if (got.ok) {
            if (got.value !== undefined) {
              caller.log.debug(`store '${member.name}' won the race`, { op, store: member.name });
              return { value: got.value, index: got.i, complete: true };
            }
          } else {
            const failure = skippable(got.err, options, member, op, caller);
            failures.push(failure);
            caller.log.warn(`store '${member.name}' failed, waiting for the others`, {
              store: member.name,
              op,
              error: failure,
            });
          }
          // A miss or a failure: no reason to wait for the hedge delay.
          if (hedgeAfterMs !== undefined) start();
        }
      } finally {
        if (onAbort !== undefined) options?.signal?.removeEventListener("abort", onAbort);
        // Whatever still runs lost (or the race failed): abort it, and free
        // any positive answer it still delivers.
        for (const [i, controller] of controllers) {
          caller.log.debug(`aborting store '${members[i]!.name}' (lost the race)`, { op });
          controller.abort(new AbortedError(`${caller.what}: lost the race (${op})`));
          void pending.get(i)?.then((s) => {
            if (s.ok && s.value !== undefined) release?.(s.value);
          });
        }
      }
      if (members.length > 0 && failures.length === members.length) {
        throw allFailed(failures, op, caller);
      }
      return { value: undefined, index: -1, complete: failures.length === 0 };
    },
  };
}

/** An iterator whose first item was already read: what stream probes return. */
export interface Opened<T> {
  readonly first: T;
  readonly rest: AsyncIterator<T>;
}

/**
 * A probe for a stream: starts it and waits for the first item (`undefined`
 * when the stream is empty, which counts as a miss).
 */
export async function openStream<T>(source: AsyncIterable<T>): Promise<Opened<T> | undefined> {
  const it = source[Symbol.asyncIterator]();
  let first: IteratorResult<T>;
  try {
    first = await it.next();
  } catch (err) {
    await closeIterator(it);
    throw err;
  }
  if (first.done === true) return undefined;
  return { first: first.value, rest: it };
}

/** Frees an opened stream nobody will read. */
export function releaseStream(opened: Opened<unknown>): void {
  void closeIterator(opened.rest);
}

/** The items of an opened stream, the first one included. */
export async function* resumeStream<T>(opened: Opened<T>): AsyncGenerator<T, void, undefined> {
  try {
    yield opened.first;
    for (;;) {
      const next = await opened.rest.next();
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    await closeIterator(opened.rest);
  }
}
