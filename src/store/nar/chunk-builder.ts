/**
 * Coalesces many small writes (NAR tokens, small file contents) into large
 * chunks, and passes large chunks through without copying.
 *
 * By default consumers may keep the produced chunks: a chunk is never
 * written to after it left. With `transient`, buffers are recycled: a chunk
 * stays valid only until the consumer asks for the chunk after the next
 * `take()`. That saves allocating and page-faulting fresh memory, which is
 * about half the cost of hashing a tree.
 */
export class ChunkBuilder {
  readonly #chunkSize: number;
  readonly #passThrough: number;
  readonly #transient: boolean;
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;
  readonly #ready: Uint8Array[] = [];
  /** Transient mode: buffers flushed since the last take / handed out at the last take / free. */
  #inFlight: Uint8Array[] = [];
  #handedOut: Uint8Array[] = [];
  readonly #pool: Uint8Array[] = [];

  constructor(chunkSize = 256 * 1024, passThroughAt = 64 * 1024, transient = false) {
    this.#chunkSize = chunkSize;
    this.#passThrough = passThroughAt;
    this.#transient = transient;
    this.#buf = new Uint8Array(chunkSize);
    this.#view = new DataView(this.#buf.buffer);
  }

  #flush(): void {
    if (this.#pos === 0) return;
    this.#ready.push(this.#buf.subarray(0, this.#pos));
    if (this.#transient) this.#inFlight.push(this.#buf);
    this.#buf = (this.#transient ? this.#pool.pop() : undefined) ?? new Uint8Array(this.#chunkSize);
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
    this.#pos = 0;
  }

  #reserve(n: number): void {
    if (this.#pos + n > this.#buf.length) this.#flush();
  }

  /** Appends bytes; big ones are handed on as they are (after what is buffered). */
  bytes(data: Uint8Array): void {
    if (data.length >= this.#passThrough) {
      this.#flush();
      this.#ready.push(data);
      return;
    }
    this.#reserve(data.length);
    this.#buf.set(data, this.#pos);
    this.#pos += data.length;
  }

  /** A little-endian u64 (values up to 2^53). */
  u64(n: number): void {
    this.#reserve(8);
    this.#view.setUint32(this.#pos, n >>> 0, true);
    this.#view.setUint32(this.#pos + 4, Math.floor(n / 0x100000000), true);
    this.#pos += 8;
  }

  /** Zero bytes up to the next multiple of 8 after `length` bytes. */
  padding(length: number): void {
    const pad = (8 - (length % 8)) % 8;
    if (pad === 0) return;
    this.#reserve(pad);
    this.#buf.fill(0, this.#pos, this.#pos + pad);
    this.#pos += pad;
  }

  /** A NAR string: length, bytes, padding. */
  str(data: Uint8Array): void {
    this.u64(data.length);
    this.bytes(data);
    this.padding(data.length);
  }

  /**
   * Chunks completed so far (drains the queue). In transient mode, calling
   * this means the chunks of the previous take are no longer in use.
   */
  take(): Uint8Array[] {
    if (this.#transient) {
      this.#pool.push(...this.#handedOut);
      this.#handedOut = this.#inFlight;
      this.#inFlight = [];
    }
    return this.#ready.splice(0, this.#ready.length);
  }

  /** Everything left, including the partial chunk. */
  finish(): Uint8Array[] {
    this.#flush();
    return this.take();
  }
}
