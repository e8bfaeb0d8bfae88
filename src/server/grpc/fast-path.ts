/**
 * The store services over plain gRPC (HTTP/2, `application/grpc`), handled
 * on the HTTP/2 stream directly instead of through connect, which costs
 * about a millisecond of CPU per call in its generic pipeline (a raw HTTP/2
 * exchange costs a tenth of that). gRPC-Web and Connect requests, health,
 * reflection, and client-streaming directory uploads stay with connect
 * (server.ts); the methods here run the same handler functions
 * (handlers.ts) with the same error mapping.
 *
 * - Unary and server-streaming methods: one request message in (at most
 *   4 MiB), messages out, each encoded with protobuf-es.
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
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
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
import { B3_DIGEST_LENGTH, type B3Digest, formatB3 } from "../../castore/digest.js";
import {
  BlobChunkDecoder,
  blobChunkPrefix,
  envelope,
  MAX_MESSAGE_BYTES,
} from "../../castore/grpc/blob-frames.js";
import {
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
} from "../../proto/gen/tvix/castore/v1/rpc_blobstore_pb.js";

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
      readonly kind: "server-stream";
      readonly method: DescMethod;
      readonly impl: (
        req: MessageShape<DescMessage>,
        ctx: FastContext,
      ) => AsyncIterable<MessageInitShape<DescMessage>>;
    };

/** The route for a request, if it is plain gRPC (not gRPC-Web/Connect) for a method served here. */
export function fastRoute(
  routes: ReadonlyMap<string, FastRoute>,
  req: Http2ServerRequest,
): FastRoute | undefined {
  if (req.method !== "POST") return undefined;
  const route = routes.get(req.url);
  if (route === undefined) return undefined;
  const type = req.headers["content-type"] ?? "";
  // application/grpc, application/grpc+proto (not +json, not grpc-web).
  return /^application\/grpc(\+proto)?(;|$)/i.test(type) ? route : undefined;
}

/** What the fast handlers need from the server. */
export interface FastEnv {
  readonly blobs: BlobService;
  /** Fires when in-flight calls must stop (shutdown grace period over). */
  readonly shutdownSignal: AbortSignal;
  /** The longest `grpc-timeout` accepted. */
  readonly maxTimeoutMs: number;
  /** Called with every failure answered (for logging). */
  readonly onError: (err: ConnectError, req: Http2ServerRequest, cause: unknown) => void;
  /** Maps a store error to its status (status.ts). */
  readonly toConnectError: (err: unknown) => ConnectError;
}

export function handleFast(
  route: FastRoute,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  env: FastEnv,
): void {
  const call = new CallSignal(req, res, env);
  let run: Promise<void>;
  switch (route.kind) {
    case "blob-read":
      run = fastRead(req, res, env, call);
      break;
    case "blob-put":
      run = fastPut(req, res, env, call);
      break;
    case "unary":
      run = fastUnary(route, req, res, call);
      break;
    case "server-stream":
      run = fastServerStream(route, req, res, call);
      break;
  }
  run
    .then(
      () => finish(res),
      (err: unknown) => {
        const status = call.reason ?? env.toConnectError(err);
        env.onError(status, req, err);
        finish(res, status);
      },
    )
    .finally(() => call.dispose());
}

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

function encodeResponse(method: DescMethod, init: MessageInitShape<DescMessage>): Uint8Array {
  const bytes = toBinary(method.output, create(method.output, init));
  if (bytes.length > MAX_MESSAGE_BYTES) {
    throw new ConnectError(
      `response message of ${bytes.length} bytes is larger than the limit of ${MAX_MESSAGE_BYTES} bytes`,
      Code.ResourceExhausted,
    );
  }
  return envelope(bytes);
}

async function fastUnary(
  route: Extract<FastRoute, { kind: "unary" }>,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  call: CallSignal,
): Promise<void> {
  const input = decodeRequest(route.method, await readSingleMessage(req, call));
  const out = encodeResponse(route.method, await route.impl(input, { signal: call.signal }));
  call.check();
  sendHeaders(res);
  res.write(out);
}

async function fastServerStream(
  route: Extract<FastRoute, { kind: "server-stream" }>,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  call: CallSignal,
): Promise<void> {
  const input = decodeRequest(route.method, await readSingleMessage(req, call));
  for await (const init of route.impl(input, { signal: call.signal })) {
    const out = encodeResponse(route.method, init);
    call.check();
    sendHeaders(res);
    if (!res.write(out)) await drained(res, call);
  }
}

/** Resolves when the response can take more (or the call ended). */
function drained(res: Http2ServerResponse, call: CallSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      call.signal.removeEventListener("abort", done);
      resolve();
    };
    res.once("drain", done);
    call.signal.addEventListener("abort", done, { once: true });
  });
}

/** The call's signal: client reset, deadline, server shutdown. */
class CallSignal {
  readonly #controller = new AbortController();
  readonly #dispose: (() => void)[] = [];
  /** Why the call was stopped, if it was. */
  reason: ConnectError | undefined;

  constructor(req: Http2ServerRequest, res: Http2ServerResponse, env: FastEnv) {
    const stop = (reason: ConnectError): void => {
      if (this.#controller.signal.aborted) return;
      this.reason = reason;
      this.#controller.abort(reason);
    };
    const onClose = (): void =>
      stop(new ConnectError("the client cancelled the call", Code.Canceled));
    res.once("close", onClose);
    this.#dispose.push(() => res.off("close", onClose));
    const onShutdown = (): void =>
      stop(new ConnectError("the server is shutting down", Code.Unavailable));
    if (env.shutdownSignal.aborted) onShutdown();
    env.shutdownSignal.addEventListener("abort", onShutdown);
    this.#dispose.push(() => env.shutdownSignal.removeEventListener("abort", onShutdown));
    const header = req.headers["grpc-timeout"];
    const timeout = parseTimeout(typeof header === "string" ? header : null, env.maxTimeoutMs);
    if (timeout.error !== undefined) stop(timeout.error);
    else if (timeout.timeoutMs !== undefined) {
      const t = setTimeout(
        () => stop(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)),
        timeout.timeoutMs,
      );
      this.#dispose.push(() => clearTimeout(t));
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Throws the reason the call was stopped, if it was. */
  check(): void {
    if (this.reason !== undefined) throw this.reason;
  }

  dispose(): void {
    for (const d of this.#dispose.splice(0)) d();
  }
}

function sendHeaders(res: Http2ServerResponse): void {
  if (!res.headersSent) res.writeHead(200, { "content-type": "application/grpc+proto" });
}

/** Ends the response with the status in trailers (headers first if none were sent). */
function finish(res: Http2ServerResponse, err?: ConnectError): void {
  if (res.stream.destroyed || res.writableEnded) return;
  sendHeaders(res);
  res.addTrailers(
    err === undefined
      ? { "grpc-status": "0" }
      : { "grpc-status": String(err.code), "grpc-message": encodeURIComponent(err.rawMessage) },
  );
  res.end();
}

/** Writes and resolves once the bytes were written out (the buffer may then be reused). */
function write(res: Http2ServerResponse, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

function checkDigest(bytes: Uint8Array): B3Digest {
  if (bytes.length !== B3_DIGEST_LENGTH) {
    throw new ConnectError(
      `invalid digest length ${bytes.length} (a BLAKE3 digest has 32 bytes)`,
      Code.InvalidArgument,
    );
  }
  return bytes as B3Digest;
}

/**
 * The request body. Unlike `for await (... of req)`, stopping early (a
 * refused message) leaves the stream open: the status still has to go out.
 */
function requestChunks(req: Http2ServerRequest): AsyncIterable<Buffer> {
  return req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

/** The single message of a unary request body. */
function readSingleMessage(req: Http2ServerRequest, call: CallSignal): Promise<Uint8Array> {
  // Events rather than an async iterator: this runs for every small call.
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      call.signal.removeEventListener("abort", onAbort);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_MESSAGE_BYTES + 5) {
        done();
        reject(new ConnectError("request larger than the message limit", Code.ResourceExhausted));
        return;
      }
      parts.push(chunk);
    };
    const onEnd = (): void => {
      done();
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
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
    const onAbort = (): void => {
      done();
      reject(call.reason ?? new ConnectError("the call was cancelled", Code.Canceled));
    };
    if (call.signal.aborted) {
      onAbort();
      return;
    }
    req.on("data", onData);
    req.once("end", onEnd);
    call.signal.addEventListener("abort", onAbort, { once: true });
  });
}

async function fastRead(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  env: FastEnv,
  call: CallSignal,
): Promise<void> {
  const payload = await readSingleMessage(req, call);
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
  const digest = checkDigest(digestBytes);
  const signal = call.signal;
  const reader = await env.blobs.openRead(digest, { signal });
  if (reader === undefined)
    throw new ConnectError(`blob ${formatB3(digest)} not found`, Code.NotFound);
  try {
    sendHeaders(res);
    // transient: each chunk is written out before the next is asked for.
    for await (const chunk of reader.stream(0, { signal, transient: true })) {
      res.write(blobChunkPrefix(chunk.length));
      await write(res, chunk);
      call.check();
    }
  } finally {
    await reader.close();
  }
}

async function fastPut(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  env: FastEnv,
  call: CallSignal,
): Promise<void> {
  const signal = call.signal;
  const decoder = new BlobChunkDecoder(Code.InvalidArgument);
  const writer = env.blobs.openWrite({ signal });
  const data: Uint8Array[] = [];
  try {
    for await (const chunk of requestChunks(req)) {
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
    if (req.aborted || !req.readableEnded) {
      throw new ConnectError("the client cancelled the call", Code.Canceled);
    }
    const digest = await writer.close({ signal });
    // Acknowledged means durable: clients have no Sync call.
    await env.blobs.sync({ signal });
    sendHeaders(res);
    await write(
      res,
      envelope(
        toBinary(PutBlobResponseSchema, { $typeName: "tvix.castore.v1.PutBlobResponse", digest }),
      ),
    );
  } catch (err) {
    await writer.abort(err);
    throw err;
  }
}
