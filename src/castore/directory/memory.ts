/**
 * A DirectoryService in a Map: the reference implementation the
 * conformance suite is written against, and the test double for everything
 * built on directories (STYLE 3). Browser-safe.
 */
import { StorageError, throwIfAborted } from "../../errors.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, digestKey } from "../digest.js";
import type { Directory } from "../directory.js";
import { ClosurePutter, checkStoredChildren, walkClosure } from "./closure-validator.js";
import type { DirectoryPutter, DirectoryService } from "./service.js";

const WHERE = "memory directory service";

export class MemoryDirectoryService implements DirectoryService {
  /** By digestKey. Directories are immutable, so they are kept as given. */
  #directories: Map<string, Directory> | undefined = new Map();

  /** Number of directories stored (for tests and diagnostics). */
  get count(): number {
    return this.#directories?.size ?? 0;
  }

  #open(): Map<string, Directory> {
    if (this.#directories === undefined) throw new StorageError(`${WHERE} is closed`);
    return this.#directories;
  }

  readonly #storedSize = async (digest: B3Digest): Promise<number | undefined> =>
    this.#open().get(digestKey(digest))?.size;

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    throwIfAborted(options?.signal);
    return this.#open().get(digestKey(digest));
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    throwIfAborted(options?.signal);
    this.#open();
    await checkStoredChildren(directory, this.#storedSize, `put to ${WHERE}`, options);
    const digest = directory.digest();
    this.#open().set(digestKey(digest), directory);
    return digest;
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    this.#open();
    const load = async (d: B3Digest): Promise<Directory | undefined> =>
      this.#open().get(digestKey(d));
    for await (const directory of walkClosure(root, load, options, WHERE)) {
      this.#open();
      yield directory;
    }
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new ClosurePutter({
      stored: this.#storedSize,
      checkOpen: () => {
        this.#open();
      },
      context: `putMultiple to ${WHERE}`,
      signal: options?.signal,
      // Synchronous, so no other call observes half of the closure.
      commit: async ({ directories }) => {
        const map = this.#open();
        for (const d of directories) map.set(digestKey(d.digest()), d);
      },
    });
  }

  async close(): Promise<void> {
    this.#directories = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
