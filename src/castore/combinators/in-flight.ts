/**
 * Deduplicates in-flight work by key (STYLE: a check-then-insert across an
 * `await` is a race; share the promise instead). Each caller may bring its
 * own AbortSignal: a caller whose signal fires stops waiting at once, and
 * the shared work itself is aborted only when every caller waiting for it
 * has given up. Browser-safe.
 */
import { AbortedError } from "../../errors.js";

interface Task<T> {
  promise: Promise<T>;
  readonly controller: AbortController;
  waiters: number;
}

export class InFlight<T> {
  readonly #tasks = new Map<string, Task<T>>();

  /** Number of keys with work in flight. */
  get size(): number {
    return this.#tasks.size;
  }

  /**
   * Joins the work for `key`, starting it with `start` if none is in flight.
   * `start` gets a signal that fires when all waiters gave up.
   */
  run(
    key: string,
    signal: AbortSignal | undefined,
    start: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (signal?.aborted) {
      return Promise.reject(new AbortedError("operation aborted", { cause: signal.reason }));
    }
    let task = this.#tasks.get(key);
    if (task === undefined) {
      const controller = new AbortController();
      const created: Task<T> = { promise: Promise.resolve() as Promise<T>, controller, waiters: 0 };
      created.promise = (async () => {
        try {
          return await start(controller.signal);
        } finally {
          if (this.#tasks.get(key) === created) this.#tasks.delete(key);
        }
      })();
      this.#tasks.set(key, created);
      task = created;
    }
    return this.#wait(key, task, signal);
  }

  #wait(key: string, task: Task<T>, signal: AbortSignal | undefined): Promise<T> {
    task.waiters++;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const leave = (): void => {
        done = true;
        signal?.removeEventListener("abort", onAbort);
        task.waiters--;
      };
      const onAbort = (): void => {
        if (done) return;
        leave();
        if (task.waiters === 0) {
          // Nobody waits any more: stop the work, and let a later caller start afresh.
          if (this.#tasks.get(key) === task) this.#tasks.delete(key);
          task.controller.abort(signal?.reason);
        }
        reject(new AbortedError("operation aborted", { cause: signal?.reason }));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      task.promise.then(
        (value) => {
          if (done) return;
          leave();
          resolve(value);
        },
        (err: unknown) => {
          if (done) return;
          leave();
          reject(err);
        },
      );
    });
  }
}
