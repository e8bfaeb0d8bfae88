/**
 * A directory tree on disk as a NAR source (what `nix-store --dump PATH`
 * serialises). Node-only.
 *
 * Uses synchronous fs calls on purpose: a tree of 30,000 small files needs
 * a few syscalls per file, and each async fs call is a thread-pool round
 * trip (~20-50 us) while a sync one costs ~1-2 us. Each call blocks the
 * event loop only briefly (reads are at most `readChunk` bytes).
 */
import {
  closeSync,
  constants,
  type Dirent,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
} from "node:fs";
import { IntegrityError, InvalidInputError } from "../../errors.js";
import type { NarSourceEntry, NarSourceNode } from "./writer.js";

export interface FsSourceOptions {
  /** Bytes per read of a file (default 1 MiB). */
  readChunk?: number;
  /**
   * Read every file into one recycled buffer. Only for consumers that do not
   * keep a chunk after asking for the next (see `NarWriteOptions.transient`).
   */
  reuseBuffer?: boolean;
}

const S_IXUSR = 0o100;
const SLASH = Buffer.from("/");

interface Ctx {
  readonly readChunk: number;
  /** The recycled read buffer (reuseBuffer). */
  readonly scratch: Buffer | undefined;
}

/** Paths are Buffers throughout: Linux names are bytes, not necessarily UTF-8. */
export function fsNarSource(path: string | Buffer, options: FsSourceOptions = {}): NarSourceNode {
  const p = typeof path === "string" ? Buffer.from(path) : path;
  const readChunk = options.readChunk ?? 1 << 20;
  const ctx: Ctx = {
    readChunk,
    scratch: options.reuseBuffer ? Buffer.allocUnsafe(readChunk) : undefined,
  };
  return statNode(p, ctx);
}

function statNode(path: Buffer, ctx: Ctx): NarSourceNode {
  const st = lstatSync(path);
  if (st.isFile()) return fileNode(path, st.mode, st.size, ctx);
  if (st.isSymbolicLink())
    return { type: "symlink", target: readlinkSync(path, { encoding: "buffer" }) };
  if (st.isDirectory()) return { type: "directory", entries: () => dirEntries(path, ctx) };
  throw notNarType(path);
}

/** The error for a socket, device or fifo in a tree. */
export function notNarType(path: Buffer): InvalidInputError {
  return new InvalidInputError(
    `'${path.toString()}' is not a regular file, directory or symlink (NAR cannot hold it)`,
  );
}

/** A directory's entries in NAR order (bytewise by name), with their types from readdir. */
export function sortedDirents(path: Buffer): Dirent<Buffer>[] {
  const dirents = readdirSync(path, {
    encoding: "buffer",
    withFileTypes: true,
  }) as Dirent<Buffer>[];
  return dirents.sort((a, b) => Buffer.compare(a.name, b.name));
}

/** `parent/name` as bytes: Linux names are bytes, not necessarily UTF-8. */
export function childPath(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

/** Opens a file for reading; fails if it was swapped for a symlink since lstat. */
export function openNoFollow(path: Buffer): number {
  return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
}

export function shrankError(path: Buffer): IntegrityError {
  return new IntegrityError(`'${path.toString()}' shrank while being read`);
}

function fileNode(path: Buffer, mode: number, size: number, ctx: Ctx): NarSourceNode {
  return {
    type: "file",
    executable: (mode & S_IXUSR) !== 0,
    size,
    contents: () => readFile(path, size, ctx),
  };
}

function* dirEntries(path: Buffer, ctx: Ctx): Generator<NarSourceEntry> {
  for (const d of sortedDirents(path)) {
    const child = childPath(path, d.name);
    // The directory entry type saves an lstat for directories and symlinks;
    // files need one anyway (size and mode).
    if (d.isDirectory())
      yield { name: d.name, node: { type: "directory", entries: () => dirEntries(child, ctx) } };
    else if (d.isSymbolicLink())
      yield {
        name: d.name,
        node: { type: "symlink", target: readlinkSync(child, { encoding: "buffer" }) },
      };
    else yield { name: d.name, node: statNode(child, ctx) };
  }
}

/**
 * Exactly `size` bytes of the file at `path` (fewer is an IntegrityError;
 * bytes beyond are not read), refusing a symlink swapped in.
 */
export function fileContents(
  path: Buffer,
  size: number,
  options: FsSourceOptions = {},
): AsyncGenerator<Uint8Array> {
  const readChunk = options.readChunk ?? 1 << 20;
  const scratch = options.reuseBuffer ? Buffer.allocUnsafe(Math.min(readChunk, size)) : undefined;
  return readFile(path, size, { readChunk, scratch });
}

async function* readFile(path: Buffer, size: number, ctx: Ctx): AsyncGenerator<Uint8Array> {
  const fd = openNoFollow(path);
  try {
    let left = size;
    while (left > 0) {
      const want = Math.min(left, ctx.readChunk);
      const buf = ctx.scratch ?? Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, null);
        if (n === 0) throw shrankError(path);
        got += n;
      }
      left -= got;
      // A plain Uint8Array view: Buffer's slice() shares memory, which surprises consumers.
      yield new Uint8Array(buf.buffer, buf.byteOffset, got);
    }
  } finally {
    closeSync(fd);
  }
}
