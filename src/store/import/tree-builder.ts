/**
 * Builds the castore directories of a tree met depth-first (a NAR, a walk of
 * a tree on disk): entries collect per open directory, and each directory
 * is put when it closes, so uploads go leaves first. Nothing is committed
 * before `commit()`: the caller first makes the blobs durable.
 */
import type { CallOptions } from "../../castore/call-options.js";
import type { DirectoryPutter, DirectoryService } from "../../castore/directory/service.js";
import { Directory } from "../../castore/directory.js";
import type { Node } from "../../castore/node.js";

interface Frame {
  readonly name: Uint8Array | undefined;
  readonly entries: { name: Uint8Array; node: Node }[];
}

export class CastoreTreeBuilder {
  readonly #directories: DirectoryService;
  readonly #options: CallOptions;
  readonly #stack: Frame[] = [];
  #putter: DirectoryPutter | undefined;
  #root: Node | undefined;

  constructor(directories: DirectoryService, options: CallOptions) {
    this.#directories = directories;
    this.#options = options;
  }

  /** The root node, once the walk placed it. */
  get root(): Node | undefined {
    return this.#root;
  }

  /** A directory opens; `name` is undefined for the root. */
  enter(name: Uint8Array | undefined): void {
    this.#stack.push({ name, entries: [] });
  }

  /** The innermost open directory closes: it is validated, put, and placed in its parent. */
  async leave(): Promise<void> {
    const frame = this.#stack.pop()!;
    const dir = Directory.fromEntries(frame.entries);
    this.#putter ??= this.#directories.putMultiple(this.#options);
    await this.#putter.put(dir, this.#options);
    this.place(frame.name, { type: "directory", digest: dir.digest(), size: dir.size });
  }

  /** A finished node goes into the open directory (or becomes the root). */
  place(name: Uint8Array | undefined, node: Node): void {
    const parent = this.#stack[this.#stack.length - 1];
    if (parent === undefined) this.#root = node;
    else parent.entries.push({ name: name!, node });
  }

  /** Commits the directory closure (call after the blobs it references are durable). */
  async commit(): Promise<void> {
    const putter = this.#putter;
    this.#putter = undefined;
    await putter?.close(this.#options);
  }

  /** Drops everything put so far: nothing of it becomes visible. */
  async abort(reason: unknown): Promise<void> {
    const putter = this.#putter;
    this.#putter = undefined;
    await putter?.abort(reason);
  }
}
