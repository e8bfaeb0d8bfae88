/**
 * A directory service over several stores read through a selection
 * strategy: the `priority` and `race` types (ARCHITECTURE §4; strategies in
 * castore/combinators/select.ts). Browser-safe.
 *
 * Reads: `get` takes the first positive answer; `getRecursive` takes the
 * first store whose closure stream yields a first directory and streams the
 * rest of the closure from that store (a store that fails before its first
 * directory is skipped; a failure after it ends the stream with the error).
 * A failing store is skipped with a warning naming it; all stores failing is
 * an UnavailableError.
 *
 * Writes (`put`, `putMultiple`) go to the first store of the list only.
 *
 * `negativeTtlMs` remembers digests no store had (only when every store
 * answered); a directory put through this combinator is forgotten as a miss.
 */
import type { CallOptions } from "../../call-options.js";
import { openStream, releaseStream, resumeStream } from "../../combinators/select.js";
import { type SelectInit, SelectStores } from "../../combinators/select-stores.js";
import { type CombinatorDeps, DIRECTORY_KIND, guarded } from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import type { DirectoryPutter, DirectoryService } from "../service.js";
import { CombinatorPutter } from "./putters.js";

export type SelectDirectoryInit = SelectInit<DirectoryService>;

export class SelectDirectoryService implements DirectoryService {
  readonly #stores: SelectStores<DirectoryService>;

  constructor(init: SelectDirectoryInit, deps: CombinatorDeps = {}) {
    this.#stores = new SelectStores(DIRECTORY_KIND, init, deps);
  }

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    const outcome = await this.#stores.select(
      digestKey(digest),
      `get ${formatB3(digest)}`,
      (s, o) => s.get(digest, o),
      options,
    );
    return outcome.value;
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    const op = `getRecursive ${formatB3(root)}`;
    const outcome = await this.#stores.select(
      digestKey(root),
      op,
      (s, o) => openStream(s.getRecursive(root, o)),
      options,
      releaseStream,
    );
    if (outcome.value === undefined) return;
    const store = this.#stores.stores[outcome.index]!;
    yield* guarded(
      resumeStream(outcome.value),
      this.#stores.state,
      options,
      this.#stores.context(store, op),
    );
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    const digest = await this.#stores.write("put", options, (s) => s.put(directory, options));
    this.#stores.misses.forget(digestKey(digest));
    return digest;
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new CombinatorPutter(
      () => this.#stores.primary.service.putMultiple(options),
      this.#stores.state,
      this.#stores.misses,
      this.#stores.primaryContext("putMultiple"),
    );
  }

  close(): Promise<void> {
    return this.#stores.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
