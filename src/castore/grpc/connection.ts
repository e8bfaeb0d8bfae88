/**
 * What the gRPC clients (blob, directory, path info) talk through: a
 * connect `Transport` for ordinary calls plus the two bulk byte paths of
 * BlobService (`Read`, `Put`), which a transport can implement without
 * protobuf-es (see blob-frames.ts). The Node implementation lives in
 * connection-node.ts; `transportConnection` builds one from any connect
 * transport (e.g. connect-web in a browser) with the generic message path.
 * Browser-safe.
 */
import type {
  DescMessage,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
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
  /**
   * A unary call (the clients' small requests: Stat, PathInfo Get/Put, ...).
   * Failures reject as ConnectErrors.
   */
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    signal: AbortSignal | undefined,
  ): Promise<MessageShape<O>>;
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

/** Random bytes for trace ids, drawn from the system in batches (one draw per call is costly). */
const pool = new Uint8Array(4096);
let poolUsed = pool.length;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function randomHex(bytes: number): string {
  if (poolUsed + bytes > pool.length) {
    crypto.getRandomValues(pool);
    poolUsed = 0;
  }
  let s = "";
  for (let i = 0; i < bytes; i++) s += HEX[pool[poolUsed++]!]!;
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
    async unary(method, input, signal) {
      return (await transport.unary(method, signal, undefined, undefined, input)).message;
    },
    async connect() {},
    close() {},
  };
}
