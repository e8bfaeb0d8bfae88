/**
 * The store services over plain gRPC (HTTP/2, `application/grpc`), handled
 * on the HTTP/2 stream directly instead of through connect, which costs
 * about a millisecond of CPU per call in its generic pipeline (a raw HTTP/2
 * exchange costs a tenth of that). gRPC-Web and Connect requests, health,
 * reflection, and client-streaming directory uploads stay with connect
 * (server.ts); the methods here run the same handler functions
 * (handlers.ts) with the same error mapping.
 *
 * - Calls run on the bare HTTP/2 stream (the server's `stream` event), not
 *   on the compatibility layer's request/response pair: for a small call
 *   those objects and their listeners cost more than the call's own work.
 * - Unary and server-streaming methods: one request message in (at most
 *   4 MiB), messages out, encoded by protobuf-es, or for small flat
 *   messages (flat-message.ts) and path infos (`encodePathInfoWith`)
 *   straight into a pooled buffer with the envelope in front.
 * - BlobService `Read` and `Put`: the bytes are framed with blob-frames.ts,
 *   so a `Read` writes each chunk the BlobReader yields (at most 1 MiB,
 *   reused buffers) behind a 6..10-byte prefix without copying it, and a
 *   `Put` hands the received bytes to the BlobWriter as views of what the
 *   socket delivered.
 *
 * Same semantics as the connect handlers: cancellation (client reset,
 * `grpc-timeout`, server shutdown) aborts the store calls; a `Put`
 * publishes the blob only after the request ended normally (a client that
 * disconnects mid-upload leaves nothing), makes it durable, then answers its
 * digest; a message over 4 MiB is refused from its 5-byte header, before
 * any of it is buffered.
 */
import { getEventListeners } from "node:events";
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import type { BlobService } from "../../castore/blob/service.js";
import { formatB3 } from "../../castore/digest.js";
import {
  BlobChunkDecoder,
  blobChunkPrefix,
  envelope,
  MAX_MESSAGE_BYTES,
} from "../../castore/grpc/blob-frames.js";
import { encodeFlatEnveloped } from "../../castore/grpc/flat-message.js";
import {
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
} from "../../proto/gen/tvix/castore/v1/rpc_blobstore_pb.js";
import { blobDigest } from "./handlers.js";

/** What a handler gets besides its request (the part of connect's HandlerContext ours use). */
export interface FastContext {
  readonly signal: AbortSignal;
}

/** One method served here. */
export type FastRoute =
  | { readonly kind: "blob-read" }
  | { readonly kind: "blob-put" }
  | {
      readonly kind: "unary";
      readonly method: DescMethod;
      readonly impl: (
        req: MessageShape<DescMessage>,
        ctx: FastContext,
      ) => Promise<MessageInitShape<DescMessage>>;
    }
  | {
      /**
       * A unary method whose implementation encodes its answer itself, as a
       * whole enveloped message (see `allocMessage`).
       */
      readonly kind: "unary-encoded";
      readonly method: DescMethod;
      readonly impl: (req: MessageShape<DescMessage>, ctx: FastContext) => Promise<Uint8Array>;
    }
  | {
      readonly kind: "server-stream";
      readonly method: DescMethod;
      readonly impl: (
        req: MessageShape<DescMessage>,
        ctx: FastContext,
      ) => AsyncIterable<MessageInitShape<DescMessage>>;
    };

const GRPC_PROTO = /^application\/grpc(\+proto)?(;|$)/i;

/** The route for a request, if it is plain gRPC (not gRPC-Web/Connect) for a method served here. */
export function fastRoute(
  routes: ReadonlyMap<string, FastRoute>,
  headers: IncomingHttpHeaders,
): FastRoute | undefined {
  if (headers[":method"] !== "POST") return undefined;
  const path = headers[":path"];
  if (path === undefined) return undefined;
  const route = routes.get(path);
  if (route === undefined) return undefined;
  const type = headers["content-type"];
  // application/grpc, application/grpc+proto (not +json, not grpc-web).
  if (type === "application/grpc" || type === "application/grpc+proto") return route;
  return type !== undefined && GRPC_PROTO.test(type) ? route : undefined;
}

/** What the fast handlers need from the server. */
export interface FastEnv {
  readonly blobs: BlobService;
  /** Fires when in-flight calls must stop (shutdown grace period over). */
  readonly shutdownSignal: AbortSignal;
  /** The longest `grpc-timeout` accepted. */
  readonly maxTimeoutMs: number;
  /** Called with every failure answered (for logging). */
  readonly onError: (
    err: ConnectError,
    path: string,
    headers: IncomingHttpHeaders,
    cause: unknown,
  ) => void;
  /** Maps a store error to its status (status.ts). */
  readonly toConnectError: (err: unknown) => ConnectError;
  /** Called once per call, when its stream closed (the server counts running calls). */
  readonly onClose: () => void;
}

/**
 * Runs the calls routed here, on the server's HTTP/2 streams (the `stream`
 * event; no compatibility-layer request/response objects, which cost more
 * than the exchange itself for a small call).
 */
export class FastHandler {
  readonly #env: FastEnv;
  /** Calls running, stopped when the server shuts down. */
  readonly #live = new Set<FastCall>();
  readonly #controllers = new ControllerPool();

  constructor(env: FastEnv) {
    this.#env = env;
    // One listener for all calls, not one per call (EventTarget listeners
    // cost at thousands of calls per second).
    const onShutdown = (): void => {
      for (const call of this.#live) call.stop(shutdownError());
    };
    if (env.shutdownSignal.aborted) onShutdown();
    else env.shutdownSignal.addEventListener("abort", onShutdown, { once: true });
  }

  handle(route: FastRoute, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const env = this.#env;
    const call = new FastCall(stream, headers, env, this.#live, this.#controllers);
    let run: Promise<void>;
    switch (route.kind) {
      case "unary":
      case "unary-encoded":
        // Ends the call itself: no promise chained per call.
        void fastUnary(route, call);
        return;
      case "blob-read":
        run = fastRead(call, env);
        break;
      case "blob-put":
        run = fastPut(call, env);
        break;
      case "server-stream":
        run = fastServerStream(route, call);
        break;
    }
    run.then(
      () => call.finish(),
      (err: unknown) => call.fail(err),
    );
  }
}

const shutdownError = (): ConnectError =>
  new ConnectError("the server is shutting down", Code.Unavailable);

/** Decodes the request message of `method`; a malformed one is INVALID_ARGUMENT. */
function decodeRequest(method: DescMethod, payload: Uint8Array): MessageShape<DescMessage> {
  try {
    return fromBinary(method.input, payload);
  } catch (cause) {
    throw new ConnectError(
      `malformed ${method.input.typeName}`,
      Code.InvalidArgument,
      undefined,
      undefined,
      cause,
    );
  }
}

/**
 * A buffer for an outgoing message: from Node's pool (allocating a typed
 * array of more than 64 bytes costs several times as much, and a plain
 * Uint8Array would be converted to a Buffer when written).
 */
export const allocMessage = (length: number): Uint8Array => Buffer.allocUnsafe(length);

/**
 * `body` (from allocMessage, its first 5 bytes left free) made a whole
 * enveloped message: an uncompressed message of the remaining bytes.
 */
export function fillEnvelope(body: Uint8Array): Uint8Array {
  const length = body.length - 5;
  body[0] = 0;
  body[1] = length >>> 24;
  body[2] = (length >>> 16) & 0xff;
  body[3] = (length >>> 8) & 0xff;
  body[4] = length & 0xff;
  return body;
}

function encodeResponse(method: DescMethod, init: MessageInitShape<DescMessage>): Uint8Array {
  // `{}` (Stat's answer): every field at its default, nothing to encode.
  if (isEmptyInit(init)) return EMPTY_MESSAGE;
  const flat = encodeFlatEnveloped(method.output, init, allocMessage);
  if (flat !== undefined && flat.length <= MAX_MESSAGE_BYTES + 5) return flat;
  return envelopeResponse(toBinary(method.output, create(method.output, init)));
}

/** An empty message, enveloped (shared: written out, never modified). */
const EMPTY_MESSAGE = Buffer.alloc(5);

function isEmptyInit(init: object): boolean {
  for (const key in init) if (key !== "$typeName") return false;
  return true;
}

function envelopeResponse(bytes: Uint8Array): Uint8Array {
  checkSize(bytes.length);
  return envelope(bytes);
}

/** Refuses a response message over the size limit. */
function checkSize(messageBytes: number): void {
  if (messageBytes > MAX_MESSAGE_BYTES) {
    throw new ConnectError(
      `response message of ${messageBytes} bytes is larger than the limit of ${MAX_MESSAGE_BYTES} bytes`,
      Code.ResourceExhausted,
    );
  }
}

/** A unary call from request to status; never rejects. */
async function fastUnary(
  route: Extract<FastRoute, { kind: "unary" | "unary-encoded" }>,
  call: FastCall,
): Promise<void> {
  try {
    const input = decodeRequest(route.method, await call.readMessage());
    let out: Uint8Array;
    if (route.kind === "unary") {
      const answer = await route.impl(input, call);
      call.settled = true;
      out = encodeResponse(route.method, answer);
    } else {
      out = await route.impl(input, call);
      call.settled = true;
      checkSize(out.length - 5);
    }
    call.check();
    // Sent with the end of the response (finish), in one write.
    call.last = out;
  } catch (err) {
    // A status the handler chose (NOT_FOUND after a store said "absent",
    // INVALID_ARGUMENT, ...) comes after its store calls settled.
    if (err instanceof ConnectError) call.settled = true;
    call.fail(err);
    return;
  }
  call.finish();
}

async function fastServerStream(
  route: Extract<FastRoute, { kind: "server-stream" }>,
  call: FastCall,
): Promise<void> {
  const input = decodeRequest(route.method, await call.readMessage());
  for await (const init of route.impl(input, call)) {
    const out = encodeResponse(route.method, init);
    call.check();
    call.sendHeaders();
    if (!call.stream.write(out)) await call.drained();
  }
}

/** Response headers of every call (Node copies them; never modified). */
const RESPONSE_HEADERS: OutgoingHttpHeaders = {
  ":status": 200,
  "content-type": "application/grpc+proto",
};
const OK_TRAILERS: OutgoingHttpHeaders = { "grpc-status": "0" };
const EMPTY = Buffer.alloc(0);

/** Stream errors (a reset by the client) surface as the call's close; nothing to do here. */
function ignore(): void {}

/** How many calls one pooled AbortController serves before it is dropped. */
const CONTROLLER_USES = 64;
/** How many idle controllers the pool keeps. */
const POOL_SIZE = 256;

/** An AbortController and the calls it served. */
interface PooledController {
  readonly controller: AbortController;
  uses: number;
}

/**
 * AbortControllers of unary calls that ended normally, for the next calls.
 * Every call needs a signal for its store calls, and Node 20 takes ~2 us to
 * make one (`createAbortSignal`), heavy for the GC too: as much as the rest
 * of a small call's own work. A controller comes back only when its signal
 * never fired, the call's store calls all settled, and nobody listens to
 * the signal any more; and it serves at most CONTROLLER_USES calls (Node 20
 * keeps a weak reference for every `AbortSignal.any()` made from a signal
 * as long as the signal lives). For a store, a pooled signal behaves as a
 * fresh one: it fires exactly when the call it was handed for is stopped.
 */
class ControllerPool {
  readonly #free: PooledController[] = [];

  take(): PooledController {
    return this.#free.pop() ?? { controller: new AbortController(), uses: 0 };
  }

  give(entry: PooledController): void {
    const signal = entry.controller.signal;
    if (
      ++entry.uses >= CONTROLLER_USES ||
      signal.aborted ||
      this.#free.length >= POOL_SIZE ||
      getEventListeners(signal, "abort").length > 0
    ) {
      return;
    }
    this.#free.push(entry);
  }
}

/**
 * One call: its stream, its signal (client reset, deadline, server
 * shutdown) and the response's end. Stopping it settles what it waits for
 * (the request, a drain) directly rather than through listeners on the
 * signal, which are costly to add and remove per call.
 */
class FastCall implements FastContext {
  readonly stream: ServerHttp2Stream;
  readonly #headers: IncomingHttpHeaders;
  readonly #env: FastEnv;
  #controller: PooledController | undefined;
  readonly #pool: ControllerPool;
  /** The handler settled: no store call of this call is running any more. */
  settled = false;
  #timer: NodeJS.Timeout | undefined;
  /** The response was ended (or the stream is gone): a close is no cancellation. */
  #finished = false;
  /** Settles what the call waits for, when it is stopped. */
  #onStop: ((reason: ConnectError) => void) | undefined;
  /** Why the call was stopped, if it was. */
  reason: ConnectError | undefined;
  /** The last message of a successful response, written with its end. */
  last: Uint8Array | undefined;

  constructor(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    env: FastEnv,
    live: Set<FastCall>,
    pool: ControllerPool,
  ) {
    this.stream = stream;
    this.#headers = headers;
    this.#env = env;
    this.#pool = pool;
    live.add(this);
    stream.on("error", ignore);
    // `on`, not `once`: the event comes once anyway, and `once` costs a wrapper.
    stream.on("close", () => {
      live.delete(this);
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      if (!this.#finished)
        this.stop(new ConnectError("the client cancelled the call", Code.Canceled));
      const pooled = this.#controller;
      if (pooled !== undefined && this.settled && this.reason === undefined) {
        // Nothing can stop this call any more (it left `live`, its timer is cleared).
        this.#controller = undefined;
        pool.give(pooled);
      }
      env.onClose();
    });
    if (env.shutdownSignal.aborted) this.stop(shutdownError());
    const header = headers["grpc-timeout"];
    if (header !== undefined) {
      const timeout = parseTimeout(typeof header === "string" ? header : null, env.maxTimeoutMs);
      if (timeout.error !== undefined) this.stop(timeout.error);
      else if (timeout.timeoutMs !== undefined) {
        this.#timer = setTimeout(
          () => this.stop(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)),
          timeout.timeoutMs,
        );
      }
    }
  }

  /** The store calls' signal (taken on first use). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = this.#pool.take();
      if (this.reason !== undefined) this.#controller.controller.abort(this.reason);
    }
    return this.#controller.controller.signal;
  }

  stop(reason: ConnectError): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.#controller?.controller.abort(reason);
    const onStop = this.#onStop;
    this.#onStop = undefined;
    onStop?.(reason);
  }

  /** Throws the reason the call was stopped, if it was. */
  check(): void {
    if (this.reason !== undefined) throw this.reason;
  }

  /** The single message of a unary request body. */
  readMessage(): Promise<Uint8Array> {
    // Events rather than an async iterator: this runs for every small call.
    return new Promise((resolve, reject) => {
      if (this.reason !== undefined) {
        reject(this.reason);
        return;
      }
      const stream = this.stream;
      let first: Buffer | undefined;
      let parts: Buffer[] | undefined;
      let size = 0;
      const done = (): void => {
        stream.off("data", onData);
        stream.off("end", onEnd);
        this.#onStop = undefined;
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > MAX_MESSAGE_BYTES + 5) {
          done();
          reject(new ConnectError("request larger than the message limit", Code.ResourceExhausted));
          return;
        }
        if (first === undefined) first = chunk;
        else if (parts === undefined) parts = [first, chunk];
        else parts.push(chunk);
      };
      const onEnd = (): void => {
        done();
        const all = parts !== undefined ? Buffer.concat(parts, size) : (first ?? EMPTY);
        if (size < 5 || all[0] !== 0 || all.readUInt32BE(1) !== size - 5) {
          reject(
            new ConnectError(
              "protocol error: expected exactly one uncompressed request message",
              Code.InvalidArgument,
            ),
          );
          return;
        }
        resolve(all.subarray(5));
      };
      this.#onStop = (reason) => {
        done();
        reject(reason);
      };
      stream.on("data", onData);
      stream.on("end", onEnd);
    });
  }

  /** Resolves when the response can take more (or the call was stopped). */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      if (this.reason !== undefined) {
        resolve();
        return;
      }
      const done = (): void => {
        this.stream.off("drain", done);
        this.#onStop = undefined;
        resolve();
      };
      this.#onStop = done;
      this.stream.once("drain", done);
    });
  }

  sendHeaders(): void {
    if (!this.stream.headersSent) this.#respond();
  }

  #respond(): void {
    const stream = this.stream;
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.on("wantTrailers", () => {
      stream.sendTrailers(this.#trailers ?? OK_TRAILERS);
      this.#discardRequest();
    });
  }

  #trailers: OutgoingHttpHeaders | undefined;

  /** Ends the call with the status for `err` (and reports it). */
  fail(err: unknown): void {
    const status = this.reason ?? this.#env.toConnectError(err);
    this.#env.onError(status, this.#headers[":path"] ?? "", this.#headers, err);
    this.finish(status);
  }

  /**
   * Ends the response with the status in trailers, or as a trailers-only
   * response (gRPC's form for a failure before any message) when nothing
   * was sent yet.
   */
  finish(err?: ConnectError): void {
    try {
      this.#finish(err);
    } catch {
      // The stream failed under us (the peer went away): nothing to tell.
      this.stream.destroy();
    }
  }

  #finish(err: ConnectError | undefined): void {
    this.#finished = true;
    const stream = this.stream;
    if (stream.destroyed || stream.writableEnded) return;
    if (err !== undefined) {
      const status: OutgoingHttpHeaders = {
        "grpc-status": String(err.code),
        "grpc-message": encodeURIComponent(err.rawMessage),
      };
      if (!stream.headersSent) {
        stream.respond({ ...RESPONSE_HEADERS, ...status }, { endStream: true });
        this.#discardRequest();
        return;
      }
      this.#trailers = status;
    } else if (!stream.headersSent) {
      this.#respond();
    }
    const last = err === undefined ? this.last : undefined;
    if (last !== undefined) stream.end(last);
    else stream.end();
  }

  /**
   * A response that ends before its request did (a refused message, an
   * early error): once the status is out, the rest of the request is
   * discarded and the stream reset with NO_ERROR (RFC 9113 §8.1), so the
   * client stops sending and the stream ends. Without this, Node keeps such
   * a stream open until the client gives up.
   */
  #discardRequest(): void {
    const stream = this.stream;
    if (stream.readableEnded) return; // the usual case: nothing to do
    setImmediate(() => {
      if (stream.readableEnded || stream.destroyed) return;
      // Destroying (not close()) resets with NO_ERROR at once, after the
      // status already queued: close() would wait for the readable side
      // to end, which never happens when the handler stopped reading.
      stream.destroy();
    });
  }
}

/** Writes and resolves once the bytes were written out (the buffer may then be reused). */
function write(stream: ServerHttp2Stream, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

async function fastRead(call: FastCall, env: FastEnv): Promise<void> {
  const payload = await call.readMessage();
  let digestBytes: Uint8Array;
  try {
    digestBytes = fromBinary(ReadBlobRequestSchema, payload).digest;
  } catch (cause) {
    throw new ConnectError(
      "malformed ReadBlobRequest",
      Code.InvalidArgument,
      undefined,
      undefined,
      cause,
    );
  }
  const digest = blobDigest(digestBytes);
  const signal = call.signal;
  const reader = await env.blobs.openRead(digest, { signal });
  if (reader === undefined)
    throw new ConnectError(`blob ${formatB3(digest)} not found`, Code.NotFound);
  try {
    call.sendHeaders();
    // transient: each chunk is written out before the next is asked for.
    for await (const chunk of reader.stream(0, { signal, transient: true })) {
      call.stream.write(blobChunkPrefix(chunk.length));
      await write(call.stream, chunk);
      call.check();
    }
  } finally {
    await reader.close();
  }
}

async function fastPut(call: FastCall, env: FastEnv): Promise<void> {
  const signal = call.signal;
  const stream = call.stream;
  const decoder = new BlobChunkDecoder(Code.InvalidArgument);
  const writer = env.blobs.openWrite({ signal });
  const data: Uint8Array[] = [];
  try {
    // Unlike `for await (... of stream)`, stopping early (a refused
    // message) leaves the stream open: the status still has to go out.
    const chunks = stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
    for await (const chunk of chunks) {
      decoder.push(chunk, data);
      for (const d of data) await writer.write(d, { signal });
      data.length = 0;
      call.check();
    }
    decoder.end();
    // Only a request that really ended (END_STREAM, not a reset) is
    // published. Some clients (Node's http2) cancel by sending END_STREAM and
    // RST_STREAM back to back: give a reset that arrived with the end a turn
    // to be seen.
    await new Promise((resolve) => setImmediate(resolve));
    call.check();
    if (stream.aborted || !stream.readableEnded) {
      throw new ConnectError("the client cancelled the call", Code.Canceled);
    }
    const digest = await writer.close({ signal });
    // Acknowledged means durable: clients have no Sync call.
    await env.blobs.sync({ signal });
    call.last = envelope(
      toBinary(PutBlobResponseSchema, { $typeName: "tvix.castore.v1.PutBlobResponse", digest }),
    );
  } catch (err) {
    await writer.abort(err);
    throw err;
  }
}
