/**
 * What the gRPC clients (blob, directory, path info) talk through: a
 * connect `Transport` for ordinary calls plus the two bulk byte paths of
 * BlobService (`Read`, `Put`), which a transport can implement without
 * protobuf-es (see blob-frames.ts). The Node implementation lives in
 * connection-node.ts; `transportConnection` builds one from any connect
 * transport (e.g. connect-web in a browser) with the generic message path.
 * Browser-safe.
 */
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { type ProtoPackage, storeServices } from "../../proto/packages.js";

export interface GrpcConnection {
  /** The URL it connects to (password-free), for messages. */
  readonly target: string;
  /** Which package name the services are addressed by. */
  readonly pkg: ProtoPackage;
  /** For every call but uploads and the two below. */
  readonly transport: Transport;
  /**
   * For client-streaming uploads (DirectoryService `Put`). May be a second
   * connection: see connection-node.ts on why bulk uploads and downloads
   * do not share one.
   */
  readonly uploadTransport: Transport;
  /**
   * `BlobService.Read`: the data of the blob or chunk, in pieces as they
   * arrive (each the caller's to keep). NOT_FOUND and every other failure
   * reject as ConnectErrors.
   */
  readBlob(digest: Uint8Array, signal: AbortSignal): AsyncIterable<Uint8Array>;
  /**
   * `BlobService.Put`: sends the pieces of `data` (each at most
   * BLOB_CHUNK_BYTES, one message each) and resolves to the digest the
   * server answered. A piece counts as sent once the next one is asked for.
   */
  putBlob(data: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<Uint8Array>;
  /** Opens the connection now (`wait-connect=1`); rejects if the server cannot be reached. */
  connect(): Promise<void>;
  /** Closes the connection; calls still running fail. */
  close(): void;
}

/**
 * An interceptor that sends a W3C `traceparent` with every call: the one
 * `current()` returns (the active trace), or a fresh one per call, so the
 * server's log lines of one call can be correlated.
 */
export function traceparentInterceptor(current?: () => string | undefined): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has("traceparent")) {
      req.header.set("traceparent", current?.() ?? newTraceparent());
    }
    return next(req);
  };
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** A new sampled W3C trace context: `00-<trace id>-<span id>-01`. */
export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** A connection whose blob byte paths use ordinary messages over `transport`. */
export function transportConnection(
  transport: Transport,
  pkg: ProtoPackage,
  target: string,
): GrpcConnection {
  const blobs = createClient(storeServices(pkg).blob, transport);
  return {
    target,
    pkg,
    transport,
    uploadTransport: transport,
    async *readBlob(digest, signal) {
      for await (const m of blobs.read({ digest }, { signal })) yield m.data;
    },
    async putBlob(data, signal) {
      async function* messages() {
        for await (const d of data) yield { data: d };
      }
      return (await blobs.put(messages(), { signal })).digest;
    },
    async connect() {},
    close() {},
  };
}
