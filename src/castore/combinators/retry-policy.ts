/**
 * The retry loop of the `retry` combinators: repeats a call that failed with
 * an `Unavailable` error (backend or network down; ARCHITECTURE §6), with
 * exponential backoff and jitter, up to a number of attempts. Every other
 * error, and a fired AbortSignal, ends the loop at once. Browser-safe.
 */
import { throwIfAborted, UnavailableError } from "../../errors.js";
import type { Logger } from "../../observability/log.js";
import type { CallOptions } from "../call-options.js";
import { isUnavailable, sleep } from "./support.js";

/** Tunables of a retry loop (each has a default in the `retry` type's schema). */
export interface RetryPolicy {
  /** Total attempts, the first one included (>= 1). */
  readonly attempts: number;
  /** Delay before the second attempt, in ms; doubles for each further one. */
  readonly backoffMs: number;
  /** Upper bound of a single delay, in ms. */
  readonly maxBackoffMs: number;
  /**
   * Random source in [0, 1) for jitter: each delay is drawn from [d/2, d].
   * Default `Math.random`.
   */
  readonly random?: () => number;
}

/** The delay before attempt `attempt` (2, 3, ...). */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** Math.max(0, attempt - 2));
  const r = (policy.random ?? Math.random)();
  return Math.round(base / 2 + (base / 2) * r);
}

/**
 * Runs `call` until it succeeds, fails with something other than
 * Unavailable, or `policy.attempts` attempts failed; the last failure is then
 * thrown as an UnavailableError saying how many attempts were made, with the
 * failure as cause. `what` names the combinator and the operation.
 */
export async function retrying<T>(
  policy: RetryPolicy,
  what: string,
  options: CallOptions | undefined,
  log: Logger,
  call: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(options?.signal);
    try {
      return await call();
    } catch (err) {
      if (!isUnavailable(err) || options?.signal?.aborted === true) throw err;
      if (attempt >= policy.attempts) {
        throw new UnavailableError(`${what}: giving up after ${attempt} attempts`, { cause: err });
      }
      const delay = backoffDelay(policy, attempt + 1);
      log.debug(`attempt ${attempt} failed, retrying in ${delay} ms`, { op: what, error: err });
      await sleep(delay, options?.signal);
    }
  }
}

/** A stream the retry loop can open again after it failed part-way. */
export interface ResumableStream<T> {
  /** Opens the stream: the first time, and again after a failure (where the last attempt stopped, or from the start). */
  open(): AsyncIterable<T>;
  /**
   * Records an item the stream delivered; false when an earlier attempt
   * already handed it out (a stream restarted from the start), so it is skipped.
   */
  take(item: T): boolean;
  /** The debug line before the next attempt, without the delay: `stream failed at byte 42, resuming`. */
  retryNote(): string;
  /** Appended to the give-up error: where the stream stood (` (stream at byte 42)`), or "". */
  giveUpNote(): string;
}

/**
 * Streams `stream`, opening it again when it fails with Unavailable, under
 * the same policy as `retrying`; the attempt count starts over once an item
 * gets through. `check` runs before and after each item is handed out and
 * after a failure (a combinator's closed state); what it throws ends the
 * stream. `what` names the combinator and the operation.
 */
export async function* retryingStream<T>(
  policy: RetryPolicy,
  what: string,
  options: CallOptions | undefined,
  log: Logger,
  stream: ResumableStream<T>,
  check: () => void = () => undefined,
): AsyncGenerator<T, void, undefined> {
  let failed = 0;
  for (;;) {
    throwIfAborted(options?.signal);
    try {
      for await (const item of stream.open()) {
        check();
        if (!stream.take(item)) continue;
        failed = 0;
        yield item;
        check();
      }
      return;
    } catch (err) {
      check();
      if (!isUnavailable(err) || options?.signal?.aborted === true) throw err;
      failed++;
      if (failed >= policy.attempts) {
        throw new UnavailableError(
          `${what}: giving up after ${failed} attempts${stream.giveUpNote()}`,
          { cause: err },
        );
      }
      const delay = backoffDelay(policy, failed + 1);
      log.debug(`${stream.retryNote()} in ${delay} ms`, { error: err });
      await sleep(delay, options?.signal);
    }
  }
}
