/**
 * The request stream of a client-streaming call (blob and directory
 * uploads), fed one item at a time by `push`. An item counts as sent — its
 * `push` resolves — when the consumer (the HTTP/2 request body) asks for the
 * next one, i.e. after the previous one was written out; so a writer never
 * has more than one item in flight and may reuse its buffers once `push`
 * resolved. Single consumer. Browser-safe.
 */
export class PushQueue<T> implements AsyncIterable<T> {
  readonly #items: { item: T; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #inFlight: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  #wake: (() => void) | undefined;
  #ended = false;
  #failure: unknown;

  /** Queues an item; resolves once it was sent, rejects if the stream failed first. */
  push(item: T): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#items.push({ item, resolve, reject });
      this.#wake?.();
    });
  }

  /** Ends the stream after the queued items. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /** Rejects every item not yet sent, and the consumer's next read. First failure wins. */
  fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    this.#inFlight?.reject(err);
    this.#inFlight = undefined;
    for (const entry of this.#items.splice(0)) entry.reject(err);
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    while (true) {
      // Asked again: the item handed out last was sent.
      this.#inFlight?.resolve();
      this.#inFlight = undefined;
      if (this.#failure !== undefined) throw this.#failure;
      const entry = this.#items.shift();
      if (entry !== undefined) {
        this.#inFlight = entry;
        yield entry.item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
