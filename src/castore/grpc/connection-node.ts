/**
 * The Node.js gRPC connection (HTTP/2 over TCP, TLS or a unix socket) behind
 * `grpc+unix://`, `grpc+http://` and `grpc+https://`, built on connect-node.
 *
 * - Lazy: nothing connects before the first call (unless `connect()`).
 * - Reconnects: connect-node's Http2SessionManager opens a new HTTP/2
 *   session on the next call after the old one died (server restart).
 * - One HTTP/2 session per connection, tuned for bulk transfer: larger flow
 *   control windows and frames than HTTP/2's 64 KiB / 16 KiB defaults (see
 *   H2_TUNING), which roughly double blob streaming throughput.
 * - BlobService `Read`/`Put` go through connect's call machinery
 *   (interceptors, cancellation, status handling) but frame the bytes with
 *   blob-frames.ts instead of protobuf-es.
 * - Every call carries a W3C `traceparent` (traceparentInterceptor).
 * - Messages are limited to 4 MiB in both directions, as in Snix.
 */
import { EventEmitter, once } from "node:events";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type ClientSessionOptions,
  constants as h2constants,
} from "node:http2";
import { connect as netConnect } from "node:net";
import { type DescMethodStreaming, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createNodeHttpClient,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  createAsyncIterable,
  createMethodUrl,
  runStreamingCall,
  type UniversalClientFn,
  type UniversalClientResponse,
} from "@connectrpc/connect/protocol";
import {
  requestHeaderWithCompression,
  validateResponseWithCompression,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
import { UnavailableError } from "../../errors.js";
import {
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
} from "../../proto/gen/tvix/castore/v1/rpc_blobstore_pb.js";
import { type ProtoPackage, storeServices } from "../../proto/packages.js";
import { BlobChunkDecoder, blobChunkPrefix, envelope, MAX_MESSAGE_BYTES } from "./blob-frames.js";
import { type GrpcConnection, traceparentInterceptor } from "./connection.js";

/** HTTP/2 flow control and framing for both ends (client and server). */
export const H2_TUNING = {
  /** Per-stream receive window (HTTP/2 default 64 KiB): bounds what one call buffers. */
  streamWindowBytes: 4 * 1024 * 1024,
  /** Per-connection receive window (default 64 KiB). */
  connectionWindowBytes: 16 * 1024 * 1024,
  /** Largest DATA frame we accept (default 16 KiB): fewer frames per MiB. */
  maxFrameBytes: 1024 * 1024,
} as const;

/** The SETTINGS both ends announce. */
export const H2_SETTINGS = {
  initialWindowSize: H2_TUNING.streamWindowBytes,
  maxFrameSize: H2_TUNING.maxFrameBytes,
} as const;

/** Where a gRPC connection goes. */
export type GrpcTarget =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "tcp"; readonly tls: boolean; readonly host: string; readonly port: number };

export interface NodeConnectionInit {
  readonly target: GrpcTarget;
  readonly pkg: ProtoPackage;
  /** For messages (default: derived from `target`). */
  readonly display?: string;
  /** The active trace context, if any (default: a fresh `traceparent` per call). */
  readonly traceparent?: () => string | undefined;
  /** Closes an idle HTTP/2 connection after this long (default 5 minutes). */
  readonly idleTimeoutMs?: number;
}

/** The URL form of a target, for messages. */
export function describeTarget(target: GrpcTarget): string {
  if (target.kind === "unix") return `grpc+unix://${target.path}`;
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `grpc+${target.tls ? "https" : "http"}://${host}:${target.port}`;
}

/**
 * Node's internal AbortError class (not exported): destroying an HTTP/2
 * stream with one resets it with CANCEL.
 */
const NodeAbortError: new () => Error = await once(new EventEmitter(), "never", {
  signal: AbortSignal.abort(),
}).then(
  () => Error,
  (e: Error) => e.constructor as new () => Error,
);

/**
 * Makes `stream.close(code)` with an error code reset the stream without
 * ending the request first. Node's `close()` half-closes the stream (END_STREAM)
 * and only then sends RST_STREAM; a server may take the END_STREAM for a
 * complete upload and publish a blob the client meant to abandon. connect
 * cancels calls with `close()`.
 */
function resetWithoutHalfClose(stream: ClientHttp2Stream): void {
  const close = stream.close.bind(stream);
  stream.close = ((code?: number, callback?: () => void): void => {
    if (
      code !== undefined &&
      code !== h2constants.NGHTTP2_NO_ERROR &&
      !stream.writableEnded &&
      !stream.destroyed
    ) {
      if (callback !== undefined) stream.once("close", callback);
      stream.destroy(
        code === h2constants.NGHTTP2_CANCEL ? new NodeAbortError() : new Error(`reset (${code})`),
      );
      return;
    }
    close(code, callback);
  }) as ClientHttp2Stream["close"];
}

/** Raises a fresh session's connection window once (the SETTINGS cover streams only). */
function widenConnectionWindow(session: ClientHttp2Session, seen: WeakSet<ClientHttp2Session>) {
  if (seen.has(session)) return;
  seen.add(session);
  const widen = (): void => {
    try {
      session.setLocalWindowSize(H2_TUNING.connectionWindowBytes);
    } catch {
      // The session is closing; the next one gets its own.
    }
  };
  if (session.connecting) session.once("connect", widen);
  else widen();
}

export function createNodeConnection(init: NodeConnectionInit): GrpcConnection {
  return new NodeGrpcConnection(init);
}

/** One HTTP/2 connection (reconnecting), as connect's transports and our own calls use it. */
interface Channel {
  readonly manager: Http2SessionManager;
  readonly httpClient: UniversalClientFn;
  readonly transport: Transport;
}

class NodeGrpcConnection implements GrpcConnection {
  readonly target: string;
  readonly pkg: ProtoPackage;
  readonly #interceptors: Interceptor[];
  readonly #origin: string;
  /** Calls whose large part flows to the client (and small calls). */
  readonly #main: Channel;
  /**
   * Uploads (BlobService and DirectoryService `Put`), on a connection of
   * their own: Node's HTTP/2 stops reading a socket while one of its writes
   * is pending, so with windows larger than the socket buffers, a bulk
   * upload and a bulk download on the same connection between two Node
   * processes can each block on a full socket the other no longer reads.
   * One direction of bulk data per connection cannot deadlock.
   */
  readonly #upload: Channel;

  constructor(init: NodeConnectionInit) {
    this.target = init.display ?? describeTarget(init.target);
    this.pkg = init.pkg;
    const t = init.target;
    const nodeOptions: ClientSessionOptions = {
      settings: H2_SETTINGS,
      // Outgoing data queued in the session counts against this; bulk calls
      // queue up to a window's worth.
      maxSessionMemory: 64,
    };
    if (t.kind === "unix") {
      const path = t.path;
      nodeOptions.createConnection = () => netConnect(path);
      this.#origin = "http://localhost";
    } else {
      const host = t.host.includes(":") ? `[${t.host}]` : t.host;
      this.#origin = `${t.tls ? "https" : "http"}://${host}:${t.port}`;
    }
    this.#interceptors = [traceparentInterceptor(init.traceparent)];
    const channel = (): Channel => {
      const manager = new Http2SessionManager(
        this.#origin,
        { idleConnectionTimeoutMs: init.idleTimeoutMs ?? 5 * 60_000 },
        nodeOptions,
      );
      const widened = new WeakSet<ClientHttp2Session>();
      const sessionManager = {
        authority: manager.authority,
        async request(
          method: string,
          path: string,
          headers: Parameters<Http2SessionManager["request"]>[2],
          options: Parameters<Http2SessionManager["request"]>[3],
        ): Promise<ClientHttp2Stream> {
          const stream = await manager.request(method, path, headers, options);
          widenConnectionWindow(stream.session as ClientHttp2Session, widened);
          resetWithoutHalfClose(stream);
          return stream;
        },
        notifyResponseByteRead(stream: ClientHttp2Stream): void {
          manager.notifyResponseByteRead(stream);
        },
      };
      return {
        manager,
        httpClient: createNodeHttpClient({ httpVersion: "2", sessionProvider: () => sessionManager }),
        transport: createGrpcTransport({
          baseUrl: this.#origin,
          sessionManager,
          acceptCompression: [],
          readMaxBytes: MAX_MESSAGE_BYTES,
          writeMaxBytes: MAX_MESSAGE_BYTES,
          interceptors: this.#interceptors,
        }),
      };
    };
    this.#main = channel();
    this.#upload = channel();
  }

  get transport(): Transport {
    return this.#main.transport;
  }

  get uploadTransport(): Transport {
    return this.#upload.transport;
  }

  async connect(): Promise<void> {
    const state = await this.#main.manager.connect();
    if (state === "error") {
      throw new UnavailableError(`cannot connect to ${this.target}`, {
        cause: this.#main.manager.error(),
      });
    }
  }

  close(): void {
    const reason = new ConnectError("the client was closed", Code.Canceled);
    this.#main.manager.abort(reason);
    this.#upload.manager.abort(reason);
  }

  /** Runs one streaming call of BlobService with a hand-framed body and response. */
  async #call<T>(
    methodName: "Read" | "Put",
    body: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
    onResponse: (res: UniversalClientResponse, foundStatus: boolean) => AsyncIterable<T>,
  ): Promise<AsyncIterable<T>> {
    const service = storeServices(this.pkg).blob;
    const method: DescMethodStreaming = service.method[methodName === "Read" ? "read" : "put"];
    const res = await runStreamingCall({
      interceptors: this.#interceptors,
      signal,
      req: {
        stream: true,
        service,
        method,
        requestMethod: "POST",
        url: createMethodUrl(this.#origin, method),
        header: requestHeaderWithCompression(true, undefined, undefined, [], null),
        contextValues: createContextValues(),
        // Interceptors see no request messages: the body is framed below.
        message: createAsyncIterable([]),
      },
      next: async (req) => {
        const channel = methodName === "Put" ? this.#upload : this.#main;
        const uRes = await channel.httpClient({
          url: req.url,
          method: "POST",
          header: req.header,
          signal: req.signal,
          body,
        });
        const { foundStatus, headerError } = validateResponseWithCompression(
          [],
          uRes.status,
          uRes.header,
        );
        if (headerError !== undefined) throw headerError;
        return {
          ...req,
          header: uRes.header,
          trailer: uRes.trailer,
          message: onResponse(uRes, foundStatus) as unknown as AsyncIterable<never>,
        };
      },
    });
    return res.message as unknown as AsyncIterable<T>;
  }

  async *readBlob(digest: Uint8Array, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const request = envelope(toBinary(ReadBlobRequestSchema, { $typeName: "tvix.castore.v1.ReadBlobRequest", digest }));
    const data = await this.#call<Uint8Array>(
      "Read",
      createAsyncIterable([request]),
      signal,
      (res, foundStatus) => readChunks(res, foundStatus),
    );
    yield* data;
  }

  async putBlob(data: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<Uint8Array> {
    const responses = await this.#call<Uint8Array>(
      "Put",
      frames(data),
      signal,
      (res, foundStatus) => readUnaryResponse(res, foundStatus),
    );
    let payload: Uint8Array | undefined;
    for await (const p of responses) payload = p;
    if (payload === undefined) {
      throw new ConnectError("protocol error: missing output message for Put", Code.Internal);
    }
    // A plain Uint8Array, not a view typed as Buffer.
    return Uint8Array.from(fromBinary(PutBlobResponseSchema, payload).digest);
  }
}

/** The body of a Put: a prefix and the caller's bytes per message, no copies. */
async function* frames(data: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const d of data) {
    if (d.length === 0) continue;
    yield blobChunkPrefix(d.length);
    yield d;
  }
}

async function* readChunks(
  res: UniversalClientResponse,
  foundStatus: boolean,
): AsyncGenerator<Uint8Array> {
  const decoder = new BlobChunkDecoder(Code.Internal);
  const out: Uint8Array[] = [];
  for await (const chunk of res.body) {
    decoder.push(chunk, out);
    // Plain Uint8Array views (Node hands out Buffers), as every BlobReader yields.
    for (const d of out) yield new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    out.length = 0;
  }
  decoder.end();
  if (!foundStatus) validateTrailer(res.trailer, res.header);
}

/** The single message of a unary response, as protobuf bytes (trailers checked). */
async function* readUnaryResponse(
  res: UniversalClientResponse,
  foundStatus: boolean,
): AsyncGenerator<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > MAX_MESSAGE_BYTES + 5) {
      throw new ConnectError("protocol error: response larger than the limit", Code.ResourceExhausted);
    }
    parts.push(chunk);
  }
  if (!foundStatus) validateTrailer(res.trailer, res.header);
  if (size === 0) return;
  const all = Buffer.concat(parts, size);
  const length = all.readUInt32BE(1);
  if (all[0] !== 0 || size !== 5 + length) {
    throw new ConnectError("protocol error: expected exactly one uncompressed message", Code.Internal);
  }
  yield all.subarray(5);
}
