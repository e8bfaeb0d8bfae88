/**
 * NAR geometry of castore trees: the size of every node's NAR serialisation
 * and the offset of every token, computed from the directory tree alone
 * (names, file sizes, symlink targets), without rendering anything. This is
 * what lets a Range request start in the middle of a NAR by skipping whole
 * subtrees and seeking into one blob, and what gives `.ls` listings their
 * `narOffset`s.
 *
 * Every NAR token is a string: u64 length, bytes, zero padding to 8. Sizes:
 * - magic `nix-archive-1`: 24;
 * - regular file: `( type regular contents <u64 size>` = 72 bytes before the
 *   contents (104 with `executable ""`), then padded contents and `)` (16);
 * - symlink: `( type symlink target` = 64, the target string, `)` = 16;
 * - directory: `( type directory` = 56, then per entry `entry ( name <name>
 *   node` = 64 + the name string, the node, `)` = 16; then `)` = 16.
 * The tests check these against the NAR writer for every corpus item.
 */
import type { CallOptions } from "../../castore/call-options.js";
import { type B3Digest, digestKey, formatB3 } from "../../castore/digest.js";
import type { DirectoryService } from "../../castore/directory/service.js";
import type { Directory } from "../../castore/directory.js";
import type { Node } from "../../castore/node.js";
import { IntegrityError } from "../../errors.js";

/** `n` rounded up to a multiple of 8. */
export function padded(n: number): number {
  return n + ((8 - (n % 8)) % 8);
}

/** Bytes of a NAR string of `n` bytes. */
export function strSize(n: number): number {
  return 8 + padded(n);
}

export const MAGIC_SIZE = 24;
/** Bytes of a file node before its contents. */
export const REGULAR_HEAD_SIZE = 72;
export const EXECUTABLE_HEAD_SIZE = 104;
export const SYMLINK_HEAD_SIZE = 64;
export const DIRECTORY_HEAD_SIZE = 56;
/** `entry ( name` + `node` around the name string. */
export const ENTRY_HEAD_FIXED = 64;
export const CLOSE_SIZE = 16;

/**
 * The directories of one tree, and the NAR size of each node (memoised per
 * directory digest: a subtree shared by several parents is sized once).
 */
export class NarGeometry {
  readonly #dirs: ReadonlyMap<string, Directory>;
  readonly #sizes = new Map<string, number>();

  /** Entries of all its directories: what it costs to keep in memory (~330 bytes each). */
  readonly entryCount: number;

  constructor(dirs: ReadonlyMap<string, Directory>) {
    this.#dirs = dirs;
    let n = 0;
    for (const d of dirs.values()) n += d.entries.length;
    this.entryCount = n;
  }

  /** Fetches the closure of `root` (one recursive call) and builds its geometry. */
  static async load(
    root: Node,
    directories: Pick<DirectoryService, "getRecursive">,
    options: CallOptions = {},
  ): Promise<NarGeometry> {
    return (await NarGeometry.loadUpTo(root, directories, Number.POSITIVE_INFINITY, options))!;
  }

  /**
   * Like `load`, but gives up (undefined) once the closure has more than
   * `maxEntries` directory entries: the geometry is held in memory
   * (~330 bytes per entry), so callers with a streaming fallback cap it.
   */
  static async loadUpTo(
    root: Node,
    directories: Pick<DirectoryService, "getRecursive">,
    maxEntries: number,
    options: CallOptions = {},
  ): Promise<NarGeometry | undefined> {
    const dirs = new Map<string, Directory>();
    if (root.type === "directory") {
      let entries = 0;
      for await (const d of directories.getRecursive(root.digest, options)) {
        dirs.set(digestKey(d.digest()), d);
        entries += d.entries.length;
        if (entries > maxEntries) return undefined;
      }
      if (!dirs.has(digestKey(root.digest))) {
        throw new IntegrityError(`directory ${formatB3(root.digest)} is not in the store`);
      }
    }
    return new NarGeometry(dirs);
  }

  /** The directory with this digest (part of the loaded closure). */
  directory(digest: B3Digest): Directory {
    const d = this.#dirs.get(digestKey(digest));
    if (d === undefined) {
      throw new IntegrityError(`directory ${formatB3(digest)} is missing from the closure`);
    }
    return d;
  }

  /** Bytes of the NAR of a whole archive rooted at `root` (with the magic). */
  narSize(root: Node): number {
    return MAGIC_SIZE + this.nodeSize(root);
  }

  /** Bytes of a node's serialisation (without the magic; inside an entry, without the entry's tokens). */
  nodeSize(node: Node): number {
    switch (node.type) {
      case "file":
        return (
          (node.executable ? EXECUTABLE_HEAD_SIZE : REGULAR_HEAD_SIZE) +
          padded(node.size) +
          CLOSE_SIZE
        );
      case "symlink":
        return SYMLINK_HEAD_SIZE + strSize(node.target.length) + CLOSE_SIZE;
      case "directory": {
        const key = digestKey(node.digest);
        const known = this.#sizes.get(key);
        if (known !== undefined) return known;
        let size = DIRECTORY_HEAD_SIZE + CLOSE_SIZE;
        for (const e of this.directory(node.digest).entries) size += this.entrySize(e.name, e.node);
        this.#sizes.set(key, size);
        return size;
      }
    }
  }

  /** Bytes of a directory entry: its tokens, the name and the node. */
  entrySize(name: Uint8Array, node: Node): number {
    return ENTRY_HEAD_FIXED + strSize(name.length) + this.nodeSize(node) + CLOSE_SIZE;
  }
}
