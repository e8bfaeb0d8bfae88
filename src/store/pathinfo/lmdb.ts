/**
 * `lmdb://`: PathInfos in an LMDB environment (Node only). Key: the 20-byte
 * store path digest; value: the protobuf encoding (tvix.store.v1.PathInfo),
 * decoded strictly and checked against its key on every read.
 *
 * Environment lifecycle and durability settings are shared with the
 * directory backend (`LmdbKv`, see castore/directory/lmdb.ts): lmdb-js'
 * crash-safe defaults, and every put resolves only once flushed.
 */
import type { CallOptions } from "../../castore/call-options.js";
import { type LmdbInit, LmdbKv } from "../../castore/directory/lmdb.js";
import { throwIfAborted } from "../../errors.js";
import type { PathInfo } from "../path-info.js";
import { checkStorePathDigest, decodeStored, encodeForStorage } from "./memory.js";
import type { PathInfoService } from "./service.js";

/** The name of the LMDB database (inside the environment) that holds path infos. */
export const LMDB_PATHINFO_DB = "pathinfo";

/** An LMDB-backed PathInfoService. Create it with `LmdbPathInfoService.open`. */
export class LmdbPathInfoService implements PathInfoService {
  readonly #kv: LmdbKv;

  private constructor(kv: LmdbKv) {
    this.#kv = kv;
  }

  /**
   * Opens the store at `init.path` (created if missing), or a temporary
   * store deleted on close when no path is given. Rejects with StorageError
   * when the environment cannot be opened.
   */
  static async open(init: LmdbInit = {}): Promise<LmdbPathInfoService> {
    return new LmdbPathInfoService(LmdbKv.open(init, LMDB_PATHINFO_DB));
  }

  /** The environment's directory. */
  get path(): string {
    return this.#kv.path;
  }

  async get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    throwIfAborted(options?.signal);
    checkStorePathDigest(digest, `get from ${this.#kv.where}`);
    const bytes = this.#kv.db().get(digest);
    return bytes === undefined ? undefined : decodeStored(digest, bytes, this.#kv.where);
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    throwIfAborted(options?.signal);
    return this.#kv.track(async (db) => {
      const { key, bytes, stored } = encodeForStorage(info, `put to ${this.#kv.where}`);
      await this.#kv.write(
        db,
        `storing path info ${stored.storePath.absolute}`,
        [[key, bytes]],
        "overwrite",
      );
      return stored;
    });
  }

  /** Streams the entries of one read transaction, lazily, in key order. */
  async *list(options?: CallOptions): AsyncGenerator<PathInfo> {
    for await (const { key, value } of this.#kv.entries(options)) {
      yield decodeStored(key, value, this.#kv.where);
    }
  }

  /** Waits for writes in flight, then closes the environment (and deletes a temporary one). Idempotent. */
  close(): Promise<void> {
    return this.#kv.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
