/**
 * The import stat cache: lets `strata import` of a tree that has not changed
 * since it was last imported answer from the store without reading a file.
 * Node-only.
 *
 * A tree's fingerprint is the SHA-256 of, in NAR order, every entry's name,
 * type, size, executable bit, device, inode, mtime and ctime (directories
 * and symlinks included), and for symlinks the target. Any write to a file, chmod, rename or
 * replacement changes its ctime (which no user can set back) or its inode;
 * adding or removing entries changes the names. The cache maps (absolute
 * path, store path name) to the fingerprint and the store path it gave; a
 * hit counts only if the store still has that PathInfo (and a content-
 * addressed store path names its content, so that is the same import).
 *
 * Racy entries (git's "racy clean" problem): timestamps come from a coarse
 * clock and some filesystems keep whole seconds, so a file changed just
 * after it was fingerprinted can keep the same stat. The fingerprint is
 * taken before the import reads anything, and no cache entry is written
 * when any entry's mtime or ctime is less than RACY_MARGIN_MS older than the
 * moment the fingerprint was started (or later): an entry changed after
 * that has a later ctime than the one recorded, whatever the clock
 * granularity. This assumes the file system's timestamps come from this
 * machine's clock; on a network file system whose server clock runs more
 * than the margin behind, use `--no-stat-cache`.
 *
 * Entries are small JSON files under `dir`, one per (path, name), written
 * to a temp file and renamed. Anything wrong with the cache (unreadable,
 * corrupt, no space) makes it miss, never fail an import.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { childPath, notNarType, sortedDirents } from "../nar/fs-source.js";

/** Files changed less than this before the fingerprint started make it racy (FAT keeps 2 s). */
const RACY_MARGIN_MS = 2500;
const VERSION = 1;

export interface TreeFingerprint {
  /** SHA-256 (hex) over the stat records. */
  readonly digest: string;
  /** Whether some file changed too recently for the fingerprint to be trusted later. */
  readonly racy: boolean;
  readonly entries: number;
}

interface CacheEntry {
  readonly v: number;
  readonly path: string;
  readonly name: string;
  readonly fingerprint: string;
  readonly storePath: string;
}

/** Fingerprints the tree at `path` with lstat/readdir/readlink only (no file is opened). */
export function fingerprintTree(path: string): TreeFingerprint {
  const start = Date.now();
  const out = new RecordBuffer();
  let racy = false;
  let entries = 0;
  const visit = (p: Buffer): void => {
    entries++;
    // Every entry's own stat, directories and symlinks included: a rename
    // in or out of a directory, or a symlink replaced, changes the ctime of
    // the directory or the inode of the link even when the names and
    // targets end up as they were. Numbers, not bigints (a third faster
    // over 20,000 entries): times keep sub-microsecond precision as
    // milliseconds, inode numbers stay exact below 2^53.
    const st = lstatSync(p);
    // Any timestamp within the margin before the start, or after it.
    if (Math.max(st.mtimeMs, st.ctimeMs) > start - RACY_MARGIN_MS) racy = true;
    const kind = st.isFile() ? 1 : st.isSymbolicLink() ? 2 : st.isDirectory() ? 3 : 0;
    if (kind === 0) throw notNarType(p);
    out.u8(kind);
    out.u8((st.mode & 0o100) === 0 ? 0 : 1);
    for (const n of [st.size, st.dev, st.ino, st.mtimeMs, st.ctimeMs]) out.f64(n);
    if (kind === 2) {
      out.bytes(readlinkSync(p, { encoding: "buffer" }));
    } else if (kind === 3) {
      const children = sortedDirents(p);
      out.f64(children.length);
      for (const d of children) {
        out.bytes(d.name);
        visit(childPath(p, d.name));
      }
    }
  };
  visit(Buffer.from(resolve(path)));
  return { digest: out.digest(), racy, entries };
}

/** Records collected into one buffer and hashed a megabyte at a time (one update per record costs more than the lstat). */
class RecordBuffer {
  readonly #hash = createHash("sha256");
  readonly #buf = Buffer.allocUnsafe(1 << 20);
  #used = 0;

  #room(n: number): void {
    if (this.#used + n > this.#buf.length) {
      this.#hash.update(this.#buf.subarray(0, this.#used));
      this.#used = 0;
    }
  }

  u8(n: number): void {
    this.#room(1);
    this.#buf[this.#used++] = n;
  }

  f64(n: number): void {
    this.#room(8);
    this.#used = this.#buf.writeDoubleLE(n, this.#used);
  }

  /** Length-prefixed, so names and targets cannot run into each other. */
  bytes(b: Uint8Array): void {
    this.f64(b.length);
    if (b.length > this.#buf.length) {
      this.#room(this.#buf.length);
      this.#hash.update(b);
      return;
    }
    this.#room(b.length);
    this.#buf.set(b, this.#used);
    this.#used += b.length;
  }

  digest(): string {
    this.#hash.update(this.#buf.subarray(0, this.#used));
    return this.#hash.digest("hex");
  }
}

/** The cache of `strata import` results, kept as files under `dir`. */
export class ImportCache {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** The store path recorded for this tree state, if any. */
  lookup(path: string, name: string, fp: TreeFingerprint): string | undefined {
    const abs = resolve(path);
    let e: Partial<CacheEntry>;
    try {
      e = JSON.parse(readFileSync(this.#file(abs, name), "utf8")) as Partial<CacheEntry>;
    } catch {
      return undefined;
    }
    if (
      e.v !== VERSION ||
      e.path !== abs ||
      e.name !== name ||
      e.fingerprint !== fp.digest ||
      typeof e.storePath !== "string"
    ) {
      return undefined;
    }
    return e.storePath;
  }

  /** Records the result of an import (not for racy fingerprints); best effort. */
  record(path: string, name: string, fp: TreeFingerprint, storePath: string): void {
    if (fp.racy) return;
    const abs = resolve(path);
    const entry: CacheEntry = { v: VERSION, path: abs, name, fingerprint: fp.digest, storePath };
    const file = this.#file(abs, name);
    const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      mkdirSync(this.#dir, { recursive: true });
      writeFileSync(tmp, JSON.stringify(entry));
      renameSync(tmp, file);
    } catch {
      // A cache that cannot be written only costs the next import a full read.
      try {
        rmSync(tmp, { force: true });
      } catch {
        // Not even that (the path is not a directory): nothing was written.
      }
    }
  }

  #file(abs: string, name: string): string {
    const key = createHash("sha256").update(abs).update("\0").update(name).digest("hex");
    return join(this.#dir, `${key}.json`);
  }
}
