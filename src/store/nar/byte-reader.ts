/**
 * Exact-size reads over an `AsyncIterable<Uint8Array>` for the NAR parser
 * (browser-safe).
 *
 * The reader holds one chunk at a time. Small reads that straddle two chunks
 * are copied into a buffer of exactly the requested size; everything else is a
 * `subarray` of a source chunk, so file contents pass through without copies.
 * Chunks handed out stay valid as long as the source never reuses a chunk it
 * already yielded (true of Node streams, fetch bodies and `Uint8Array`s).
 */
import { AbortedError, throwIfAborted } from "../../errors.js";

/** Builds the error for input that ends early: `offset` is where it ended. */
export type EndOfInputError = (offset: number, what: string) => Error;

const EMPTY = new Uint8Array(0);

export class ByteReader {
  /**
   * The current chunk and the read position in it. Public so the parser can
   * read tokens in place without a call per byte; move `pos` only through
   * `advance` or after checking `available`.
   */
  buf: Uint8Array = EMPTY;
  pos = 0;
  /** Absolute offset of `buf[0]`. */
  private bufStart = 0;
  /** The rest of a source chunk that `ensure` split; served before the source is asked again. */
  private pending: Uint8Array | undefined;
  private readonly it: AsyncIterator<Uint8Array>;
  private done = false;
  private pulling = false;
  private abortPromise: Promise<never> | undefined;
  private removeAbortListener: (() => void) | undefined;

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly endOfInput: EndOfInputError,
    private readonly signal?: AbortSignal,
  ) {
    this.it = source[Symbol.asyncIterator]();
    if (signal !== undefined) {
      // A source that never yields must not keep an aborted read waiting, so
      // every pull races this promise.
      this.abortPromise = new Promise<never>((_, reject) => {
        const onAbort = (): void =>
          reject(new AbortedError("operation aborted", { cause: signal.reason }));
        signal.addEventListener("abort", onAbort, { once: true });
        this.removeAbortListener = () => signal.removeEventListener("abort", onAbort);
      });
      this.abortPromise.catch(() => {});
    }
  }

  /** Absolute offset of the next unread byte. */
  get offset(): number {
    return this.bufStart + this.pos;
  }

  /** Bytes readable from `buf` at `pos` without waiting. */
  get available(): number {
    return this.buf.length - this.pos;
  }

  advance(n: number): void {
    this.pos += n;
  }

  /** Consumes and returns up to `n` already available bytes (a view, no copy). */
  take(n: number): Uint8Array {
    const end = Math.min(this.pos + n, this.buf.length);
    const view = this.buf.subarray(this.pos, end);
    this.pos = end;
    return view;
  }

  /**
   * Makes at least `n` bytes available contiguously in `buf` at `pos`.
   * Callers bound `n` (it is allocated when the bytes straddle chunks).
   */
  async ensure(n: number, what: string): Promise<void> {
    if (this.available >= n) return;
    if (this.available === 0) {
      await this.refill(what);
      if (this.available >= n) return;
    }
    const start = this.offset;
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos));
    let filled = this.buf.length - this.pos;
    while (filled < n) {
      const chunk = await this.nextChunk();
      if (chunk === undefined) {
        this.replaceBuffer(out.subarray(0, filled), start);
        throw this.endOfInput(start + filled, what);
      }
      const m = Math.min(chunk.length, n - filled);
      out.set(m === chunk.length ? chunk : chunk.subarray(0, m), filled);
      filled += m;
      if (m < chunk.length) this.pending = chunk.subarray(m);
    }
    this.replaceBuffer(out, start);
  }

  /** Loads the next non-empty chunk; only valid when nothing is available. */
  async refill(what: string): Promise<void> {
    const chunk = await this.nextChunk();
    if (chunk === undefined) throw this.endOfInput(this.offset, what);
    this.replaceBuffer(chunk, this.offset);
  }

  /** Consumes `n` bytes without looking at them (streams; never allocates). */
  async skip(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.available === 0) await this.refill(what);
      const m = Math.min(left, this.available);
      this.pos += m;
      left -= m;
    }
  }

  /** True when the source has no more bytes. */
  async atEnd(): Promise<boolean> {
    if (this.available > 0) return false;
    const chunk = await this.nextChunk();
    if (chunk === undefined) return true;
    this.replaceBuffer(chunk, this.offset);
    return false;
  }

  /** Releases the source (calls its `return()`) and the abort listener. */
  async close(): Promise<void> {
    this.removeAbortListener?.();
    if (this.done) return;
    this.done = true;
    let ret: Promise<unknown> | undefined;
    try {
      ret = this.it.return?.();
    } catch {
      // The source is abandoned either way; its cleanup failure must not mask
      // the error (or the success) that made us stop reading.
      return;
    }
    if (ret === undefined) return;
    // An async generator queues return() behind a next() still in flight (after
    // an abort), so waiting for it could hang forever.
    if (this.pulling) ret.catch(() => {});
    else await ret.catch(() => {});
  }

  private replaceBuffer(chunk: Uint8Array, start: number): void {
    this.buf = chunk;
    this.bufStart = start;
    this.pos = 0;
  }

  private async nextChunk(): Promise<Uint8Array | undefined> {
    if (this.pending !== undefined) {
      const p = this.pending;
      this.pending = undefined;
      return p;
    }
    while (!this.done) {
      throwIfAborted(this.signal);
      const next = this.it.next();
      this.pulling = true;
      let res: IteratorResult<Uint8Array>;
      try {
        res = await (this.abortPromise === undefined
          ? next
          : Promise.race([next, this.abortPromise]));
      } catch (err) {
        // After an abort the source's next() may still be in flight.
        if (this.signal?.aborted !== true) this.pulling = false;
        throw err;
      }
      this.pulling = false;
      if (res.done === true) {
        this.done = true;
        return undefined;
      }
      const chunk = res.value;
      if (chunk.length === 0) continue;
      // Buffer's subarray/slice go through a slow subclass constructor (and
      // Buffer#slice does not copy), so work on plain Uint8Array views.
      return chunk.constructor === Uint8Array
        ? chunk
        : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    }
    return undefined;
  }
}
