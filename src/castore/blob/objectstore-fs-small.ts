/**
 * The small blobs of an `objectstore+file` store (FsObjectStoreBlobService):
 * blobs up to `smallBlobMaxBytes` that would cost a create, rename and fsync
 * each as files of their own. Node-only.
 *
 * Layout under the store root:
 *
 *   small/            an LMDB environment with three databases:
 *     blobs           digest -> contents, for blobs up to INLINE_MAX bytes
 *                     (and every small blob written before packs existed)
 *     packed          digest -> locator: pack id (u32), length (u32),
 *                     offset (u64), little-endian, 16 bytes
 *     packs           "next" -> the next pack id to hand out (u32)
 *   packs/<8 hex>.pack  append-only files of blob contents, one per writing
 *                     process and run (a process never appends to a pack
 *                     another process may be writing)
 *
 * Why packs and not LMDB values: LMDB is read through a memory map, so
 * every small blob ever served stays mapped into the process and counts in
 * its RSS (a binary cache serving 200 MiB of small files showed 200 MiB more
 * RSS, that only munmap could drop). Pack files are read with pread: the
 * page cache holds them, the process does not. Tiny blobs stay inline: many
 * share one LMDB page, and a pread would cost more than the lookup.
 *
 * Durability: a locator is only ever committed after the pack bytes it
 * points at were fdatasync'ed (and, for a new pack, its directory entry
 * fsync'ed), so no crash can leave an index entry pointing at missing
 * bytes. Until then the locator lives in `#pending` (visible to this
 * process). A crash leaves at most unreferenced bytes at the end of a pack.
 * Pending locators are committed by `sync()`, by `close()`, and whenever
 * COMMIT_BYTES of them accumulate (so memory stays bounded).
 */
import {
  closeSync,
  constants,
  existsSync,
  fdatasync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Database, open as openLmdb, type RootDatabase } from "lmdb";
import { IntegrityError } from "../../errors.js";
import type { B3Digest } from "../digest.js";

/** Blobs up to this size stay LMDB values (several per page). */
export const INLINE_MAX = 1024;
/** A pack is closed (and a new one started) once it would grow past this. */
const PACK_MAX = 1024 * 1024 * 1024;
/** Pending locators are committed once the bytes they cover reach this. */
const COMMIT_BYTES = 64 * 1024 * 1024;
/** Read descriptors kept open (packs are many for stores written by many runs). */
const MAX_OPEN_PACKS = 64;
const LOCATOR_BYTES = 16;
const NEXT_KEY = new TextEncoder().encode("next");
/** Written by sync() to flush index entries other processes committed. */
const SYNC_KEY = new TextEncoder().encode("sync");

const fdatasyncP = promisify(fdatasync);

export interface SmallBlobsOptions {
  /** Pack size at which a new pack is started (default 1 GiB; tests use tiny ones). */
  packMaxBytes?: number;
}

interface Locator {
  readonly pack: number;
  readonly length: number;
  readonly offset: number;
}

interface PackWriter {
  readonly id: number;
  readonly fd: number;
  /** Append position (this process is the only writer of this pack). */
  size: number;
}

export class SmallBlobs {
  readonly #env: RootDatabase<Uint8Array, Uint8Array>;
  readonly #inline: Database<Uint8Array, Uint8Array>;
  readonly #packed: Database<Uint8Array, Uint8Array>;
  readonly #meta: Database<Uint8Array, Uint8Array>;
  readonly #packsDir: string;
  #writer: PackWriter | undefined;
  /** Full packs of this process whose last bytes are not yet synced. */
  #retired: PackWriter[] = [];
  /** Written to the current pack, not yet committed (key: digest as latin1). */
  #pending = new Map<string, Locator>();
  #pendingBytes = 0;
  /** Being committed: still answered from here until the commit is done. */
  #committing: Map<string, Locator> | undefined;
  /** Whether a new pack's directory entry still has to be made durable. */
  #packsDirDirty = false;
  /** Commits run one after another. */
  #commitChain: Promise<void> = Promise.resolve();
  readonly #readFds = new Map<number, number>();
  /** Packs seen on disk (a missing pack makes its blobs absent, so they are written again). */
  readonly #presentPacks = new Set<number>();
  /** Whether has() answered from the index since the last sync. */
  #indexHits = false;

  readonly #packMax: number;

  private constructor(root: string, options: SmallBlobsOptions) {
    this.#packMax = options.packMaxBytes ?? PACK_MAX;
    // lmdb-js defaults (overlappingSync on Linux): commits are crash-safe;
    // `flushed` tells when they are durable, which is what sync() waits for.
    this.#env = openLmdb<Uint8Array, Uint8Array>({ path: join(root, "small") });
    const db = (name: string) =>
      this.#env.openDB<Uint8Array, Uint8Array>({ name, keyEncoding: "binary", encoding: "binary" });
    this.#inline = db("blobs");
    this.#packed = db("packed");
    this.#meta = db("packs");
    this.#packsDir = join(root, "packs");
  }

  /** Opens (creating if needed) the small-blob storage of the store at `root`. */
  static async open(root: string, options: SmallBlobsOptions = {}): Promise<SmallBlobs> {
    let created = false;
    for (const dir of ["small", "packs"]) {
      created = (await fsp.mkdir(join(root, dir), { recursive: true })) !== undefined || created;
    }
    if (created) await fsyncDir(root);
    return new SmallBlobs(root, options);
  }

  /**
   * Whether the blob is here: pending in this process, or indexed (inline,
   * or in a pack that exists). A hit in the index may be another process's
   * commit not yet flushed: the next `sync()` then flushes the index too.
   */
  has(digest: B3Digest): boolean {
    if (this.#uncommitted(digest) !== undefined) return true;
    const loc = this.#indexed(digest);
    const found = loc !== undefined ? this.#packExists(loc.pack) : this.#inline.doesExist(digest);
    if (found) this.#indexHits = true;
    return found;
  }

  /** The blob's contents in a buffer of its own, or undefined if it is not here. */
  get(digest: B3Digest): Uint8Array | undefined {
    const loc = this.#locate(digest);
    if (loc === undefined) {
      const inDb = this.#inline.getBinary(digest);
      return inDb === undefined
        ? undefined
        : new Uint8Array(inDb.buffer, inDb.byteOffset, inDb.byteLength);
    }
    return this.#pread(loc, new Uint8Array(loc.length));
  }

  /**
   * Copies the blob into `target` at `at` if it fits there and returns its
   * length (the length alone if it does not fit); undefined if it is not here.
   */
  readInto(digest: B3Digest, target: Uint8Array, at: number): number | undefined {
    const loc = this.#locate(digest);
    if (loc === undefined) {
      const b = this.#inline.getBinaryFast(digest);
      if (b === undefined) return undefined;
      // lmdb-js's buffer is larger than the value: its `length` is a property
      // set to the value's size, which TypedArray methods do not see.
      const n = b.length;
      if (n <= target.length - at) target.set(b.subarray(0, n), at);
      return n;
    }
    if (loc.length <= target.length - at) {
      this.#pread(loc, target.subarray(at, at + loc.length));
    }
    return loc.length;
  }

  /** Stores a blob (nothing if it is here already); visible at once, durable after `sync()`. */
  async put(digest: B3Digest, data: Uint8Array): Promise<void> {
    if (this.has(digest)) return;
    if (data.length <= INLINE_MAX) {
      // lmdb-js batches concurrent puts into one transaction.
      await this.#inline.put(digest, data);
      return;
    }
    let w = this.#writer;
    if (w !== undefined && w.size + data.length > this.#packMax) {
      // Closed by the commit that makes its last bytes durable.
      this.#retired.push(w);
      this.#writer = w = undefined;
    }
    w ??= this.#newPack();
    let done = 0;
    while (done < data.length) {
      done += writeSync(w.fd, data, done, data.length - done, w.size + done);
    }
    this.#pending.set(key(digest), { pack: w.id, length: data.length, offset: w.size });
    w.size += data.length;
    this.#pendingBytes += data.length;
    if (this.#pendingBytes >= COMMIT_BYTES) await this.#commit();
  }

  /** Makes every blob put before this call, and every blob `has()` found, durable. */
  async sync(): Promise<void> {
    await this.#commit();
    if (this.#indexHits) {
      // A write of ours makes LMDB sync the data file, which covers every
      // transaction committed before it, other processes' included.
      this.#indexHits = false;
      try {
        await this.#meta.put(SYNC_KEY, new Uint8Array(1));
      } catch (err) {
        this.#indexHits = true;
        throw err;
      }
    }
    await this.#env.flushed;
  }

  /** Commits what is pending (it stays visible to the next process) and closes. Does not wait for durability. */
  async close(): Promise<void> {
    try {
      await this.#commit();
    } finally {
      for (const w of [...this.#retired, ...(this.#writer === undefined ? [] : [this.#writer])]) {
        closeQuietly(w.fd);
      }
      this.#writer = undefined;
      this.#retired = [];
      for (const fd of this.#readFds.values()) closeQuietly(fd);
      this.#readFds.clear();
      await this.#env.close();
    }
  }

  #locate(digest: B3Digest): Locator | undefined {
    return this.#uncommitted(digest) ?? this.#indexed(digest);
  }

  /** The locator of a blob this process wrote and has not committed yet. */
  #uncommitted(digest: B3Digest): Locator | undefined {
    // Readers of a store nobody writes to skip building the map key.
    if (this.#pending.size === 0 && this.#committing === undefined) return undefined;
    const k = key(digest);
    return this.#pending.get(k) ?? this.#committing?.get(k);
  }

  /** The committed locator of a packed blob. */
  #indexed(digest: B3Digest): Locator | undefined {
    const raw = this.#packed.getBinaryFast(digest);
    if (raw === undefined) return undefined;
    return decodeLocator(raw.subarray(0, raw.length));
  }

  #pread(loc: Locator, into: Uint8Array): Uint8Array {
    const fd = this.#readFd(loc.pack);
    let done = 0;
    while (done < loc.length) {
      const n = readSync(fd, into, done, loc.length - done, loc.offset + done);
      if (n === 0) {
        throw new IntegrityError(
          `pack ${packName(loc.pack)} ends before the blob at offset ${loc.offset} (${loc.length} bytes)`,
        );
      }
      done += n;
    }
    return into;
  }

  #readFd(pack: number): number {
    if (this.#writer?.id === pack) return this.#writer.fd;
    for (const w of this.#retired) if (w.id === pack) return w.fd;
    let fd = this.#readFds.get(pack);
    if (fd !== undefined) return fd;
    fd = openSync(join(this.#packsDir, packName(pack)), constants.O_RDONLY);
    if (this.#readFds.size >= MAX_OPEN_PACKS) {
      const [oldest, oldFd] = this.#readFds.entries().next().value as [number, number];
      this.#readFds.delete(oldest);
      closeSync(oldFd);
    }
    this.#readFds.set(pack, fd);
    return fd;
  }

  #newPack(): PackWriter {
    // A pack file can exist under an id the counter hands out again (the
    // counter's update lost in a crash that kept the file): take the next.
    for (let attempt = 0; ; attempt++) {
      const id = this.#allocatePackId();
      let fd: number;
      try {
        fd = openSync(
          join(this.#packsDir, packName(id)),
          constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
          0o444,
        );
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST" && attempt < 1000) continue;
        throw err;
      }
      this.#packsDirDirty = true;
      this.#presentPacks.add(id);
      this.#writer = { id, fd, size: 0 };
      return this.#writer;
    }
  }

  #allocatePackId(): number {
    // A write transaction serialises id allocation across processes.
    return this.#env.transactionSync(() => {
      const raw = this.#meta.getBinary(NEXT_KEY);
      const next =
        raw === undefined ? 0 : new DataView(raw.buffer, raw.byteOffset, 4).getUint32(0, true);
      const bump = new Uint8Array(4);
      new DataView(bump.buffer).setUint32(0, next + 1, true);
      this.#meta.putSync(NEXT_KEY, bump);
      return next;
    });
  }

  #packExists(pack: number): boolean {
    if (this.#presentPacks.has(pack)) return true;
    const there = existsSync(join(this.#packsDir, packName(pack)));
    if (there) this.#presentPacks.add(pack);
    return there;
  }

  /** Gives up packs whose data may be lost, with the blobs not yet committed in them. */
  #abandon(packs: readonly PackWriter[]): void {
    const ids = new Set(packs.map((p) => p.id));
    for (const p of packs) {
      if (this.#writer === p) this.#writer = undefined;
      const i = this.#retired.indexOf(p);
      if (i >= 0) this.#retired.splice(i, 1);
      closeQuietly(p.fd);
    }
    // Blobs appended to those packs after this commit began go too.
    for (const [k, loc] of this.#pending) {
      if (ids.has(loc.pack)) {
        this.#pending.delete(k);
        this.#pendingBytes -= loc.length;
      }
    }
  }

  #commit(): Promise<void> {
    const run = this.#commitChain.catch(() => undefined).then(() => this.#commitPending());
    this.#commitChain = run;
    return run;
  }

  async #commitPending(): Promise<void> {
    if (this.#pending.size === 0) return;
    const packs =
      this.#writer === undefined ? [...this.#retired] : [...this.#retired, this.#writer];
    // Sizes as synced: a pack appended to during this commit (then retired)
    // still has unsynced bytes and must stay for the next commit.
    const syncedSizes = packs.map((p) => p.size);
    // Taken now: a pack created while this commit waits sets it again.
    const dirDirty = this.#packsDirDirty;
    this.#packsDirDirty = false;
    const batch = this.#pending;
    const bytes = this.#pendingBytes;
    this.#committing = batch;
    this.#pending = new Map();
    this.#pendingBytes = 0;
    let abandoned = false;
    try {
      // Data first, then the name of a new pack, then the index entries.
      try {
        await Promise.all(packs.map((p) => fdatasyncP(p.fd)));
      } catch (err) {
        // After a failed fdatasync the kernel may have dropped the dirty
        // pages and a retry would "succeed": the packs are given up and
        // their blobs forgotten (they are written again if put again).
        abandoned = true;
        this.#abandon(packs);
        throw err;
      }
      if (dirDirty) await fsyncDir(this.#packsDir);
      const puts: Promise<boolean>[] = [];
      for (const [k, loc] of batch) {
        puts.push(this.#packed.put(Buffer.from(k, "latin1"), encodeLocator(loc)));
      }
      await Promise.all(puts);
      packs.forEach((p, k) => {
        const i = this.#retired.indexOf(p);
        if (i >= 0 && p.size === syncedSizes[k]) {
          this.#retired.splice(i, 1);
          closeSync(p.fd);
        }
      });
    } catch (err) {
      if (dirDirty) this.#packsDirDirty = true;
      if (!abandoned) {
        // Kept for the next commit: the bytes are in the pack, only the index is missing.
        for (const [k, loc] of batch) if (!this.#pending.has(k)) this.#pending.set(k, loc);
        this.#pendingBytes += bytes;
      }
      throw err;
    } finally {
      this.#committing = undefined;
    }
  }
}

/** pack id (u32), length (u32), offset (u64), little-endian. */
function encodeLocator(loc: Locator): Uint8Array {
  const v = new Uint8Array(LOCATOR_BYTES);
  const dv = new DataView(v.buffer);
  dv.setUint32(0, loc.pack, true);
  dv.setUint32(4, loc.length, true);
  dv.setUint32(8, loc.offset >>> 0, true);
  dv.setUint32(12, Math.floor(loc.offset / 2 ** 32), true);
  return v;
}

function decodeLocator(raw: Uint8Array): Locator {
  if (raw.length !== LOCATOR_BYTES) {
    throw new IntegrityError(
      `small-blob index entry has ${raw.length} bytes, expected ${LOCATOR_BYTES}`,
    );
  }
  const v = new DataView(raw.buffer, raw.byteOffset, LOCATOR_BYTES);
  return {
    pack: v.getUint32(0, true),
    length: v.getUint32(4, true),
    offset: v.getUint32(8, true) + v.getUint32(12, true) * 2 ** 32,
  };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing left to do with it.
  }
}

function key(digest: B3Digest): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("latin1");
}

function packName(id: number): string {
  return `${id.toString(16).padStart(8, "0")}.pack`;
}

/** fsync of a directory (its entries); a no-op where the filesystem cannot. */
export async function fsyncDir(path: string): Promise<void> {
  const fh = await fsp.open(path, "r");
  try {
    await fh.sync();
  } catch (err) {
    // A few filesystems cannot fsync directories; their renames are then as
    // durable as they get.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "ENOTSUP") throw err;
  } finally {
    await fh.close();
  }
}
