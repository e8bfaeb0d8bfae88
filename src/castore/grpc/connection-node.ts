/**
 * The Node.js gRPC connection (HTTP/2 over TCP, TLS or a unix socket) behind
 * `grpc+unix://`, `grpc+http://` and `grpc+https://`, built on connect-node.
 *
 * - Lazy: nothing connects before the first call (unless `connect()`).
 * - Reconnects: the next call after the connection died (server restart)
 *   opens a new HTTP/2 session (h2-channel.ts).
 * - One HTTP/2 session per connection, tuned for bulk transfer: larger flow
 *   control windows and frames than HTTP/2's 64 KiB / 16 KiB defaults (see
 *   H2_TUNING), which roughly double blob streaming throughput.
 * - BlobService `Read`/`Put` go through connect's call machinery
 *   (interceptors, cancellation, status handling) but frame the bytes with
 *   blob-frames.ts instead of protobuf-es.
 * - Unary calls (the clients' small requests) run straight on an HTTP/2
 *   stream (`unary`): same protocol, status handling and cancellation, a
 *   fraction of connect's cost per call.
 * - Every call carries a W3C `traceparent` (traceparentInterceptor, or
 *   `unary` itself).
 * - Messages are limited to 4 MiB in both directions, as in Snix.
 */
import { randomFillSync } from "node:crypto";
import { EventEmitter, once } from "node:events";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type ClientSessionOptions,
  type ClientSessionRequestOptions,
  constants as h2constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";
import { connect as netConnect } from "node:net";
import {
  create,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
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
import { createGrpcTransport, createNodeHttpClient } from "@connectrpc/connect-node";
import { UnavailableError } from "../../errors.js";
import {
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
} from "../../proto/gen/tvix/castore/v1/rpc_blobstore_pb.js";
import { type ProtoPackage, storeServices } from "../../proto/packages.js";
import { BlobChunkDecoder, blobChunkPrefix, envelope, MAX_MESSAGE_BYTES } from "./blob-frames.js";
import { type GrpcConnection, traceparentInterceptor } from "./connection.js";
import { encodeFlatEnveloped } from "./flat-message.js";
import { H2Channel, type LiveSession } from "./h2-channel.js";

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

/** Raises a new session's connection window (the SETTINGS cover streams only). */
function widenConnectionWindow(session: ClientHttp2Session): void {
  try {
    session.setLocalWindowSize(H2_TUNING.connectionWindowBytes);
  } catch {
    // The session is closing; the next one gets its own.
  }
}

export function createNodeConnection(init: NodeConnectionInit): GrpcConnection {
  return new NodeGrpcConnection(init);
}

/** One HTTP/2 connection (reconnecting), as connect's transports and our own calls use it. */
interface Channel {
  readonly h2: H2Channel;
  readonly httpClient: UniversalClientFn;
  readonly transport: Transport;
}

class NodeGrpcConnection implements GrpcConnection {
  readonly target: string;
  readonly pkg: ProtoPackage;
  readonly #interceptors: Interceptor[];
  readonly #traceparent: (() => string | undefined) | undefined;
  /** Bytes of unary requests in flight on the main connection (see ByteBudget). */
  readonly #unaryBudget = new ByteBudget(MAX_UNARY_INFLIGHT_BYTES);
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
      if (!t.tls) {
        // Small calls must not wait for Nagle's algorithm.
        const { host: h, port } = t;
        nodeOptions.createConnection = () => netConnect({ host: h, port, noDelay: true });
      }
    }
    this.#interceptors = [traceparentInterceptor(init.traceparent)];
    this.#traceparent = init.traceparent;
    const channel = (): Channel => {
      const h2 = new H2Channel(
        this.#origin,
        nodeOptions,
        init.idleTimeoutMs ?? 5 * 60_000,
        widenConnectionWindow,
      );
      // What connect's transports open their streams through.
      const sessionManager = {
        authority: this.#origin,
        async request(
          method: string,
          path: string,
          headers: OutgoingHttpHeaders,
          options: Omit<ClientSessionRequestOptions, "signal">,
        ): Promise<ClientHttp2Stream> {
          const { stream, session } = await h2.open(
            { ...headers, ":method": method, ":path": path },
            options,
          );
          stream.once("close", () => session.streamClosed());
          resetWithoutHalfClose(stream);
          return stream;
        },
        notifyResponseByteRead(): void {
          // Only keep-alive PINGs would need it; strata sends none.
        },
      };
      return {
        h2,
        httpClient: createNodeHttpClient({
          httpVersion: "2",
          sessionProvider: () => sessionManager,
        }),
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
    try {
      await this.#main.h2.session();
    } catch (err) {
      throw new UnavailableError(`cannot connect to ${this.target}`, {
        cause: this.#main.h2.lastError ?? err,
      });
    }
  }

  close(): void {
    const reason = new ConnectError("the client was closed", Code.Canceled);
    this.#main.h2.abort(reason);
    this.#upload.h2.abort(reason);
  }

  /**
   * A unary call straight on an HTTP/2 stream: connect's generic client
   * pipeline costs several times the exchange itself per small request.
   * Same protocol, status handling and cancellation. While the connection
   * is open and the byte budget has room (the usual case), the stream opens
   * synchronously: the call's promise is the only one.
   */
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    signal: AbortSignal | undefined,
  ): Promise<MessageShape<O>> {
    if (signal?.aborted) {
      return Promise.reject(new ConnectError("the call was cancelled", Code.Canceled));
    }
    let body: Uint8Array;
    try {
      body =
        encodeFlatEnveloped(method.input, input, allocBuffer) ??
        envelope(toBinary(method.input, create(method.input, input)));
    } catch (err) {
      return Promise.reject(err);
    }
    const cost = body.length + REQUEST_OVERHEAD_BYTES;
    const headers: OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": methodPath(method),
      "content-type": "application/grpc+proto",
      te: "trailers",
      "user-agent": USER_AGENT,
      traceparent: this.#traceparent?.() ?? nodeTraceparent(),
    };
    const live = this.#main.h2.live;
    if (live !== undefined && this.#unaryBudget.tryAcquire(cost)) {
      let stream: ClientHttp2Stream | undefined;
      try {
        stream = live.open(headers);
      } catch {
        // The session is going away: the slow path connects anew.
        this.#unaryBudget.release(cost);
      }
      if (stream !== undefined) {
        return unaryExchange(method, stream, body, signal, this.#unaryBudget, cost, live);
      }
    }
    return this.#unarySlow(method, headers, body, cost, signal);
  }

  /** A unary call that waits for the connection or for room in the budget. */
  async #unarySlow<O extends DescMessage>(
    method: DescMethodUnary<DescMessage, O>,
    headers: OutgoingHttpHeaders,
    body: Uint8Array,
    cost: number,
    signal: AbortSignal | undefined,
  ): Promise<MessageShape<O>> {
    await this.#unaryBudget.acquire(cost, signal);
    let opened: { stream: ClientHttp2Stream; session: LiveSession };
    try {
      opened = await this.#main.h2.open(headers);
    } catch (err) {
      this.#unaryBudget.release(cost);
      throw err;
    }
    return unaryExchange(
      method,
      opened.stream,
      body,
      signal,
      this.#unaryBudget,
      cost,
      opened.session,
    );
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
    const request = envelope(
      toBinary(ReadBlobRequestSchema, { $typeName: "tvix.castore.v1.ReadBlobRequest", digest }),
    );
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

const USER_AGENT = "strata-grpc (connect-es/2)";

/**
 * Request bytes of unary calls in flight per connection. Node's HTTP/2
 * stops reading a socket while one of its writes is pending; when two Node
 * processes both write more than the socket buffers hold (hundreds of
 * concurrent calls each way on a unix socket, whose buffers are ~200 KiB),
 * neither reads again. Keeping what we send well below that means our
 * writes never block, so we always read. (Bulk uploads have a connection of
 * their own, and a flow control window.)
 */
const MAX_UNARY_INFLIGHT_BYTES = 64 * 1024;
/** What a request costs besides its message (HEADERS frame, envelope). */
const REQUEST_OVERHEAD_BYTES = 256;

/** A counting semaphore over bytes; a single oversized request is let through alone. */
class ByteBudget {
  readonly #limit: number;
  #used = 0;
  readonly #waiting: { cost: number; resolve: () => void }[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Takes `cost` if there is room now and nobody is waiting. */
  tryAcquire(cost: number): boolean {
    if (this.#waiting.length === 0 && (this.#used === 0 || this.#used + cost <= this.#limit)) {
      this.#used += cost;
      return true;
    }
    return false;
  }

  acquire(cost: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.tryAcquire(cost)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const entry = {
        cost,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(entry);
        if (i !== -1) this.#waiting.splice(i, 1);
        reject(new ConnectError("the call was cancelled", Code.Canceled));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }

  release(cost: number): void {
    this.#used -= cost;
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (this.#used !== 0 && this.#used + next.cost > this.#limit) break;
      this.#waiting.shift();
      this.#used += next.cost;
      next.resolve();
    }
  }
}

/**
 * Node's pooled buffers: allocating a typed array of more than 64 bytes
 * costs several times as much, and a plain Uint8Array is converted to a
 * Buffer when written.
 */
const allocBuffer = (length: number): Uint8Array => Buffer.allocUnsafe(length);

/** Random bytes for trace contexts, drawn in batches. */
const tracePool = Buffer.allocUnsafe(24 * 512);
let tracePoolUsed = tracePool.length;

/** `newTraceparent()` (connection.ts) with Node's hex encoding: one string, not 24 joined. */
function nodeTraceparent(): string {
  if (tracePoolUsed === tracePool.length) {
    randomFillSync(tracePool);
    tracePoolUsed = 0;
  }
  const hex = tracePool.toString("hex", tracePoolUsed, tracePoolUsed + 24);
  tracePoolUsed += 24;
  return `00-${hex.slice(0, 32)}-${hex.slice(32)}-01`;
}

/** `/<service>/<method>` of each method called so far. */
const METHOD_PATHS = new WeakMap<object, string>();

function methodPath(method: DescMethodUnary): string {
  let path = METHOD_PATHS.get(method);
  if (path === undefined) {
    path = `/${method.parent.typeName}/${method.name}`;
    METHOD_PATHS.set(method, path);
  }
  return path;
}

/**
 * Sends the request of a unary call on `stream` and resolves to the
 * answer. Releases the call's budget and stream slot when the stream closed.
 */
function unaryExchange<O extends DescMessage>(
  method: DescMethodUnary<DescMessage, O>,
  stream: ClientHttp2Stream,
  body: Uint8Array,
  signal: AbortSignal | undefined,
  budget: ByteBudget,
  cost: number,
  session: LiveSession,
): Promise<MessageShape<O>> {
  return new Promise<MessageShape<O>>((resolve, reject) => {
    let headers: IncomingHttpHeaders | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    // Usually the whole response is one chunk.
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let size = 0;
    let failed: ConnectError | undefined;
    let onAbort: (() => void) | undefined;
    if (signal !== undefined) {
      onAbort = (): void => {
        failed ??= new ConnectError("the call was cancelled", Code.Canceled);
        stream.close(h2constants.NGHTTP2_CANCEL);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    }
    stream.on("response", (h: IncomingHttpHeaders) => {
      headers = h;
    });
    stream.on("trailers", (t: IncomingHttpHeaders) => {
      trailers = t;
    });
    stream.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_MESSAGE_BYTES + 5) {
        failed ??= new ConnectError(
          "response larger than the message limit",
          Code.ResourceExhausted,
        );
        stream.close(h2constants.NGHTTP2_CANCEL);
      } else if (first === undefined) {
        first = c;
      } else if (more === undefined) {
        more = [first, c];
      } else {
        more.push(c);
      }
    });
    stream.on("error", (err: Error) => {
      failed ??= ConnectError.from(err, Code.Unavailable);
    });
    stream.on("close", () => {
      budget.release(cost);
      session.streamClosed();
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
      try {
        if (failed !== undefined) throw failed;
        const payload = more !== undefined ? Buffer.concat(more, size) : first;
        resolve(unaryResult(method, headers, trailers, payload, size, stream.rstCode));
      } catch (err) {
        reject(err);
      }
    });
    stream.end(body);
  });
}

const NO_BYTES = new Uint8Array(0);

/** The answer of a unary call from what arrived, or the ConnectError its status says. */
function unaryResult<O extends DescMessage>(
  method: DescMethodUnary<DescMessage, O>,
  headers: IncomingHttpHeaders | undefined,
  trailers: IncomingHttpHeaders | undefined,
  all: Buffer | undefined,
  size: number,
  rstCode: number | undefined,
): MessageShape<O> {
  if (headers === undefined) {
    throw new ConnectError(
      `the stream was reset (HTTP/2 code ${rstCode ?? "?"}) before an answer`,
      Code.Unavailable,
    );
  }
  const httpStatus = Number(headers[":status"]);
  const status = trailers?.["grpc-status"] ?? headers["grpc-status"];
  const message = trailers?.["grpc-message"] ?? headers["grpc-message"];
  if (status === undefined) {
    throw new ConnectError(
      httpStatus === 200 ? "protocol error: missing status" : `HTTP ${httpStatus}`,
      httpStatus === 200 ? Code.Internal : codeFromHttp(httpStatus),
    );
  }
  const code = Number(status);
  if (code !== 0) {
    const text = typeof message === "string" ? safeDecode(message) : "";
    throw new ConnectError(text, code in Code ? (code as Code) : Code.Unknown);
  }
  if (all === undefined || size < 5 || all[0] !== 0 || all.readUInt32BE(1) !== size - 5) {
    throw new ConnectError(
      "protocol error: expected exactly one uncompressed response message",
      Code.Internal,
    );
  }
  if (size === 5) return fromBinary(method.output, NO_BYTES);
  // A copy (bytes fields of the message are views of it: they must not hold
  // on to the socket's buffers), as a plain Uint8Array (not a Buffer).
  const copy = Buffer.allocUnsafe(size - 5);
  all.copy(copy, 0, 5, size);
  return fromBinary(method.output, new Uint8Array(copy.buffer, copy.byteOffset, size - 5));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** gRPC's mapping of HTTP statuses without a grpc-status. */
function codeFromHttp(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
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
      throw new ConnectError(
        "protocol error: response larger than the limit",
        Code.ResourceExhausted,
      );
    }
    parts.push(chunk);
  }
  if (!foundStatus) validateTrailer(res.trailer, res.header);
  if (size === 0) return;
  const all = Buffer.concat(parts, size);
  const length = all.readUInt32BE(1);
  if (all[0] !== 0 || size !== 5 + length) {
    throw new ConnectError(
      "protocol error: expected exactly one uncompressed message",
      Code.Internal,
    );
  }
  yield all.subarray(5);
}
