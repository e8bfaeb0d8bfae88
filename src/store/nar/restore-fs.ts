/**
 * Unpacks a NAR into the file system, like `nix-store --restore DEST`.
 *
 * The tree is built in a temporary sibling of DEST and renamed into place only
 * after the whole NAR parsed, so a bad or interrupted NAR leaves neither DEST
 * nor the temporary tree behind. Modes match Nix 2.8, which forces umask 022:
 * directories 0755, files 0644, executables 0755.
 *
 * File-system calls are synchronous on purpose: a NAR holds mostly small
 * files, and a thread-pool round trip per open/write/close costs more than the
 * calls themselves. The event loop still runs between source chunks.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { resolve } from "node:path";
import { InvalidInputError, StorageError, throwIfAborted } from "../../errors.js";
import { readNar } from "./reader.js";

export interface RestoreNarOptions {
  signal?: AbortSignal | undefined;
}

const DIR_MODE = 0o755;
const FILE_MODE = 0o644;
const EXEC_MODE = 0o755;

/** Chunks smaller than this are gathered before writing, so tiny source chunks do not cost a syscall each. */
const DIRECT_WRITE = 64 * 1024;
const STAGING_SIZE = 1024 * 1024;

const SLASH = Buffer.from("/");
/** Linux's limit on a path, including the terminating NUL. */
const PATH_MAX = 4096;

function exists(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    throw new StorageError(`restoring NAR: cannot check whether ${path} exists`, { cause: err });
  }
}

/**
 * Removes a file or tree if it exists. Iterative because `fs.rmSync` recurses
 * per level and overflows the stack on the deep trees a NAR can describe.
 */
function removeTree(root: Buffer): void {
  const stack: { path: Buffer; listed: boolean }[] = [{ path: root, listed: false }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.listed) {
      rmdirSync(top.path);
      stack.pop();
      continue;
    }
    const st = lstatSync(top.path, { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) {
      if (st !== undefined) unlinkSync(top.path);
      stack.pop();
      continue;
    }
    top.listed = true;
    for (const name of readdirSync(top.path, { encoding: "buffer" })) {
      stack.push({ path: Buffer.concat([top.path, SLASH, name]), listed: false });
    }
  }
}

/** Restores the NAR read from `source` at `dest`, which must not exist. */
export async function restoreNar(
  source: AsyncIterable<Uint8Array>,
  dest: string,
  options: RestoreNarOptions = {},
): Promise<void> {
  const { signal } = options;
  throwIfAborted(signal);
  // Without trailing slashes, so the temporary tree is a sibling, not a child.
  const target = resolve(dest);
  if (exists(target)) throw new InvalidInputError(`restoring NAR: ${dest} already exists`);
  const tmp = `${target}.strata-tmp-${randomBytes(8).toString("hex")}`;
  const writer = new TreeWriter(Buffer.from(tmp));
  try {
    for await (const ev of readNar(source, { signal })) {
      switch (ev.type) {
        case "directory":
          writer.directory(ev.path);
          break;
        case "end":
          break;
        case "symlink":
          writer.symlink(ev.path, ev.target);
          break;
        case "file": {
          const fd = writer.openFile(ev.path, ev.executable);
          try {
            for await (const chunk of ev.contents) writer.write(fd, chunk);
            writer.flush(fd);
          } catch (err) {
            closeSync(fd);
            throw err;
          }
          writer.close(fd);
          break;
        }
      }
    }
    throwIfAborted(signal);
    // rename() silently replaces an empty directory or a file, so check again
    // for a DEST that appeared while we were writing.
    if (exists(target)) throw new InvalidInputError(`restoring NAR: ${dest} already exists`);
    try {
      renameSync(tmp, target);
    } catch (err) {
      throw new StorageError(`restoring NAR: cannot rename ${tmp} to ${dest}`, { cause: err });
    }
  } catch (err) {
    try {
      removeTree(Buffer.from(tmp));
    } catch (cleanupErr) {
      throw new StorageError(`restoring NAR: cannot remove ${tmp} after a failure`, {
        cause: new AggregateError([err, cleanupErr]),
      });
    }
    throw err;
  }
}

/** Creates the nodes below one root path; wraps every fs failure in a StorageError. */
class TreeWriter {
  /** Paths of the open directories, indexed by depth. */
  private readonly dirs: Buffer[] = [];
  private readonly staging = Buffer.allocUnsafe(STAGING_SIZE);
  private staged = 0;
  /** Whether the umask strips bits from our modes, so each node needs a chmod (decided at the root). */
  private fixModes = false;

  constructor(private readonly root: Buffer) {}

  directory(path: readonly Uint8Array[]): void {
    const p = this.pathOf(path);
    this.fs("create directory", p, () => {
      mkdirSync(p, DIR_MODE);
      if (path.length === 0) this.fixModes = (lstatSync(p).mode & 0o777) !== DIR_MODE;
      if (this.fixModes) chmodSync(p, DIR_MODE);
    });
    this.dirs.length = path.length;
    this.dirs.push(p);
  }

  symlink(path: readonly Uint8Array[], target: Uint8Array): void {
    const p = this.pathOf(path);
    this.fs("create symlink", p, () => symlinkSync(Buffer.from(target), p));
  }

  openFile(path: readonly Uint8Array[], executable: boolean): number {
    const p = this.pathOf(path);
    const mode = executable ? EXEC_MODE : FILE_MODE;
    return this.fs("create file", p, () => {
      const fd = openSync(p, "wx", mode);
      try {
        if (path.length === 0) this.fixModes = (lstatSync(p).mode & 0o777) !== mode;
        if (this.fixModes) fchmodSync(fd, mode);
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      return fd;
    });
  }

  write(fd: number, chunk: Uint8Array): void {
    if (chunk.length >= DIRECT_WRITE) {
      this.flush(fd);
      this.writeAll(fd, chunk);
      return;
    }
    if (this.staged + chunk.length > STAGING_SIZE) this.flush(fd);
    this.staging.set(chunk, this.staged);
    this.staged += chunk.length;
  }

  flush(fd: number): void {
    if (this.staged === 0) return;
    const n = this.staged;
    this.staged = 0;
    this.writeAll(fd, this.staging.subarray(0, n));
  }

  close(fd: number): void {
    this.fs("close file", undefined, () => closeSync(fd));
  }

  private writeAll(fd: number, data: Uint8Array): void {
    this.fs("write file", undefined, () => {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    });
  }

  private pathOf(path: readonly Uint8Array[]): Buffer {
    if (path.length === 0) return this.root;
    const parent = this.dirs[path.length - 1]!;
    const p = Buffer.concat([parent, SLASH, path[path.length - 1]!]);
    // Past PATH_MAX every call fails, including the clean-up's, which would
    // leave the temporary tree behind: stop before creating such a path.
    if (p.length >= PATH_MAX) {
      throw new StorageError(
        `restoring NAR: path ${p.subarray(0, 100).toString()}... is longer than ${PATH_MAX - 1} bytes`,
      );
    }
    return p;
  }

  private fs<T>(what: string, path: Buffer | undefined, f: () => T): T {
    try {
      return f();
    } catch (err) {
      const where = path === undefined ? "" : ` ${path.toString()}`;
      throw new StorageError(`restoring NAR: cannot ${what}${where}`, { cause: err });
    }
  }
}
