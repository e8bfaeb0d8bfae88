import { InvalidInputError } from "../errors.js";
import { compareBytes } from "./bytes.js";
import { type B3Digest, hashB3 } from "./digest.js";
import { decodeDirectoryEntries, encodeDirectoryEntries } from "./directory-proto.js";
import { describeEntry, type Entry, type Node, validateNode } from "./node.js";
import { type PathComponent, pathComponent, showName } from "./path-component.js";

/**
 * A castore Directory: named nodes, unique by name, kept in bytewise name
 * order. Immutable; every way to build one validates (ARCHITECTURE §2).
 *
 * Its digest is BLAKE3 of the canonical protobuf encoding of
 * `castore.v1.Directory` (three lists: directories, files, symlinks, each
 * sorted by name).
 */
export class Directory {
  readonly #entries: readonly Entry[];
  #size: number | undefined;
  #encoded: Uint8Array | undefined;
  #digest: B3Digest | undefined;

  private constructor(sortedEntries: readonly Entry[]) {
    this.#entries = sortedEntries;
  }

  static readonly EMPTY: Directory = new Directory([]);

  /**
   * Builds a Directory from entries in any order. Rejects invalid names,
   * invalid nodes, duplicate names, and sizes that would overflow.
   */
  static fromEntries(entries: Iterable<{ name: Uint8Array | string; node: Node }>): Directory {
    const list: Entry[] = [];
    for (const e of entries) {
      const name = pathComponent(e.name, "directory entry");
      list.push({ name, node: validateNode(e.node, describeEntry(name, e.node)) });
    }
    list.sort((a, b) => compareBytes(a.name, b.name));
    return Directory.#checked(list);
  }

  /**
   * Decodes the protobuf bytes of a `castore.v1.Directory`, validating every
   * rule; errors name the rule and the entry.
   */
  static decode(bytes: Uint8Array): Directory {
    const entries = decodeDirectoryEntries(bytes);
    entries.sort((a, b) => compareBytes(a.name, b.name));
    return Directory.#checked(entries);
  }

  static #checked(sorted: Entry[]): Directory {
    for (let i = 1; i < sorted.length; i++) {
      if (compareBytes(sorted[i - 1]!.name, sorted[i]!.name) === 0) {
        throw new InvalidInputError(`directory: ${showName(sorted[i]!.name)} is a duplicate name`);
      }
    }
    const d = new Directory(sorted);
    if (!Number.isSafeInteger(d.size)) {
      throw new InvalidInputError("directory: size overflows the largest safe integer");
    }
    return d;
  }

  /** Entries in bytewise name order. */
  get entries(): readonly Entry[] {
    return this.#entries;
  }

  get length(): number {
    return this.#entries.length;
  }

  /**
   * The Tvix/Snix directory size: the number of entries plus, per entry, 1
   * (+ the child's size for a directory). Every entry counts twice; this is
   * what the existing implementations compute, and digests depend on it.
   */
  get size(): number {
    if (this.#size === undefined) {
      let s = this.#entries.length;
      for (const { node } of this.#entries) s += node.type === "directory" ? 1 + node.size : 1;
      this.#size = s;
    }
    return this.#size;
  }

  /** Looks up an entry by name (binary search, bytewise). */
  get(name: Uint8Array | string): Node | undefined {
    const key = typeof name === "string" ? new TextEncoder().encode(name) : name;
    let lo = 0;
    let hi = this.#entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = compareBytes(this.#entries[mid]!.name, key);
      if (c === 0) return this.#entries[mid]!.node;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Entries that are directories, in name order. */
  *directories(): Generator<{ name: PathComponent; node: Extract<Node, { type: "directory" }> }> {
    for (const e of this.#entries)
      if (e.node.type === "directory") yield { name: e.name, node: e.node };
  }

  /** The canonical protobuf encoding (cached). */
  encode(): Uint8Array {
    this.#encoded ??= encodeDirectoryEntries(this.#entries);
    return this.#encoded;
  }

  /** BLAKE3 of the canonical encoding (cached). */
  digest(): B3Digest {
    this.#digest ??= hashB3(this.encode());
    return this.#digest;
  }
}
