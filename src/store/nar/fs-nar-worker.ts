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
import type { Blake3Hasher } from "../../castore/blake3.js";
import {
  RING_CANCELLED,
  type RingMessage,
  type RingWorkerData,
  SLOT_FREE,
  SLOT_FULL,
  type TreeEvent,
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
import { TreeEventEncoder } from "./tree-events.js";

const S_IXUSR = 0o100;
const ZEROS = new Uint8Array(8);

/** Thrown when the consumer cancelled: unwinds the walk without a report. */
class Cancelled extends Error {}

class RingWriter {
  readonly #data: Uint8Array;
  readonly #state: Int32Array;
  readonly #slots: number;
  readonly #slotSize: number;
  readonly #post: (m: RingMessage, transfer: ArrayBuffer[]) => void;
  #slot = 0;
  #used = 0;
  /** describe mode: events of the current slot. */
  readonly #events = new TreeEventEncoder();
  /** Whether the current slot was seen free (the consumer may still hold it otherwise). */
  #acquired = false;
  readonly #num = new DataView(new ArrayBuffer(8));

  constructor(d: RingWorkerData, post: (m: RingMessage, transfer: ArrayBuffer[]) => void) {
    this.#data = new Uint8Array(d.ring.data);
    this.#state = new Int32Array(d.ring.state);
    this.#slots = d.ring.slots;
    this.#slotSize = d.ring.slotSize;
    this.#post = post;
  }

  /** Hands the current slot (if it holds anything) over to the consumer. */
  publish(): void {
    if (this.#used === 0 && this.#events.length === 0) return;
    Atomics.store(this.#state, this.#slot, SLOT_FULL);
    if (this.#events.length === 0) {
      this.#post({ kind: "slot", slot: this.#slot, used: this.#used }, []);
    } else {
      const events = this.#events.take();
      this.#post({ kind: "slot", slot: this.#slot, used: this.#used, events }, [events]);
    }
    this.#slot = (this.#slot + 1) % this.#slots;
    this.#used = 0;
    this.#acquired = false;
  }

  event(e: TreeEvent): void {
    const ev = this.#events;
    switch (e.t) {
      case "dir":
        ev.dir(e.name);
        break;
      case "end":
        ev.end();
        break;
      case "symlink":
        ev.symlink(e.name, e.target);
        break;
      case "file":
        ev.file(e.name, e.executable, e.size, e.digest, e.at, e.path);
        break;
    }
  }

  get slotSize(): number {
    return this.#slotSize;
  }

  /** Offset of the next byte in the current slot (after making room for at least one). */
  get position(): number {
    this.#room();
    return this.#used;
  }

  /** Bytes free in the current slot. */
  get room(): number {
    return this.#room();
  }

  /** A view of bytes written to the current slot. */
  view(at: number, length: number): Uint8Array {
    return this.#data.subarray(
      this.#slot * this.#slotSize + at,
      this.#slot * this.#slotSize + at + length,
    );
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
  readFrom(fd: number, size: number, maxRead: number, path: Buffer, hasher?: Blake3Hasher): void {
    let left = size;
    while (left > 0) {
      const want = Math.min(left, this.#room(), maxRead);
      const at = this.#slot * this.#slotSize + this.#used;
      const n = readSync(fd, this.#data, at, want, null);
      if (n === 0) throw shrankError(path);
      hasher?.update(this.#data.subarray(at, at + n));
      this.#used += n;
      left -= n;
    }
  }
}

/** BLAKE3, loaded only when the consumer wants file digests (describe mode). */
type Blake3Module = typeof import("../../castore/blake3.js");

interface Walk {
  readonly out: RingWriter;
  readonly maxRead: number;
  /** Files up to this size are placed in one slot. */
  readonly inSlotMax: number;
  readonly b3: Blake3Module | undefined;
}

function serialise(
  w: Walk,
  path: Buffer,
  name: Buffer | undefined,
  kind: "file" | "symlink" | "directory" | undefined,
): void {
  const { out } = w;
  if (kind === undefined || kind === "file") {
    const st = lstatSync(path);
    if (st.isFile()) {
      const executable = (st.mode & S_IXUSR) !== 0;
      out.put(executable ? NAR_EXECUTABLE : NAR_REGULAR);
      out.u64(st.size);
      const fd = openNoFollow(path);
      try {
        if (w.b3 === undefined) out.readFrom(fd, st.size, w.maxRead, path);
        else describeFile(w, w.b3, fd, path, name, executable, st.size);
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
    const target = readlinkSync(path, { encoding: "buffer" });
    out.put(NAR_SYMLINK);
    out.str(target);
    out.put(NAR_CLOSE);
    if (w.b3 !== undefined)
      out.event(name === undefined ? { t: "symlink", target } : { t: "symlink", name, target });
    return;
  }
  if (w.b3 !== undefined) out.event(name === undefined ? { t: "dir" } : { t: "dir", name });
  out.put(NAR_DIRECTORY);
  for (const d of sortedDirents(path)) {
    out.put(NAR_ENTRY);
    out.str(d.name);
    out.put(NAR_NODE);
    // readdir's type saves an lstat for directories and symlinks; files need one anyway.
    const childKind = d.isDirectory() ? "directory" : d.isSymbolicLink() ? "symlink" : undefined;
    serialise(w, childPath(path, d.name), d.name, childKind);
    out.put(NAR_CLOSE);
  }
  out.put(NAR_CLOSE);
  if (w.b3 !== undefined) out.event({ t: "end" });
}

/**
 * Reads a file into the ring and reports it with its BLAKE3 digest. A file
 * that fits in a slot is placed in one (starting a fresh slot if needed),
 * so the consumer can store it from the ring without reading it again.
 */
function describeFile(
  w: Walk,
  b3: Blake3Module,
  fd: number,
  path: Buffer,
  name: Buffer | undefined,
  executable: boolean,
  size: number,
): void {
  const { out } = w;
  const base =
    name === undefined
      ? { t: "file" as const, executable, size }
      : { t: "file" as const, name, executable, size };
  if (size <= w.inSlotMax) {
    if (size > out.room) out.publish();
    const at = size === 0 ? 0 : out.position;
    out.readFrom(fd, size, w.maxRead, path);
    out.event({ ...base, digest: b3.blake3(out.view(at, size)), at });
    return;
  }
  const hasher = b3.createBlake3();
  out.readFrom(fd, size, w.maxRead, path, hasher);
  out.event({ ...base, digest: hasher.digest(), path });
}

async function run(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error("fs-nar-worker.js must run in a worker thread");
  const data = workerData as RingWorkerData;
  const post = (m: RingMessage, transfer: ArrayBuffer[] = []): void =>
    port.postMessage(m, transfer);
  const out = new RingWriter(data, post);
  try {
    const b3 = data.describe ? await import("../../castore/blake3.js") : undefined;
    // Small files hash faster in wasm; the walk below never yields to let it finish compiling.
    await b3?.blake3Ready;
    out.put(NAR_MAGIC);
    serialise(
      { out, maxRead: data.readChunk, inSlotMax: Math.min(data.inSlotMax, data.ring.slotSize), b3 },
      Buffer.from(data.path),
      undefined,
      undefined,
    );
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
      ...(typeof e?.errno === "number" ? { errno: e.errno } : {}),
      ...(typeof e?.syscall === "string" ? { syscall: e.syscall } : {}),
      ...(typeof e?.path === "string" ? { path: e.path } : {}),
      ...(typeof e?.stack === "string" ? { stack: e.stack } : {}),
    });
  }
}

await run();
