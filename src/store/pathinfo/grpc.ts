/**
 * A PathInfoService over gRPC (wire-compatible with Tvix and Snix servers),
 * plus the server's NAR calculation (`calculateNar`, PathInfoService
 * `CalculateNAR`). Path infos are validated before they are sent (so bad
 * ones fail here, with the same InvalidInput messages as local backends)
 * and when they arrive (a server answering an invalid path info, or the
 * path info of another store path, is an IntegrityError).
 */
import { type Client, createClient } from "@connectrpc/connect";
import { bytesEqual, toHex } from "../../castore/bytes.js";
import type { CallOptions } from "../../castore/call-options.js";
import { entryToProto } from "../../castore/directory-proto.js";
import { ClientCore, type GrpcClientInit, type Lazy } from "../../castore/grpc/client-core.js";
import type { GrpcConnection } from "../../castore/grpc/connection.js";
import { isNotFound } from "../../castore/grpc/status.js";
import type { Node } from "../../castore/node.js";
import { IntegrityError } from "../../errors.js";
import type { PathInfo as PathInfoPb } from "../../proto/gen/tvix/store/v1/pathinfo_pb.js";
import { storeServices } from "../../proto/packages.js";
import type { NarHashResult } from "../nar/hash.js";
import type { PathInfo } from "../path-info.js";
import { pathInfoFromProto, pathInfoToProto } from "../path-info-proto.js";
import { STORE_PATH_DIGEST_LENGTH } from "../store-path.js";
import { checkStorePathDigest, encodeForStorage } from "./memory.js";
import type { PathInfoService } from "./service.js";

type PathInfoClient = Client<ReturnType<typeof storeServices>["pathInfo"]>;

function received(msg: PathInfoPb, what: Lazy): PathInfo {
  try {
    return pathInfoFromProto(msg);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const label = typeof what === "string" ? what : what();
    throw new IntegrityError(`${label}: the server sent an invalid path info: ${reason}`, {
      cause: err,
    });
  }
}

function undefinedIfNotFound(err: unknown): undefined {
  if (isNotFound(err)) return undefined;
  throw err;
}

export class GrpcPathInfoService implements PathInfoService {
  readonly #core: ClientCore;
  readonly #client: PathInfoClient;
  readonly #service: ReturnType<typeof storeServices>["pathInfo"];

  constructor(conn: GrpcConnection, init?: GrpcClientInit) {
    this.#core = new ClientCore(conn, "path info service", init);
    this.#service = storeServices(conn.pkg).pathInfo;
    this.#client = createClient(this.#service, conn.transport);
  }

  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    const what = (): string => `get ${toHex(digest)}`;
    return this.#core.run(what, options, (signal) => {
      if (digest.length !== STORE_PATH_DIGEST_LENGTH) {
        checkStorePathDigest(digest, `${this.#core.label}: get`);
      }
      return this.#core.conn
        .unary(
          this.#service.method.get,
          { byWhat: { case: "byOutputHash", value: digest } },
          signal,
        )
        .then((msg) => {
          const info = received(msg, what);
          if (!bytesEqual(info.storePath.digest, digest)) {
            throw new IntegrityError(
              `${this.#core.label}: ${what()}: the server sent the path info of ${info.storePath.absolute}`,
            );
          }
          return info;
        }, undefinedIfNotFound);
    });
  }

  put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    return this.#core.run(
      () => `put ${info.storePath.basename}`,
      options,
      async (signal) => {
        // Validated (and normalised through its encoding) before anything is sent.
        const { stored } = encodeForStorage(info, `${this.#core.label}: put`);
        const what = `put ${stored.storePath.absolute}`;
        const msg = await this.#core.conn.unary(
          this.#service.method.put,
          pathInfoToProto(stored),
          signal,
        );
        const answered = received(msg, what);
        if (!answered.storePath.equals(stored.storePath)) {
          throw new IntegrityError(
            `${this.#core.label}: ${what}: the server answered with the path info of ${answered.storePath.absolute}`,
          );
        }
        return answered;
      },
    );
  }

  async *list(options?: CallOptions): AsyncGenerator<PathInfo> {
    const core = this.#core;
    core.check("list", options?.signal);
    // Ends the call when the consumer stops early (connect does not on its own).
    const done = new AbortController();
    const signal = core.signal(options?.signal, done.signal);
    try {
      for await (const msg of this.#client.list({}, { signal })) {
        const info = received(msg, "list");
        core.check("list", options?.signal);
        yield info;
        core.check("list", options?.signal);
      }
    } catch (err) {
      throw core.error(err, "list", options?.signal);
    } finally {
      done.abort();
    }
  }

  /**
   * The NAR size and SHA-256 of a castore root, computed by the server from
   * its blobs and directories (PathInfoService `CalculateNAR`).
   */
  calculateNar(node: Node, options?: CallOptions): Promise<NarHashResult> {
    return this.#core.run("calculateNar", options, async (signal) => {
      // The root is sent with an empty name, as Snix requires.
      const res = await this.#core.conn.unary(
        this.#service.method.calculateNAR,
        entryToProto(new Uint8Array(0), node),
        signal,
      );
      if (res.narSha256.length !== 32 || res.narSize > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new IntegrityError(`${this.#core.label}: calculateNar: malformed answer`);
      }
      return { sha256: res.narSha256, size: Number(res.narSize) };
    });
  }

  async close(): Promise<void> {
    this.#core.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
