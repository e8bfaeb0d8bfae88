/**
 * Whole NARs rendered from castore straight into recycled output buffers
 * (the binary cache's NAR responses, `strata nar dump`). Node-only (Buffers).
 *
 * What this saves over the generic NAR writer (src/store/nar/writer.ts) fed
 * by castore readers (NOTES.md, "Binary cache vs nginx"):
 * - small blobs are read from objectstore+file's small-blob store straight
 *   into the output buffer (`readSmallInto`), instead of into a fresh
 *   buffer per blob that is then copied again, and without a reader,
 *   generators and promises per file;
 * - large blobs are read with positional reads straight into the output
 *   buffers (`readInto`), so tokens and contents leave in the same writes
 *   and nothing is copied in user space;
 * - the tree walk is one synchronous loop over the directories loaded up
 *   front (NarGeometry), not an async generator per directory and per file;
 * - output buffers come from a pool shared by all responses: no fresh memory
 *   to fault in and zero for every response.
 *
 * Reads into the next buffers run on libuv's thread pool while earlier ones
 * are being written. A response holds at most `depth` (+1) buffers (being
 * filled, being read into, queued on the socket), which bounds its memory
 * and is its backpressure: a buffer comes back when the socket is done
 * with it.
 *
 * Other blob services work too, slower: without `readSmallInto` every file
 * goes through `openRead`, and a reader without `readInto` is streamed and
 * copied.
 * The bytes are the same as the NAR writer's (the tests compare them).
 */
import type { BlobReader, BlobService } from "../../castore/blob/service.js";
import type { CallOptions } from "../../castore/call-options.js";
import { type B3Digest, formatB3 } from "../../castore/digest.js";
import type { Entry, FileNode, Node } from "../../castore/node.js";
import { AbortedError, IntegrityError } from "../../errors.js";
import type { NarGeometry } from "./geometry.js";
import {
  NAR_CLOSE as CLOSE,
  NAR_DIRECTORY as DIRECTORY_HEAD,
  NAR_ENTRY as ENTRY_HEAD,
  NAR_EXECUTABLE as EXECUTABLE_HEAD,
  NAR_MAGIC as MAGIC,
  NAR_NODE as NODE,
  NAR_REGULAR as REGULAR_HEAD,
  NAR_SYMLINK as SYMLINK_HEAD,
} from "./tokens.js";

/**
 * Output buffer size. Measured on the cache shootout: 256 KiB writes cost
 * the same CPU per byte as 1 MiB ones, and keep what 16 concurrent
 * responses hold small.
 */
export const NAR_BUFFER_SIZE = 256 * 1024;
/**
 * Buffers one response may hold: enough for reads to run ahead of the
 * socket (2 to 4 measured the same on the shootout; 16 responses hold 12 MiB).
 */
const DEPTH = 3;
/** Idle buffers kept for later responses (4 MiB); beyond that they are left to the GC. */
const POOL_MAX = 16;
/** No small blob is larger (objectstore+file's smallBlobMaxBytes is at most 1 MiB). */
const SMALL_MAX = 1024 * 1024;
/** For small blobs that straddle two output buffers (allocated on first use). */
let scratch: Uint8Array | undefined;

function scratchBuffer(): Uint8Array {
  scratch ??= new Uint8Array(SMALL_MAX);
  return scratch;
}

const pool: Buffer[] = [];

function noop(): void {}

/** One output buffer: `len` bytes filled (some possibly by reads still running). */
export interface NarSlot {
  readonly buf: Buffer;
  len: number;
  /** Reads into this buffer not known to be finished. */
  readonly reads: Promise<void>[];
}

export interface NarRenderOptions extends CallOptions {
  /** Output buffer size (tests use tiny ones; only the default size is pooled). */
  bufferSize?: number;
  /** Buffers in use per response at most (default 3). */
  depth?: number;
}

/**
 * The NAR of `root`, produced into output buffers. Take them with `next()`
 * in order and give each back with `release()` once its bytes are written;
 * `cancel()` when stopping early.
 */
export class NarRender {
  readonly #root: Node;
  readonly #geometry: NarGeometry;
  readonly #blobs: Pick<BlobService, "openRead" | "readSmallInto">;
  readonly #options: CallOptions;
  readonly #bufferSize: number;
  readonly #depth: number;
  #cur: NarSlot | undefined;
  readonly #sealed: NarSlot[] = [];
  /** Buffers taken and not released (the one being filled included). */
  #held = 0;
  #done = false;
  #failure: { err: unknown } | undefined;
  #cancelled: { reason: unknown } | undefined;
  #wakeConsumer: (() => void) | undefined;
  #wakeProducer: (() => void) | undefined;
  #unlisten: (() => void) | undefined;

  constructor(
    root: Node,
    geometry: NarGeometry,
    blobs: Pick<BlobService, "openRead" | "readSmallInto">,
    options: NarRenderOptions = {},
  ) {
    this.#root = root;
    this.#geometry = geometry;
    this.#blobs = blobs;
    this.#options = options.signal === undefined ? {} : { signal: options.signal };
    this.#bufferSize = options.bufferSize ?? NAR_BUFFER_SIZE;
    this.#depth = Math.max(2, options.depth ?? DEPTH);
    const signal = options.signal;
    if (signal !== undefined) {
      // Wakes a producer waiting for buffers that a dead socket may never give back.
      const onAbort = (): void => this.cancel(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#unlisten = () => signal.removeEventListener("abort", onAbort);
    }
    void this.#produce();
  }

  /** The next filled buffer, in order (its bytes: `buf.subarray(0, len)`), or undefined at the end. */
  async next(): Promise<NarSlot | undefined> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure.err;
      if (this.#cancelled !== undefined) throw this.#cancelled.reason;
      const slot = this.#sealed.shift();
      if (slot !== undefined) {
        if (slot.reads.length > 0) await Promise.all(slot.reads);
        return slot;
      }
      if (this.#done) return undefined;
      await new Promise<void>((resolve) => {
        this.#wakeConsumer = resolve;
      });
    }
  }

  /**
   * Gives a buffer back: its bytes were written (`reuse`), or it is dropped
   * (a failed write: the buffer may still be referenced, so it is not pooled).
   */
  release(slot: NarSlot, reuse = true): void {
    this.#held--;
    if (
      reuse &&
      this.#cancelled === undefined &&
      slot.buf.length === NAR_BUFFER_SIZE &&
      pool.length < POOL_MAX
    ) {
      pool.push(slot.buf);
    }
    this.#wake("producer");
  }

  /** Stops producing; buffers not handed back are left to the GC (reads may still run into them). */
  cancel(reason: unknown = new AbortedError("NAR rendering cancelled")): void {
    this.#unlisten?.();
    if (this.#done || this.#cancelled !== undefined) return;
    this.#cancelled = { reason };
    this.#wake("producer");
    this.#wake("consumer");
  }

  #wake(who: "producer" | "consumer"): void {
    const f = who === "producer" ? this.#wakeProducer : this.#wakeConsumer;
    if (f === undefined) return;
    if (who === "producer") this.#wakeProducer = undefined;
    else this.#wakeConsumer = undefined;
    f();
  }

  // ---- producer ----

  async #produce(): Promise<void> {
    try {
      this.#put(MAGIC);
      const stack: { readonly entries: readonly Entry[]; i: number }[] = [];
      let node: Node | undefined = this.#root;
      const signal = this.#options.signal;
      for (;;) {
        if (node !== undefined) {
          switch (node.type) {
            case "file": {
              this.#put(node.executable ? EXECUTABLE_HEAD : REGULAR_HEAD);
              this.#u64(node.size);
              // Small blobs are copied synchronously: no await, no microtask.
              const reading = this.#contents(node);
              if (reading !== undefined) await reading;
              this.#zeros((8 - (node.size % 8)) % 8);
              this.#put(CLOSE);
              break;
            }
            case "symlink":
              this.#put(SYMLINK_HEAD);
              this.#str(node.target);
              this.#put(CLOSE);
              break;
            case "directory":
              this.#put(DIRECTORY_HEAD);
              stack.push({ entries: this.#geometry.directory(node.digest).entries, i: 0 });
              break;
          }
          // A finished file or symlink inside a directory closes its entry too.
          if (node.type !== "directory" && stack.length > 0) this.#put(CLOSE);
          node = undefined;
        }
        const top = stack[stack.length - 1];
        if (top === undefined) break;
        if (top.i === top.entries.length) {
          stack.pop();
          this.#put(CLOSE); // the directory
          if (stack.length > 0) this.#put(CLOSE); // its entry in the parent
          continue;
        }
        const entry = top.entries[top.i++]!;
        this.#put(ENTRY_HEAD);
        this.#str(entry.name);
        this.#put(NODE);
        node = entry.node;
        if (signal?.aborted === true) throw new AbortedError("NAR rendering aborted");
        if (this.#held > this.#depth) await this.#room();
      }
      this.#seal();
      this.#done = true;
    } catch (err) {
      this.#failure ??= { err };
    } finally {
      if (this.#failure !== undefined) this.#unlisten?.();
      this.#wake("consumer");
    }
  }

  /** Waits until a buffer was given back (or the render was cancelled). */
  async #room(): Promise<void> {
    while (this.#cancelled === undefined && this.#held >= this.#depth) {
      await new Promise<void>((resolve) => {
        this.#wakeProducer = resolve;
      });
    }
    if (this.#cancelled !== undefined) throw this.#cancelled.reason;
  }

  /** The buffer being filled (a new one when there is none). */
  #slot(): NarSlot {
    let slot = this.#cur;
    if (slot === undefined) {
      this.#held++;
      const buf =
        this.#bufferSize === NAR_BUFFER_SIZE
          ? (pool.pop() ?? Buffer.allocUnsafeSlow(NAR_BUFFER_SIZE))
          : Buffer.allocUnsafeSlow(this.#bufferSize);
      slot = { buf, len: 0, reads: [] };
      this.#cur = slot;
    }
    return slot;
  }

  /** Hands the buffer being filled to the consumer. */
  #seal(): void {
    const slot = this.#cur;
    if (slot === undefined || slot.len === 0) return;
    this.#cur = undefined;
    this.#sealed.push(slot);
    this.#wake("consumer");
  }

  #put(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      const slot = this.#slot();
      const n = Math.min(bytes.length - off, slot.buf.length - slot.len);
      slot.buf.set(n === bytes.length ? bytes : bytes.subarray(off, off + n), slot.len);
      slot.len += n;
      off += n;
      if (slot.len === slot.buf.length) this.#seal();
    }
  }

  /** A little-endian u64 (sizes up to 2^53). */
  #u64(n: number): void {
    const slot = this.#slot();
    if (slot.buf.length - slot.len >= 8) {
      slot.buf.writeUInt32LE(n >>> 0, slot.len);
      slot.buf.writeUInt32LE(Math.floor(n / 0x100000000), slot.len + 4);
      slot.len += 8;
      if (slot.len === slot.buf.length) this.#seal();
      return;
    }
    const b = Buffer.allocUnsafe(8);
    b.writeUInt32LE(n >>> 0, 0);
    b.writeUInt32LE(Math.floor(n / 0x100000000), 4);
    this.#put(b);
  }

  #zeros(n: number): void {
    if (n > 0) this.#put(ZEROS.subarray(0, n));
  }

  /** A NAR string: length, bytes, zero padding to 8. */
  #str(bytes: Uint8Array): void {
    this.#u64(bytes.length);
    this.#put(bytes);
    this.#zeros((8 - (bytes.length % 8)) % 8);
  }

  /** A file's contents: copied at once when it is a small blob, else read (the promise). */
  #contents(node: FileNode): Promise<void> | undefined {
    const { readSmallInto } = this.#blobs;
    if (node.size <= SMALL_MAX && readSmallInto !== undefined) {
      const slot = this.#slot();
      // Straight into the output buffer when it has room, else via scratch.
      const direct = slot.buf.length - slot.len >= node.size;
      const target = direct ? slot.buf : scratchBuffer();
      const n = readSmallInto.call(this.#blobs, node.digest, target, direct ? slot.len : 0);
      if (n !== undefined) {
        if (n !== node.size) throw sizeMismatch(node.digest, n, node.size);
        if (direct) {
          slot.len += n;
          if (slot.len === slot.buf.length) this.#seal();
        } else {
          this.#put(target.subarray(0, n));
        }
        return undefined;
      }
    }
    return this.#read(node);
  }

  async #read(node: FileNode): Promise<void> {
    const reader = await this.#blobs.openRead(node.digest, this.#options);
    if (reader === undefined) {
      throw new IntegrityError(`blob ${formatB3(node.digest)} referenced by the tree is missing`);
    }
    // The reader is closed once the reads into our buffers are done.
    let pending = 0;
    let scheduled = false;
    const settle = (): void => {
      if (scheduled && pending === 0) reader.close().catch(noop);
    };
    try {
      if (reader.size !== node.size) throw sizeMismatch(node.digest, reader.size, node.size);
      if (reader.readInto !== undefined) {
        for (let pos = 0; pos < node.size; ) {
          const slot = this.#slot();
          const n = Math.min(node.size - pos, slot.buf.length - slot.len);
          const read = reader.readInto(slot.buf, slot.len, n, pos, this.#options);
          pending++;
          read.then(
            () => {
              pending--;
              settle();
            },
            () => {
              pending--;
              settle();
            },
          );
          slot.reads.push(read);
          slot.len += n;
          pos += n;
          if (slot.len === slot.buf.length) {
            this.#seal();
            if (this.#held >= this.#depth) await this.#room();
          }
        }
      } else {
        await this.#copy(reader, node);
      }
    } finally {
      scheduled = true;
      settle();
    }
  }

  /** The contents through the reader's stream (backends without positional reads into our memory). */
  async #copy(reader: BlobReader, node: FileNode): Promise<void> {
    let n = 0;
    for await (const chunk of reader.stream(0, { ...this.#options, transient: true })) {
      n += chunk.length;
      if (n > node.size) break;
      this.#put(chunk);
      if (this.#held > this.#depth) await this.#room();
    }
    if (n !== node.size) throw sizeMismatch(node.digest, n, node.size);
  }
}

const ZEROS = new Uint8Array(8);

function sizeMismatch(digest: B3Digest, actual: number, expected: number): IntegrityError {
  return new IntegrityError(
    `blob ${formatB3(digest)} has ${actual > expected ? "more" : "fewer"} bytes than the tree says (${expected})`,
  );
}

/**
 * The render as a stream of chunks for consumers that follow the
 * `transient` contract (a chunk is not used once the next one was asked for):
 * compression filters.
 */
export async function* narRenderChunks(render: NarRender): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      const slot = await render.next();
      if (slot === undefined) return;
      yield slot.buf.subarray(0, slot.len);
      render.release(slot);
    }
  } finally {
    render.cancel();
  }
}
