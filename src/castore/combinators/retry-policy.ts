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
