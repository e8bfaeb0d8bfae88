/**
 * The inner store of a `retry` combinator and the retry loops around it,
 * the same for all three kinds; each kind's `Retry*Service` says which of
 * its calls go through which loop. Browser-safe.
 */
import type { Logger } from "../../observability/log.js";
import type { CallOptions, Closeable } from "../call-options.js";
import { type RetryPolicy, retrying, retryingStream } from "./retry-policy.js";
import {
  type CombinatorDeps,
  type CombinatorKind,
  CombinatorState,
  combinatorIdentity,
  type Member,
} from "./support.js";

/** What a `retry` combinator is built from. */
export interface RetryInit<S> {
  readonly inner: Member<S>;
  readonly policy: RetryPolicy;
}

/** How a restarted stream is described in the debug line before the next attempt. */
export interface RestartLabels {
  /** What failed: `closure stream`, `listing`. */
  readonly stream: string;
  /** What it had delivered: `directories`, `entries`. */
  readonly items: string;
}

export class RetriedInner<S extends Closeable> {
  readonly inner: Member<S>;
  readonly policy: RetryPolicy;
  readonly state: CombinatorState;
  readonly log: Logger;

  constructor(kind: CombinatorKind, init: RetryInit<S>, deps: CombinatorDeps) {
    const { what, log } = combinatorIdentity(kind, "retry", deps);
    this.inner = init.inner;
    this.policy = init.policy;
    this.state = new CombinatorState(what, [init.inner.service]);
    this.log = log;
  }

  /** Names the combinator, the operation and the inner store: `... retry 'r': get x on 'flaky'`. */
  what(op: string): string {
    return `${this.state.what}: ${op} on '${this.inner.name}'`;
  }

  /** A request, repeated while it fails with Unavailable (and the combinator is open). */
  async call<T>(
    op: string,
    options: CallOptions | undefined,
    call: (inner: S) => Promise<T>,
  ): Promise<T> {
    this.state.check(options);
    return retrying(this.policy, this.what(op), options, this.log, () => {
      this.state.check(options);
      return call(this.inner.service);
    });
  }

  /**
   * A stream that, when it fails part-way, is restarted from the start; the
   * items already handed out (told apart by `keyOf`) are skipped.
   */
  async *restarting<T>(
    op: string,
    options: CallOptions | undefined,
    open: (inner: S) => AsyncIterable<T>,
    keyOf: (item: T) => string,
    labels: RestartLabels,
  ): AsyncGenerator<T, void, undefined> {
    this.state.check(options);
    const seen = new Set<string>();
    yield* retryingStream(
      this.policy,
      this.what(op),
      options,
      this.log,
      {
        open: () => open(this.inner.service),
        take: (item) => {
          const key = keyOf(item);
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        },
        retryNote: () => `${labels.stream} failed after ${seen.size} ${labels.items}, restarting`,
        giveUpNote: () => "",
      },
      () => this.state.check(options),
    );
  }

  close(): Promise<void> {
    return this.state.close();
  }
}
