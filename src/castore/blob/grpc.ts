/**
 * A BlobService over gRPC (`grpc+unix://`, `grpc+http(s)://`; the
 * connection comes from castore/grpc). Wire-compatible with Tvix and Snix
 * servers; nothing the server sends is trusted:
 *
 * - Reads are re-hashed as they stream: per chunk when the server's `Stat`
 *   lists chunks, else over the whole blob. The last piece of each verified
 *   unit is held back until its BLAKE3 digest (and size) matched, so a
 *   consumer never sees a complete stream of wrong bytes; nothing is ever
 *   buffered whole.
 * - A blob's size comes from `Stat` with `send_chunks`: the chunk sizes, or
 *   the single entry a strata server lists for a blob it stores whole. A
 *   server that lists nothing (Snix for a blob stored whole) costs one extra
 *   verified read in `openRead` to learn the size.
 * - The protocol has no ranged `Read`: without a chunk list, `read(offset,
 *   length)` streams (and verifies) the whole blob. With one, only the
 *   chunks overlapping the range are read.
 * - `Put` streams as `write` is called; nothing is visible on the server
 *   before `close()` (the server publishes only a complete upload), `abort()`
 *   cancels the stream. The digest the server answers is checked against
 *   our own hash of what we sent.
 * - Durability: a strata server makes a blob durable before it answers
 *   `Put`, so `sync()` has nothing left to do.
 */
import { IntegrityError, InvalidInputError, StorageError, throwIfAborted } from "../../errors.js";
import { storeServices } from "../../proto/packages.js";
import { createBlake3 } from "../blake3.js";
import { bytesEqual, concatBytes } from "../bytes.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, formatB3 } from "../digest.js";
import { BLOB_CHUNK_BYTES } from "../grpc/blob-frames.js";
import { ClientCore, type GrpcClientInit } from "../grpc/client-core.js";
import type { GrpcConnection } from "../grpc/connection.js";
import { PushQueue } from "../grpc/push-queue.js";
import { isNotFound } from "../grpc/status.js";
import type { BlobReader, BlobService, BlobWriter, ChunkMeta, StreamOptions } from "./service.js";

const yes = (): boolean => true;

function falseIfNotFound(err: unknown): boolean {
  if (isNotFound(err)) return false;
  throw err;
}

/** How the server describes a blob: its size, and its chunks if it stores it chunked. */
interface BlobLayout {
  readonly size: number;
  /** Two or more chunks, or undefined for a blob read whole. */
  readonly chunks: readonly ChunkMeta[] | undefined;
}

export class GrpcBlobService implements BlobService {
  readonly #core: ClientCore;
  readonly #blob: ReturnType<typeof storeServices>["blob"];

  constructor(conn: GrpcConnection, init?: GrpcClientInit) {
    this.#core = new ClientCore(conn, "blob service", init);
    this.#blob = storeServices(conn.pkg).blob;
  }

  /** @internal */
  get core(): ClientCore {
    return this.#core;
  }

  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    return this.#core.run(
      () => `has ${formatB3(digest)}`,
      options,
      (signal) =>
        this.#core.conn
          .unary(this.#blob.method.stat, { digest, sendChunks: false }, signal)
          .then(yes, falseIfNotFound),
    );
  }

  /** The chunk list as the server sends it, validated; undefined if the blob does not exist. */
  async #stat(digest: B3Digest, signal: AbortSignal | undefined): Promise<ChunkMeta[] | undefined> {
    let chunks: { digest: Uint8Array; size: bigint }[];
    try {
      const res = await this.#core.conn.unary(
        this.#blob.method.stat,
        { digest, sendChunks: true },
        signal,
      );
      chunks = res.chunks;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const what = `Stat of ${formatB3(digest)}`;
    let total = 0;
    const out = chunks.map((c, i): ChunkMeta => {
      if (c.digest.length !== 32) {
        throw new IntegrityError(`${what}: chunk #${i} has a digest of ${c.digest.length} bytes`);
      }
      if (c.size > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new IntegrityError(`${what}: chunk #${i} has size ${c.size}`);
      }
      total += Number(c.size);
      return { digest: c.digest as B3Digest, size: Number(c.size) };
    });
    if (!Number.isSafeInteger(total)) throw new IntegrityError(`${what}: chunk sizes overflow`);
    if (out.length === 1 && !bytesEqual(out[0]!.digest, digest)) {
      throw new IntegrityError(`${what}: a single chunk must be the blob itself`);
    }
    if (out.length > 1 && out.some((c) => c.size === 0)) {
      throw new IntegrityError(`${what}: the chunk list has an empty chunk`);
    }
    return out;
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#core.run(
      () => `chunks of ${formatB3(digest)}`,
      options,
      async (signal) => {
        const list = await this.#stat(digest, signal);
        if (list === undefined) return undefined;
        // A single entry is the blob itself (how a strata server reports the
        // size of a blob stored whole): not a chunking.
        return list.length <= 1 ? [] : list;
      },
    );
  }

  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    const what = `openRead ${formatB3(digest)}`;
    return this.#core.run(what, options, async (signal) => {
      const list = await this.#stat(digest, signal);
      if (list === undefined) return undefined;
      let layout: BlobLayout;
      if (list.length > 1) {
        layout = { size: list.reduce((n, c) => n + c.size, 0), chunks: list };
      } else if (list.length === 1) {
        layout = { size: list[0]!.size, chunks: undefined };
      } else {
        // The server stores it whole and does not say how big it is: one
        // verified pass to learn the size.
        let size = 0;
        for await (const piece of this.verifiedRead(digest, undefined, this.#core.signal(signal)))
          size += piece.length;
        layout = { size, chunks: undefined };
      }
      return new GrpcBlobReader(this, digest, layout);
    });
  }

  /**
   * The bytes of a blob or chunk, verified against `digest` (and `size` when
   * known) as they stream; the last piece comes only after the check passed.
   * @internal
   */
  async *verifiedRead(
    digest: B3Digest,
    size: number | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    const what = `read of ${formatB3(digest)}`;
    const hasher = createBlake3();
    let n = 0;
    let held: Uint8Array | undefined;
    for await (const piece of this.#core.conn.readBlob(digest, signal)) {
      if (piece.length === 0) continue;
      n += piece.length;
      if (size !== undefined && n > size) {
        throw new IntegrityError(`${what}: the server sent more than the ${size} bytes expected`);
      }
      hasher.update(piece);
      if (held !== undefined) yield held;
      held = piece;
    }
    if (size !== undefined && n !== size) {
      throw new IntegrityError(`${what}: the server sent ${n} bytes, expected ${size}`);
    }
    const got = hasher.digest();
    if (!bytesEqual(got, digest)) {
      throw new IntegrityError(`${what}: the data received has digest ${formatB3(got)}`);
    }
    if (held !== undefined) yield held;
  }

  openWrite(options?: CallOptions): BlobWriter {
    this.#core.check("openWrite", options?.signal);
    return new GrpcBlobWriter(this.#core, options?.signal);
  }

  async sync(options?: CallOptions): Promise<void> {
    // Every Put a strata server acknowledged is durable already.
    this.#core.check("sync", options?.signal);
  }

  async close(): Promise<void> {
    this.#core.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class GrpcBlobReader implements BlobReader {
  readonly #service: GrpcBlobService;
  readonly #digest: B3Digest;
  readonly #layout: BlobLayout;
  #closed = false;

  constructor(service: GrpcBlobService, digest: B3Digest, layout: BlobLayout) {
    this.#service = service;
    this.#digest = digest;
    this.#layout = layout;
  }

  get size(): number {
    return this.#layout.size;
  }

  #check(what: string, offset: number, options: CallOptions | undefined): void {
    const core = this.#service.core;
    if (this.#closed) {
      throw new StorageError(`${core.label}: ${what}: the reader is closed`);
    }
    core.check(what, options?.signal);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.size) {
      throw new InvalidInputError(
        `${core.label}: ${what}: offset ${offset} outside 0..${this.size}`,
      );
    }
  }

  async read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    const what = `read of ${formatB3(this.#digest)}`;
    this.#check(what, offset, options);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new InvalidInputError(`${this.#service.core.label}: ${what}: bad length ${length}`);
    }
    const end = Math.min(this.size, offset + length);
    if (end === offset) return new Uint8Array(0);
    const parts: Uint8Array[] = [];
    for await (const p of this.#range(offset, end, options)) parts.push(p);
    return concatBytes(parts);
  }

  async *stream(offset = 0, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    this.#check(`stream of ${formatB3(this.#digest)}`, offset, options);
    if (offset === this.size) return;
    yield* this.#range(offset, this.size, options);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Bytes [start, end), verified, in pieces of at most 1 MiB. */
  async *#range(
    start: number,
    end: number,
    options: CallOptions | undefined,
  ): AsyncGenerator<Uint8Array> {
    const core = this.#service.core;
    const what = `read of ${formatB3(this.#digest)}`;
    // Ends the call when the consumer stops early (connect does not on its own).
    const done = new AbortController();
    const signal = core.signal(options?.signal, done.signal);
    // Chunks are verified one by one; that the list of chunks makes up this
    // blob can only be checked by hashing all of it, which a whole read does
    // (holding its last piece back until then). A range read of a chunked
    // blob trusts the list, as every chunked reader must without bao.
    const whole =
      this.#layout.chunks !== undefined && start === 0 && end === this.size
        ? createBlake3()
        : undefined;
    let held: Uint8Array | undefined;
    try {
      let pos = 0;
      for (const unit of this.#units(start, end)) {
        pos = unit.offset;
        for await (const piece of this.#service.verifiedRead(unit.digest, unit.size, signal)) {
          const pieceEnd = pos + piece.length;
          if (pieceEnd > start && pos < end) {
            const part = piece.subarray(Math.max(start, pos) - pos, Math.min(end, pieceEnd) - pos);
            for (let o = 0; o < part.length; o += BLOB_CHUNK_BYTES) {
              const out = part.subarray(o, o + BLOB_CHUNK_BYTES);
              if (whole === undefined) {
                yield out;
                continue;
              }
              whole.update(out);
              if (held !== undefined) yield held;
              held = out;
            }
          }
          pos = pieceEnd;
          if (this.#closed) throw new StorageError(`${core.label}: ${what}: the reader is closed`);
        }
        throwIfAborted(options?.signal);
      }
      if (whole !== undefined) {
        const got = whole.digest();
        if (!bytesEqual(got, this.#digest)) {
          throw new IntegrityError(
            `${core.label}: ${what}: the chunks the server listed make up a blob with digest ${formatB3(got)}`,
          );
        }
        if (held !== undefined) yield held;
      }
    } catch (err) {
      throw core.error(err, what, options?.signal);
    } finally {
      done.abort();
    }
  }

  /** The verified units to read for [start, end): the chunks overlapping it, or the whole blob. */
  *#units(
    start: number,
    end: number,
  ): Generator<{ digest: B3Digest; size: number; offset: number }> {
    const chunks = this.#layout.chunks;
    if (chunks === undefined) {
      yield { digest: this.#digest, size: this.size, offset: 0 };
      return;
    }
    let offset = 0;
    for (const c of chunks) {
      if (offset + c.size > start && offset < end) yield { ...c, offset };
      offset += c.size;
    }
  }
}

/** How many bytes of a blob upload may wait to be sent before `write` waits. */
const MAX_QUEUED_BYTES = 4 * BLOB_CHUNK_BYTES;

class GrpcBlobWriter implements BlobWriter {
  readonly #core: ClientCore;
  readonly #signal: AbortSignal | undefined;
  readonly #hasher = createBlake3();
  readonly #queue = new PushQueue<Uint8Array>();
  /** Cancels the upload (abort, a fired signal, a failed close). */
  readonly #cancel = new AbortController();
  #call: Promise<Uint8Array> | undefined;
  /** Bytes not yet queued (a message being filled). */
  #staging: Uint8Array | undefined;
  #staged = 0;
  /** Messages queued and not known to be sent, oldest first. */
  readonly #queued: { sent: Promise<void>; bytes: number }[] = [];
  #queuedBytes = 0;
  #bytesWritten = 0;
  #state: "open" | "closing" | "closed" | "aborted" = "open";

  constructor(core: ClientCore, signal: AbortSignal | undefined) {
    this.#core = core;
    this.#signal = signal;
    signal?.addEventListener("abort", () => void this.abort(signal.reason), { once: true });
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  #check(what: string, options: CallOptions | undefined): void {
    this.#core.check(what, this.#signal, options?.signal);
    if (this.#state !== "open") {
      throw new InvalidInputError(
        `${this.#core.label}: blob writer is ${this.#state}; it accepts no more calls`,
      );
    }
  }

  /** Starts the Put on first use; its failure fails every pending write. */
  #start(): Promise<Uint8Array> {
    if (this.#call === undefined) {
      const call = this.#core.conn.putBlob(
        this.#queue,
        this.#core.signal(this.#cancel.signal, this.#signal),
      );
      call.then(
        () => this.#queue.fail(new StorageError("the server answered before the upload ended")),
        (err: unknown) => this.#queue.fail(err),
      );
      this.#call = call;
    }
    return this.#call;
  }

  async write(data: Uint8Array, options?: CallOptions): Promise<void> {
    this.#check("write", options);
    if (data.length === 0) return;
    this.#hasher.update(data);
    this.#bytesWritten += data.length;
    this.#start();
    try {
      // Copied into messages of BLOB_CHUNK_BYTES (small writes coalesce), so
      // the caller may reuse its buffer at once and several messages can be
      // on their way while the caller produces the next bytes.
      for (let o = 0; o < data.length; ) {
        this.#staging ??= new Uint8Array(BLOB_CHUNK_BYTES);
        const n = Math.min(data.length - o, BLOB_CHUNK_BYTES - this.#staged);
        this.#staging.set(data.subarray(o, o + n), this.#staged);
        this.#staged += n;
        o += n;
        if (this.#staged === BLOB_CHUNK_BYTES) await this.#flush();
      }
      // A per-call signal that fired while the bytes were in flight ends the upload.
      throwIfAborted(options?.signal);
    } catch (err) {
      await this.abort(err);
      throw this.#core.error(err, "write", this.#signal, options?.signal);
    }
  }

  /** Queues the staged bytes as one message; waits while too much is queued. */
  async #flush(): Promise<void> {
    if (this.#staging === undefined || this.#staged === 0) return;
    const message =
      this.#staged === this.#staging.length ? this.#staging : this.#staging.slice(0, this.#staged);
    this.#staging = undefined;
    this.#staged = 0;
    const sent = this.#queue.push(message);
    sent.catch(() => {
      // Surfaces through the call (and the next wait on it).
    });
    this.#queued.push({ sent, bytes: message.length });
    this.#queuedBytes += message.length;
    while (this.#queuedBytes > MAX_QUEUED_BYTES) {
      const first = this.#queued.shift()!;
      this.#queuedBytes -= first.bytes;
      await first.sent;
    }
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    try {
      this.#check("close", options);
    } catch (err) {
      // A close that cannot finish must not leave a half-open upload around.
      if (this.#state === "open") await this.abort(err);
      throw err;
    }
    this.#state = "closing";
    const call = this.#start();
    let digest: Uint8Array;
    try {
      await this.#flush();
      this.#queue.end();
      digest = await call;
      throwIfAborted(options?.signal);
    } catch (err) {
      this.#state = "aborted";
      this.#cancel.abort(err);
      throw this.#core.error(err, "close", this.#signal, options?.signal);
    }
    this.#state = "closed";
    const ours = this.#hasher.digest();
    if (!bytesEqual(digest, ours)) {
      throw new IntegrityError(
        `${this.#core.label}: the server answered digest ${formatB3(digest)} for a blob whose digest is ${formatB3(ours)}`,
      );
    }
    return digest as B3Digest;
  }

  async abort(reason?: unknown): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "aborted";
    this.#queue.fail(reason ?? new StorageError("blob upload aborted"));
    this.#cancel.abort(reason);
  }
}
