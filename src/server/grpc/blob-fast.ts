/**
 * BlobService `Read` and `Put` over plain gRPC (HTTP/2, `application/grpc`),
 * handled on the HTTP/2 stream directly instead of through connect: the
 * bytes are framed with blob-frames.ts, so a `Read` writes each chunk the
 * BlobReader yields (at most 1 MiB, reused buffers) behind a 6..10-byte
 * prefix without copying it, and a `Put` hands the received bytes to the
 * BlobWriter as views of what the socket delivered. gRPC-Web and Connect
 * requests for the same methods go to the connect handlers (handlers.ts).
 *
 * Same semantics as the connect handlers: cancellation (client reset,
 * `grpc-timeout`, server shutdown) aborts the store calls; a `Put` publishes
 * the blob only after the request ended normally (a client that disconnects
 * mid-upload leaves nothing), makes it durable, then answers its digest; a
 * message over 4 MiB is refused from its 5-byte header, before any of it is
 * buffered.
 */
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
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
import { PROTO_PACKAGES } from "../../proto/packages.js";

/** The request paths served here, for both package names. */
const ROUTES = new Map<string, "read" | "put">(
  PROTO_PACKAGES.flatMap((pkg) => [
    [`/${pkg}.castore.v1.BlobService/Read`, "read"],
    [`/${pkg}.castore.v1.BlobService/Put`, "put"],
  ]),
);

/** Which fast handler takes a request, if any: gRPC (not gRPC-Web/Connect) Read and Put. */
export function fastBlobRoute(req: Http2ServerRequest): "read" | "put" | undefined {
  if (req.method !== "POST") return undefined;
  const route = ROUTES.get(req.url);
  if (route === undefined) return undefined;
  const type = req.headers["content-type"] ?? "";
  // application/grpc, application/grpc+proto (not +json, not grpc-web).
  return /^application\/grpc(\+proto)?(;|$)/i.test(type) ? route : undefined;
}

/** What the fast handlers need from the server. */
export interface FastBlobEnv {
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

export function handleFastBlob(
  route: "read" | "put",
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  env: FastBlobEnv,
): void {
  const call = new CallSignal(req, res, env);
  const run = route === "read" ? fastRead(req, res, env, call) : fastPut(req, res, env, call);
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

/** The call's signal: client reset, deadline, server shutdown. */
class CallSignal {
  readonly #controller = new AbortController();
  readonly #dispose: (() => void)[] = [];
  /** Why the call was stopped, if it was. */
  reason: ConnectError | undefined;

  constructor(req: Http2ServerRequest, res: Http2ServerResponse, env: FastBlobEnv) {
    const stop = (reason: ConnectError): void => {
      if (this.#controller.signal.aborted) return;
      this.reason = reason;
      this.#controller.abort(reason);
    };
    const onClose = (): void => stop(new ConnectError("the client cancelled the call", Code.Canceled));
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
async function readSingleMessage(req: Http2ServerRequest, call: CallSignal): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of requestChunks(req)) {
    size += chunk.length;
    if (size > MAX_MESSAGE_BYTES + 5) {
      throw new ConnectError("request larger than the message limit", Code.ResourceExhausted);
    }
    parts.push(chunk);
  }
  call.check();
  const all = Buffer.concat(parts, size);
  if (size < 5 || all[0] !== 0 || all.readUInt32BE(1) !== size - 5) {
    throw new ConnectError(
      "protocol error: expected exactly one uncompressed request message",
      Code.InvalidArgument,
    );
  }
  return all.subarray(5);
}

async function fastRead(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  env: FastBlobEnv,
  call: CallSignal,
): Promise<void> {
  const payload = await readSingleMessage(req, call);
  let digestBytes: Uint8Array;
  try {
    digestBytes = fromBinary(ReadBlobRequestSchema, payload).digest;
  } catch (cause) {
    throw new ConnectError("malformed ReadBlobRequest", Code.InvalidArgument, undefined, undefined, cause);
  }
  const digest = checkDigest(digestBytes);
  const signal = call.signal;
  const reader = await env.blobs.openRead(digest, { signal });
  if (reader === undefined) throw new ConnectError(`blob ${formatB3(digest)} not found`, Code.NotFound);
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
  env: FastBlobEnv,
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
    await write(res, envelope(toBinary(PutBlobResponseSchema, { $typeName: "tvix.castore.v1.PutBlobResponse", digest })));
  } catch (err) {
    await writer.abort(err);
    throw err;
  }
}
