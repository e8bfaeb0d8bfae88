/**
 * What every request handler of the binary cache shares: the stores, the
 * NAR index, signing keys, limits, and the lookups built on them.
 */
import type { BlobService } from "../../castore/blob/service.js";
import type { CallOptions } from "../../castore/call-options.js";
import { digestKey } from "../../castore/digest.js";
import type { DirectoryService } from "../../castore/directory/service.js";
import type { Node } from "../../castore/node.js";
import type { Logger } from "../../observability/log.js";
import { NarGeometry } from "../../store/nar/geometry.js";
import { renderNarInfo } from "../../store/narinfo.js";
import { nixbase32DecodeOrUndefined, nixbase32Encode } from "../../store/nixbase32.js";
import { type PathInfo, pathInfoFingerprint, pathInfoToNarInfo } from "../../store/path-info.js";
import type { PathInfoService } from "../../store/pathinfo/service.js";
import { type SecretKey, type Signature, sign, signaturesEqual } from "../../store/signature.js";
import type { FastResponse } from "./fast-path.js";
import type { NarIndex } from "./nar-index.js";

export interface HttpCacheLimits {
  /** Request line + headers (Node's `maxHeaderSize`; larger gets 431). Default 16 KiB. */
  readonly maxHeaderBytes: number;
  /** A narinfo upload. Default 1 MiB. */
  readonly maxNarInfoBytes: number;
  /** A `.ls` upload (read and dropped). Default 64 MiB. */
  readonly maxListingBytes: number;
  /** A build log upload. Default 256 MiB. */
  readonly maxLogBytes: number;
  /** A NAR upload, compressed as sent and uncompressed each. Default 64 GiB. */
  readonly maxNarBytes: number;
}

export const DEFAULT_LIMITS: HttpCacheLimits = {
  maxHeaderBytes: 16 * 1024,
  maxNarInfoBytes: 1024 * 1024,
  maxListingBytes: 64 * 1024 * 1024,
  maxLogBytes: 256 * 1024 * 1024,
  maxNarBytes: 64 * 1024 * 1024 * 1024,
};

export interface ServedStores {
  readonly blobs: BlobService;
  readonly directories: DirectoryService;
  readonly pathInfos: PathInfoService;
}

/** A NAR the cache can serve. */
export interface ResolvedNar {
  readonly narSha256: Uint8Array;
  readonly node: Node;
  readonly narSize: number;
}

/**
 * How long a rendered narinfo is served from memory. Store paths are
 * immutable here (only signatures can be added, by an upload, which drops
 * the entry); what else can change it (signatures added through gRPC or
 * another process, a path deleted) shows within this time, well inside the
 * year of caching the response headers allow clients anyway.
 */
const NARINFO_TTL_MS = 2000;
const NARINFO_CACHE_ENTRIES = 4096;

/** Directory entries the geometry cache keeps (~330 bytes each: ~10 MiB). */
const GEOMETRY_CACHE_ENTRIES = 32_768;

/** Rebuilding the NAR index from the path infos happens at most this often. */
const RESCAN_INTERVAL_MS = 60_000;

/** A small LRU on a Map (insertion order = recency). */
class Lru<V> {
  readonly #map = new Map<string, V>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  /** Without touching its recency. */
  peek(key: string): V | undefined {
    return this.#map.get(key);
  }
  /** The least recently used key. */
  oldest(): string | undefined {
    return this.#map.keys().next().value;
  }
  set(key: string, v: V, onEvict?: (key: string) => void): void {
    this.#map.delete(key);
    this.#map.set(key, v);
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value!;
      this.#map.delete(oldest);
      onEvict?.(oldest);
    }
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
}

export class CacheContext {
  readonly stores: ServedStores;
  readonly index: NarIndex;
  readonly keys: readonly SecretKey[];
  readonly limits: HttpCacheLimits;
  readonly priority: number;
  readonly log: Logger;
  /** Our signatures per fingerprint (Ed25519 is deterministic; signing costs more than a lookup). */
  readonly #signatures = new Lru<Signature[]>(10_000);
  /**
   * Directory closures of recently served NARs. Loading one from the
   * directory service (decode, validate, re-hash) cost a third of the CPU of
   * serving a NAR of small files; clients fetch closures NAR by NAR, resumed
   * downloads come back for the same one. Bounded by directory entries.
   */
  readonly #geometries = new Lru<Promise<NarGeometry>>(1024);
  #geometryWeights = new Map<string, number>();
  #geometryEntries = 0;
  /** Recently served narinfo responses by hash part, with when they were made. */
  readonly #narInfos = new Lru<{ readonly at: number; readonly response: FastResponse }>(
    NARINFO_CACHE_ENTRIES,
  );
  /** NAR hashes known to be in the index (saves an index lookup per narinfo served). */
  readonly #remembered = new Lru<true>(100_000);
  #lastScan = 0;
  #scanning: Promise<void> | undefined;

  constructor(init: {
    stores: ServedStores;
    index: NarIndex;
    keys: readonly SecretKey[];
    limits: HttpCacheLimits;
    priority: number;
    log: Logger;
  }) {
    this.stores = init.stores;
    this.index = init.index;
    this.keys = init.keys;
    this.limits = init.limits;
    this.priority = init.priority;
    this.log = init.log;
  }

  /** `info` with a signature by each of our keys added (unless already there). */
  signed(info: PathInfo): PathInfo {
    if (this.keys.length === 0) return info;
    const fp = pathInfoFingerprint(info);
    let ours = this.#signatures.get(fp);
    if (ours === undefined) {
      ours = this.keys.map((k) => sign(fp, k));
      this.#signatures.set(fp, ours);
    }
    const missing = ours.filter((s) => !info.signatures.some((t) => signaturesEqual(s, t)));
    return missing.length === 0 ? info : { ...info, signatures: [...info.signatures, ...missing] };
  }

  /** The narinfo response for this hash part if one was made in the last NARINFO_TTL_MS. */
  cachedNarInfo(hash: string): FastResponse | undefined {
    const e = this.#narInfos.get(hash);
    if (e === undefined) return undefined;
    if (performance.now() - e.at <= NARINFO_TTL_MS) return e.response;
    this.#narInfos.delete(hash);
    return undefined;
  }

  cacheNarInfo(hash: string, response: FastResponse): void {
    this.#narInfos.set(hash, { at: performance.now(), response });
  }

  /** Drops a cached narinfo (its path info changed). */
  forgetNarInfo(hash: string): void {
    this.#narInfos.delete(hash);
  }

  /** The narinfo text for a path: our URL form, no compression, signed by our keys. */
  narInfoText(info: PathInfo): string {
    const signed = this.signed(info);
    return renderNarInfo(
      pathInfoToNarInfo(signed, {
        url: narUrl(info.narSha256),
        compression: "none",
        fileHash: info.narSha256,
        fileSize: info.narSize,
      }),
    );
  }

  /**
   * Makes the NAR of a served narinfo resolvable by its URL (persisted, in
   * the background: a failure only costs a later index scan).
   */
  remember(info: PathInfo): void {
    const key = digestKey(info.narSha256);
    if (this.#remembered.get(key) !== undefined) return;
    this.#remembered.set(key, true);
    if (this.index.hasNar(info.narSha256)) return;
    this.index
      .putNar(info.narSha256, { node: info.node, narSize: info.narSize })
      .catch((err: unknown) => {
        this.#remembered.delete(key);
        this.log.warn("could not update the NAR index", { err });
      });
  }

  /** Whether the castore holds the root node (its directory or blob; symlinks always). */
  async rootPresent(node: Node, options: CallOptions = {}): Promise<boolean> {
    switch (node.type) {
      case "symlink":
        return true;
      case "file":
        return this.stores.blobs.has(node.digest, options);
      case "directory":
        return (await this.stores.directories.get(node.digest, options)) !== undefined;
    }
  }

  /**
   * The NAR a `nar/<id>.nar...` URL names: `<id>` is the nix32 NAR SHA-256
   * (our narinfos) or the name an upload arrived under (`file`). Only NARs
   * whose root is in the store count. With `rescan`, a miss rebuilds the
   * index from the path infos (at most once a minute) and looks again.
   */
  async resolveNar(
    id: string,
    file: string,
    options: CallOptions & { rescan?: boolean } = {},
  ): Promise<ResolvedNar | undefined> {
    const byHash = id.length === 52 ? nixbase32DecodeOrUndefined(id) : undefined;
    const found = await this.#lookup(byHash, file, options);
    if (found !== undefined || byHash === undefined || options.rescan !== true) return found;
    // Not indexed: the path may have been added to the store by other means
    // (`strata import`, gRPC) and its narinfo not served by us yet.
    await this.#rescan();
    return this.#lookup(byHash, file, options);
  }

  async #lookup(
    byHash: Uint8Array | undefined,
    file: string,
    options: CallOptions,
  ): Promise<ResolvedNar | undefined> {
    const narSha256 =
      (byHash !== undefined && this.index.hasNar(byHash) ? byHash : undefined) ??
      this.index.getFile(file);
    if (narSha256 === undefined) return undefined;
    const rec = this.index.getNar(narSha256);
    if (rec === undefined || !(await this.rootPresent(rec.node, options))) return undefined;
    return { narSha256, node: rec.node, narSize: rec.narSize };
  }

  /** Indexes the NAR of every path info (at most once a minute). */
  #rescan(): Promise<void> {
    if (this.#scanning !== undefined) return this.#scanning;
    if (Date.now() - this.#lastScan < RESCAN_INTERVAL_MS) return Promise.resolve();
    this.#lastScan = Date.now();
    this.#scanning = (async () => {
      let added = 0;
      try {
        // Writes go out in batches (one commit and flush each), not one by one.
        let batch: Promise<void>[] = [];
        // Not tied to the request that triggered it: others wait for it too.
        for await (const info of this.stores.pathInfos.list()) {
          if (this.index.hasNar(info.narSha256)) continue;
          batch.push(this.index.putNar(info.narSha256, { node: info.node, narSize: info.narSize }));
          added++;
          if (batch.length >= 1000) {
            await Promise.all(batch);
            batch = [];
          }
        }
        await Promise.all(batch);
        this.log.info(`NAR index rebuilt from the path infos: ${added} NARs added`);
      } catch (err) {
        this.log.warn("scanning the path infos for the NAR index failed", { err });
      } finally {
        this.#scanning = undefined;
      }
    })();
    return this.#scanning;
  }

  /** The directory closure of a NAR's root, for range requests and listings (cached for a few roots). */
  geometry(narSha256: Uint8Array, node: Node): Promise<NarGeometry> {
    const key = nixbase32Encode(narSha256);
    let g = this.#geometries.get(key);
    if (g === undefined) {
      // Not tied to the request that asked first: others may share the result.
      g = NarGeometry.load(node, this.stores.directories);
      this.#geometries.set(key, g, (evicted) => this.#forgetGeometry(evicted));
      g.then(
        (loaded) => {
          if (this.#geometries.peek(key) !== g) return; // evicted meanwhile
          this.#geometryWeights.set(key, loaded.entryCount);
          this.#geometryEntries += loaded.entryCount;
          while (this.#geometryEntries > GEOMETRY_CACHE_ENTRIES) {
            const oldest = this.#geometries.oldest();
            if (oldest === undefined || oldest === key) break;
            this.#geometries.delete(oldest);
            this.#forgetGeometry(oldest);
          }
        },
        () => {
          if (this.#geometries.peek(key) === g) this.#geometries.delete(key);
        },
      );
    }
    return g;
  }

  #forgetGeometry(key: string): void {
    this.#geometryEntries -= this.#geometryWeights.get(key) ?? 0;
    this.#geometryWeights.delete(key);
  }
}

/** The URL our narinfos give for a NAR: what Nix itself writes with `compression=none`. */
export function narUrl(narSha256: Uint8Array): string {
  return `nar/${nixbase32Encode(narSha256)}.nar`;
}
