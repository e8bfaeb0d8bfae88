/**
 * A PathInfoService in a Map: the reference implementation for the
 * conformance suite and the test double for the store layer. Browser-safe.
 *
 * Entries are kept in their protobuf encoding, like the persistent
 * backends: a put is checked by the same strict decoder every reader uses,
 * and callers can change stored data neither through the objects they
 * passed in nor through the ones they got back.
 *
 * Also exports the encode/decode steps every PathInfo backend shares
 * (`encodeForStorage`, `decodeStored`, `checkStorePathDigest`).
 */
import { bytesEqual, toHex } from "../../castore/bytes.js";
import type { CallOptions } from "../../castore/call-options.js";
import { digestKey } from "../../castore/digest.js";
import { IntegrityError, InvalidInputError, StorageError, throwIfAborted } from "../../errors.js";
import { type PathInfo, validatePathInfo } from "../path-info.js";
import { decodePathInfo, encodePathInfo } from "../path-info-proto.js";
import { STORE_PATH_DIGEST_LENGTH } from "../store-path.js";
import type { PathInfoService } from "./service.js";

/** Rejects (InvalidInputError) a store path digest that is not 20 bytes. */
export function checkStorePathDigest(digest: Uint8Array, context: string): void {
  if (digest.length !== STORE_PATH_DIGEST_LENGTH) {
    throw new InvalidInputError(
      `${context}: a store path digest has ${STORE_PATH_DIGEST_LENGTH} bytes, got ${digest.length}`,
    );
  }
}

/** What a backend stores for a PathInfo, and what reading it back will return. */
export interface StorablePathInfo {
  /** The 20-byte store path digest. */
  readonly key: Uint8Array;
  /** The canonical protobuf encoding (tvix.store.v1.PathInfo). */
  readonly bytes: Uint8Array;
  /** `bytes` decoded: exactly what a later get returns. */
  readonly stored: PathInfo;
}

/**
 * Validates `info` and encodes it. The encoding is decoded again, so
 * everything the strict decoder enforces (store path names, reference
 * digests and names, ...) is enforced on put, also for objects built
 * around the constructors. Throws InvalidInputError prefixed by `context`.
 */
export function encodeForStorage(info: PathInfo, context: string): StorablePathInfo {
  try {
    validatePathInfo(info);
    const bytes = encodePathInfo(info);
    const stored = decodePathInfo(bytes);
    return { key: stored.storePath.digest, bytes, stored };
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new InvalidInputError(`${context}: ${reason}`, { cause });
  }
}

/**
 * Decodes a stored encoding, checking that it is the PathInfo of `key`.
 * Anything else means the store was damaged: IntegrityError.
 */
export function decodeStored(key: Uint8Array, bytes: Uint8Array, where: string): PathInfo {
  let info: PathInfo;
  try {
    info = decodePathInfo(bytes);
  } catch (cause) {
    throw new IntegrityError(
      `path info for store path digest ${toHex(key)} in ${where} is corrupt: it does not decode`,
      { cause },
    );
  }
  if (!bytesEqual(info.storePath.digest, key)) {
    throw new IntegrityError(
      `path info for store path digest ${toHex(key)} in ${where} is corrupt: it describes ${info.storePath.absolute}`,
    );
  }
  return info;
}

const WHERE = "memory path info service";

export class MemoryPathInfoService implements PathInfoService {
  /** Encodings by digestKey of the store path digest. */
  #entries: Map<string, { key: Uint8Array; bytes: Uint8Array }> | undefined = new Map();

  /** Number of path infos stored (for tests and diagnostics). */
  get count(): number {
    return this.#entries?.size ?? 0;
  }

  #open(): Map<string, { key: Uint8Array; bytes: Uint8Array }> {
    if (this.#entries === undefined) throw new StorageError(`${WHERE} is closed`);
    return this.#entries;
  }

  // Decoding yields views into the buffer it reads; a copy keeps callers
  // who modify what they got from reaching the stored bytes.
  #decode(entry: { key: Uint8Array; bytes: Uint8Array }): PathInfo {
    return decodeStored(entry.key, entry.bytes.slice(), WHERE);
  }

  async get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    throwIfAborted(options?.signal);
    checkStorePathDigest(digest, `get from ${WHERE}`);
    const entry = this.#open().get(digestKey(digest));
    return entry === undefined ? undefined : this.#decode(entry);
  }

  async put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    throwIfAborted(options?.signal);
    this.#open();
    const { key, bytes } = encodeForStorage(info, `put to ${WHERE}`);
    this.#open().set(digestKey(key), { key, bytes });
    return this.#decode({ key, bytes });
  }

  async *list(options?: CallOptions): AsyncGenerator<PathInfo> {
    throwIfAborted(options?.signal);
    // A snapshot: puts during the iteration neither show up nor disturb it.
    const snapshot = [...this.#open().values()];
    for (const entry of snapshot) {
      throwIfAborted(options?.signal);
      this.#open();
      yield this.#decode(entry);
    }
  }

  async close(): Promise<void> {
    this.#entries = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
