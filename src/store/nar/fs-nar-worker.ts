/**
 * Worker thread: serialises a tree on disk to NAR straight into the shared
 * ring of `fs-nar-ring.ts` (file contents are read directly into the ring,
 * framing is written next to them; no other copy). Node-only.
 *
 * Why a thread: on a tree of many files the time goes into per-file system
 * calls (readdir, lstat, open, read, close) and, for hashing, into SHA-256;
 * with the calls here the consumer hashes or writes the previous megabyte
 * while this thread reads the next one.
 *
 * Everything is synchronous on purpose (see fs-source.ts): this thread has
 * nothing else to do, and a blocking call is the cheapest way to do one.
 */
import { closeSync, lstatSync, readlinkSync, readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import {
  RING_CANCELLED,
  type RingMessage,
  type RingWorkerData,
  SLOT_FREE,
  SLOT_FULL,
} from "./fs-nar-ring.js";
import { childPath, notNarType, openNoFollow, shrankError, sortedDirents } from "./fs-source.js";
import {
  NAR_CLOSE,
  NAR_DIRECTORY,
  NAR_ENTRY,
  NAR_EXECUTABLE,
  NAR_MAGIC,
  NAR_NODE,
  NAR_REGULAR,
  NAR_SYMLINK,
} from "./tokens.js";

const S_IXUSR = 0o100;
const ZEROS = new Uint8Array(8);

/** Thrown when the consumer cancelled: unwinds the walk without a report. */
class Cancelled extends Error {}

class RingWriter {
  readonly #data: Uint8Array;
  readonly #state: Int32Array;
  readonly #slots: number;
  readonly #slotSize: number;
  readonly #post: (m: RingMessage) => void;
  #slot = 0;
  #used = 0;
  /** Whether the current slot was seen free (the consumer may still hold it otherwise). */
  #acquired = false;
  readonly #num = new DataView(new ArrayBuffer(8));

  constructor(d: RingWorkerData, post: (m: RingMessage) => void) {
    this.#data = new Uint8Array(d.ring.data);
    this.#state = new Int32Array(d.ring.state);
    this.#slots = d.ring.slots;
    this.#slotSize = d.ring.slotSize;
    this.#post = post;
  }

  /** Hands the current slot (if it holds anything) over to the consumer. */
  publish(): void {
    if (this.#used === 0) return;
    Atomics.store(this.#state, this.#slot, SLOT_FULL);
    this.#post({ kind: "slot", slot: this.#slot, used: this.#used });
    this.#slot = (this.#slot + 1) % this.#slots;
    this.#used = 0;
    this.#acquired = false;
  }

  /** Free bytes in the current slot; publishes a full one and waits for the next to be free. */
  #room(): number {
    if (this.#used === this.#slotSize) this.publish();
    if (!this.#acquired) {
      while (Atomics.load(this.#state, this.#slot) !== SLOT_FREE) {
        if (Atomics.load(this.#state, this.#slots) === RING_CANCELLED) throw new Cancelled();
        Atomics.wait(this.#state, this.#slot, SLOT_FULL);
      }
      if (Atomics.load(this.#state, this.#slots) === RING_CANCELLED) throw new Cancelled();
      this.#acquired = true;
    }
    return this.#slotSize - this.#used;
  }

  put(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(bytes.length - at, this.#room());
      this.#data.set(bytes.subarray(at, at + n), this.#slot * this.#slotSize + this.#used);
      this.#used += n;
      at += n;
    }
  }

  u64(n: number): void {
    this.#num.setUint32(0, n >>> 0, true);
    this.#num.setUint32(4, Math.floor(n / 2 ** 32), true);
    this.put(new Uint8Array(this.#num.buffer));
  }

  padding(n: number): void {
    const pad = (8 - (n % 8)) % 8;
    if (pad > 0) this.put(ZEROS.subarray(0, pad));
  }

  str(bytes: Uint8Array): void {
    this.u64(bytes.length);
    this.put(bytes);
    this.padding(bytes.length);
  }

  /** Reads exactly `size` bytes of `fd` into the ring, `maxRead` bytes per call at most. */
  readFrom(fd: number, size: number, maxRead: number, path: Buffer): void {
    let left = size;
    while (left > 0) {
      const want = Math.min(left, this.#room(), maxRead);
      const n = readSync(fd, this.#data, this.#slot * this.#slotSize + this.#used, want, null);
      if (n === 0) throw shrankError(path);
      this.#used += n;
      left -= n;
    }
  }
}

function serialise(
  out: RingWriter,
  path: Buffer,
  kind: "file" | "symlink" | "directory" | undefined,
  maxRead: number,
): void {
  if (kind === undefined || kind === "file") {
    const st = lstatSync(path);
    if (st.isFile()) {
      out.put(st.mode & S_IXUSR ? NAR_EXECUTABLE : NAR_REGULAR);
      out.u64(st.size);
      const fd = openNoFollow(path);
      try {
        out.readFrom(fd, st.size, maxRead, path);
      } finally {
        closeSync(fd);
      }
      out.padding(st.size);
      out.put(NAR_CLOSE);
      return;
    }
    if (st.isSymbolicLink()) kind = "symlink";
    else if (st.isDirectory()) kind = "directory";
    else throw notNarType(path);
  }
  if (kind === "symlink") {
    out.put(NAR_SYMLINK);
    out.str(readlinkSync(path, { encoding: "buffer" }));
    out.put(NAR_CLOSE);
    return;
  }
  out.put(NAR_DIRECTORY);
  for (const d of sortedDirents(path)) {
    out.put(NAR_ENTRY);
    out.str(d.name);
    out.put(NAR_NODE);
    // readdir's type saves an lstat for directories and symlinks; files need one anyway.
    const childKind = d.isDirectory() ? "directory" : d.isSymbolicLink() ? "symlink" : undefined;
    serialise(out, childPath(path, d.name), childKind, maxRead);
    out.put(NAR_CLOSE);
  }
  out.put(NAR_CLOSE);
}

function run(): void {
  const port = parentPort;
  if (port === null) throw new Error("fs-nar-worker.js must run in a worker thread");
  const data = workerData as RingWorkerData;
  const post = (m: RingMessage): void => port.postMessage(m);
  const out = new RingWriter(data, post);
  try {
    out.put(NAR_MAGIC);
    serialise(out, Buffer.from(data.path), undefined, data.readChunk);
    out.publish();
    post({ kind: "done" });
  } catch (err) {
    if (err instanceof Cancelled) return;
    const e = err as NodeJS.ErrnoException;
    post({
      kind: "error",
      name: e?.name ?? "Error",
      message: e?.message ?? String(err),
      ...(typeof e?.code === "string" ? { code: e.code } : {}),
    });
  }
}

run();
