/** Options every service method takes. */
export interface CallOptions {
  /**
   * Cancels the call. Methods check it on entry and between chunks, and
   * reject with an `AbortedError` (code "Aborted") once it fired.
   */
  signal?: AbortSignal;
}

/** Every service that holds resources can be closed, also with `await using`. */
export interface Closeable {
  /** Releases resources. Idempotent. Calls after close() fail. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
