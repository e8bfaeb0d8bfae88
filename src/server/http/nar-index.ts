/**
 * nar-bridge's own state, next to the store it serves (the "upload
 * registry"): what the castore has no index for.
 *
 * - `nar:<nix32 NAR sha256>` -> the castore root node and NAR size. Filled
 *   when a NAR is uploaded (PUT /nar/...: the narinfo that refers to it comes
 *   in a later request) and when a narinfo is served (so that the plain
 *   `nar/<nix32 NAR hash>.nar` URL of that narinfo resolves without a scan).
 * - `file:<nar/... file name>` -> NAR sha256: the names uploads arrived
 *   under (Nix names compressed NARs by the hash of the compressed file and
 *   asks `HEAD /nar/<file hash>.nar.xz` before uploading again).
 * - `log:<drv basename>` -> blob digest and size of an uploaded build log.
 *
 * Kept in an LMDB environment (durable once a put resolves) or, without a
 * path, in memory. Entries only point into the castore: whoever uses one
 * checks that the root it names is present in the store being served (the
 * index may outlive a store, or be shared by two).
 */
import { fromBase64, fromUtf8, toBase64, utf8 } from "../../castore/bytes.js";
import { type B3Digest, formatB3, parseB3 } from "../../castore/digest.js";
import { LmdbKv } from "../../castore/directory/lmdb.js";
import { type Node, validateNode } from "../../castore/node.js";
import { StorageError } from "../../errors.js";
import { nixbase32DecodeOrUndefined, nixbase32Encode } from "../../store/nixbase32.js";

export interface NarRecord {
  readonly node: Node;
  readonly narSize: number;
}

export interface LogRecord {
  readonly digest: B3Digest;
  readonly size: number;
}

interface Kv {
  get(key: string): string | undefined;
  put(key: string, value: string): Promise<void>;
  close(): Promise<void>;
  readonly where: string;
}

class MemoryKv implements Kv {
  readonly #map = new Map<string, string>();
  readonly where = "memory";
  get(key: string): string | undefined {
    return this.#map.get(key);
  }
  async put(key: string, value: string): Promise<void> {
    this.#map.set(key, value);
  }
  async close(): Promise<void> {}
}

class LmdbBackedKv implements Kv {
  readonly #kv: LmdbKv;
  constructor(path: string) {
    this.#kv = LmdbKv.open({ path }, "nar-bridge");
  }
  get where(): string {
    return this.#kv.where;
  }
  get(key: string): string | undefined {
    const v = this.#kv.db().get(utf8(key));
    return v === undefined ? undefined : fromUtf8(v);
  }
  put(key: string, value: string): Promise<void> {
    return this.#kv.track((db) =>
      this.#kv.write(db, `storing ${key}`, [[utf8(key), utf8(value)]], "overwrite"),
    );
  }
  close(): Promise<void> {
    return this.#kv.close();
  }
}

function encodeNode(node: Node): Record<string, unknown> {
  switch (node.type) {
    case "directory":
      return { type: "directory", digest: formatB3(node.digest), size: node.size };
    case "file":
      return {
        type: "file",
        digest: formatB3(node.digest),
        size: node.size,
        executable: node.executable,
      };
    case "symlink":
      return { type: "symlink", target: toBase64(node.target) };
  }
}

function decodeNode(v: Record<string, unknown>, what: string): Node {
  const size = v.size as number;
  switch (v.type) {
    case "directory":
      return validateNode({ type: "directory", digest: parseB3(String(v.digest)), size }, what);
    case "file":
      return validateNode(
        {
          type: "file",
          digest: parseB3(String(v.digest)),
          size,
          executable: v.executable === true,
        },
        what,
      );
    case "symlink": {
      const target = fromBase64(String(v.target));
      if (target === undefined) throw new StorageError(`${what}: bad symlink target`);
      return validateNode({ type: "symlink", target }, what);
    }
    default:
      throw new StorageError(`${what}: unknown node type ${String(v.type)}`);
  }
}

export class NarIndex {
  readonly #kv: Kv;

  private constructor(kv: Kv) {
    this.#kv = kv;
  }

  /** An index that lives as long as the process. */
  static memory(): NarIndex {
    return new NarIndex(new MemoryKv());
  }

  /** A persistent index in the LMDB environment at `path` (created if missing). */
  static open(path: string): NarIndex {
    return new NarIndex(new LmdbBackedKv(path));
  }

  get where(): string {
    return this.#kv.where;
  }

  #json(key: string): Record<string, unknown> | undefined {
    const text = this.#kv.get(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (cause) {
      throw new StorageError(`nar index ${this.#kv.where}: entry ${key} is not JSON`, { cause });
    }
  }

  /** The castore root of the NAR with this SHA-256, if it was uploaded or served. */
  getNar(narSha256: Uint8Array): NarRecord | undefined {
    const key = `nar:${nixbase32Encode(narSha256)}`;
    const v = this.#json(key);
    if (v === undefined) return undefined;
    return {
      node: decodeNode(v.node as Record<string, unknown>, `nar index entry ${key}`),
      narSize: v.narSize as number,
    };
  }

  putNar(narSha256: Uint8Array, record: NarRecord): Promise<void> {
    return this.#kv.put(
      `nar:${nixbase32Encode(narSha256)}`,
      JSON.stringify({ node: encodeNode(record.node), narSize: record.narSize }),
    );
  }

  /** Whether the NAR is indexed (cheaper than getNar: nothing decoded). */
  hasNar(narSha256: Uint8Array): boolean {
    return this.#kv.get(`nar:${nixbase32Encode(narSha256)}`) !== undefined;
  }

  /** The NAR sha256 of an upload that arrived as `name` (`nar/<...>.nar.xz`). */
  getFile(name: string): Uint8Array | undefined {
    const text = this.#kv.get(`file:${name}`);
    return text === undefined ? undefined : nixbase32DecodeOrUndefined(text);
  }

  putFile(name: string, narSha256: Uint8Array): Promise<void> {
    return this.#kv.put(`file:${name}`, nixbase32Encode(narSha256));
  }

  getLog(drv: string): LogRecord | undefined {
    const v = this.#json(`log:${drv}`);
    if (v === undefined) return undefined;
    return { digest: parseB3(String(v.digest)), size: v.size as number };
  }

  putLog(drv: string, record: LogRecord): Promise<void> {
    return this.#kv.put(
      `log:${drv}`,
      JSON.stringify({ digest: formatB3(record.digest), size: record.size }),
    );
  }

  close(): Promise<void> {
    return this.#kv.close();
  }
}
