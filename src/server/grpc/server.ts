/**
 * The gRPC daemon's server: the store services under both package names,
 * health checking and reflection, on any number of listeners (TCP, unix
 * sockets, sockets from systemd). Each listener speaks gRPC over HTTP/2
 * cleartext and, on the same port, HTTP/1.1 for gRPC-Web and Connect
 * (browsers cannot speak cleartext HTTP/2): the first bytes of a connection
 * pick the protocol (the HTTP/2 connection preface, or anything else).
 *
 * Limits: messages of at most 4 MiB in both directions (as Snix), HTTP/2
 * flow control windows of a few MiB per stream (so a slow store bounds what
 * a fast client can push into memory), no compression (blobs are hashed and
 * often compressed already; gzip would make the server CPU-bound).
 *
 * Shutdown (`close`): stops accepting connections, sends GOAWAY on every
 * HTTP/2 connection (no new calls, running ones continue), reports
 * NOT_SERVING to health checks, waits for running calls up to the grace
 * period, then cancels what is left (the stores see their signals fire).
 */

import { setMaxListeners } from "node:events";
import { createServer as createHttp1Server, type Server as Http1Server } from "node:http";
import {
  createServer as createHttp2Server,
  type Http2Server,
  Http2ServerRequest,
  Http2ServerResponse,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from "node:http2";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { MAX_MESSAGE_BYTES } from "../../castore/grpc/blob-frames.js";
import { H2_SETTINGS, H2_TUNING } from "../../castore/grpc/connection-node.js";
import { toConnectError } from "../../castore/grpc/status.js";
import { type Logger, logger } from "../../observability/log.js";
import { file_grpc_health_v1_health, Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection,
} from "../../proto/gen/grpc/reflection/v1/reflection_pb.js";
import {
  PROTO_PACKAGES,
  reflectionV1AlphaFiles,
  ServerReflectionV1Alpha,
  storeServices,
} from "../../proto/packages.js";
import { NarCalculator } from "../../store/nar/calculate.js";
import type { PathInfo } from "../../store/path-info.js";
import { encodePathInfoWith } from "../../store/path-info-proto.js";
import type { PathInfoService } from "../../store/pathinfo/service.js";
import {
  allocMessage,
  type FastContext,
  FastHandler,
  type FastRoute,
  fastRoute,
  fillEnvelope,
} from "./fast-path.js";
import {
  blobHandlers,
  directoryHandlers,
  type GetPathInfoRequest,
  getPathInfo,
  type PutPathInfoRequest,
  pathInfoHandlers,
  putPathInfo,
  type ServedStores,
} from "./handlers.js";
import { HealthState, healthHandlers } from "./health.js";
import { type BoundListener, bindListener, type ListenAddress } from "./listen.js";
import { ReflectionIndex, reflectionHandlers } from "./reflection.js";

export interface GrpcServerOptions {
  readonly stores: ServedStores;
  /** Default: the `server.grpc` logger (STRATA_LOG). */
  readonly log?: Logger;
  /** The longest `grpc-timeout` a client may ask for (default 24 hours). */
  readonly maxTimeoutMs?: number;
}

/** The first bytes of every HTTP/2 cleartext connection (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Codes that mean the server (or its stores) failed, as opposed to the request. */
const SERVER_FAULTS = new Set<Code>([Code.Internal, Code.Unknown, Code.DataLoss]);

/** A path info as a whole enveloped answer (fast path). */
const encodeAnswer = (info: PathInfo): Uint8Array =>
  fillEnvelope(encodePathInfoWith(info, 5, allocMessage));

export class GrpcServer {
  readonly #stores: ServedStores;
  readonly #log: Logger;
  readonly #maxTimeoutMs: number;
  readonly #shutdown = new AbortController();
  readonly #health: HealthState;
  readonly #h2: Http2Server;
  readonly #h1: Http1Server;
  readonly #netServers: NetServer[] = [];
  readonly #bound: BoundListener[] = [];
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #sockets = new Set<Socket>();
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: GrpcServerOptions) {
    this.#stores = options.stores;
    this.#log = options.log ?? logger("server.grpc");
    // Every running call listens to it.
    setMaxListeners(0, this.#shutdown.signal);
    this.#maxTimeoutMs = options.maxTimeoutMs ?? 24 * 3600_000;
    const served: string[] = [];
    const files = [
      file_grpc_health_v1_health,
      file_grpc_reflection_v1_reflection,
      ...reflectionV1AlphaFiles,
    ];
    for (const pkg of PROTO_PACKAGES) {
      const s = storeServices(pkg);
      served.push(s.blob.typeName, s.directory.typeName, s.pathInfo.typeName);
      files.push(...s.files);
    }
    const meta = [Health.typeName, ServerReflection.typeName, ServerReflectionV1Alpha.typeName];
    this.#health = new HealthState([...served, ...meta]);
    const reflection = new ReflectionIndex(files, [...served, ...meta]);
    const nar = new NarCalculator(this.#stores.blobs, this.#stores.directories);

    const blob = blobHandlers(this.#stores);
    const directory = directoryHandlers(this.#stores);
    const pathInfo = pathInfoHandlers(this.#stores, nar);
    const fastRoutes = new Map<string, FastRoute>();
    type Impl<K extends "unary" | "unary-encoded" | "server-stream"> = Extract<
      FastRoute,
      { kind: K }
    >["impl"];
    for (const pkg of PROTO_PACKAGES) {
      const s = storeServices(pkg);
      const add = (service: { typeName: string }, method: string, route: FastRoute): void => {
        fastRoutes.set(`/${service.typeName}/${method}`, route);
      };
      add(s.blob, "Read", { kind: "blob-read" });
      add(s.blob, "Put", { kind: "blob-put" });
      add(s.blob, "Stat", {
        kind: "unary",
        method: s.blob.method.stat,
        impl: blob.stat as unknown as Impl<"unary">,
      });
      add(s.directory, "Get", {
        kind: "server-stream",
        method: s.directory.method.get,
        impl: directory.get as unknown as Impl<"server-stream">,
      });
      // Path infos are encoded directly (encodePathInfo), not through protobuf-es.
      const pathInfos = this.#stores.pathInfos;
      const encoded = <Req>(
        handle: (store: PathInfoService, req: Req, signal: AbortSignal) => Promise<PathInfo>,
      ): Impl<"unary-encoded"> =>
        (async (req: Req, ctx: FastContext) =>
          encodeAnswer(
            await handle(pathInfos, req, ctx.signal),
          )) as unknown as Impl<"unary-encoded">;
      add(s.pathInfo, "Get", {
        kind: "unary-encoded",
        method: s.pathInfo.method.get,
        impl: encoded<GetPathInfoRequest>(getPathInfo),
      });
      add(s.pathInfo, "Put", {
        kind: "unary-encoded",
        method: s.pathInfo.method.put,
        impl: encoded<PutPathInfoRequest>(putPathInfo),
      });
      add(s.pathInfo, "CalculateNAR", {
        kind: "unary",
        method: s.pathInfo.method.calculateNAR,
        impl: pathInfo.calculateNAR as unknown as Impl<"unary">,
      });
      add(s.pathInfo, "List", {
        kind: "server-stream",
        method: s.pathInfo.method.list,
        impl: pathInfo.list as unknown as Impl<"server-stream">,
      });
    }

    const routes = (router: ConnectRouter): void => {
      for (const pkg of PROTO_PACKAGES) {
        const s = storeServices(pkg);
        router.service(s.blob, blob);
        router.service(s.directory, directory);
        router.service(s.pathInfo, pathInfo);
      }
      router.service(Health, healthHandlers(this.#health));
      router.service(ServerReflection, reflectionHandlers(reflection));
      router.service(ServerReflectionV1Alpha, reflectionHandlers(reflection));
    };
    const connectHandler = connectNodeAdapter({
      routes,
      acceptCompression: [],
      readMaxBytes: MAX_MESSAGE_BYTES,
      writeMaxBytes: MAX_MESSAGE_BYTES,
      maxTimeoutMs: this.#maxTimeoutMs,
      shutdownSignal: this.#shutdown.signal,
      interceptors: [this.#errorInterceptor()],
    });
    const fast = new FastHandler({
      blobs: this.#stores.blobs,
      shutdownSignal: this.#shutdown.signal,
      maxTimeoutMs: this.#maxTimeoutMs,
      toConnectError: (err: unknown) => toConnectError(err),
      onError: (err: ConnectError, path: string, headers: IncomingHttpHeaders, cause: unknown) =>
        this.#report(err, path, headers.traceparent, cause),
      onClose: () => this.#callEnded(),
    });
    // Streams rather than the compatibility API's request/response pairs:
    // plain-gRPC calls of the store services take the fast path on the bare
    // stream (those objects cost more than a small call itself); the rest
    // gets the pair, built as Node's own `request` event would, for connect.
    this.#h2 = createHttp2Server({ settings: H2_SETTINGS, maxSessionMemory: 64 });
    this.#h2.on(
      "stream",
      (
        stream: ServerHttp2Stream,
        headers: IncomingHttpHeaders,
        _flags: number,
        rawHeaders: string[],
      ) => {
        this.#inFlight++;
        const route = fastRoute(fastRoutes, headers);
        if (route !== undefined) {
          fast.handle(route, stream, headers);
          return;
        }
        const req = new Http2ServerRequest(stream, headers, {}, rawHeaders);
        const res = new Http2ServerResponse(stream);
        res.once("close", () => this.#callEnded());
        this.#endWithResponse(req, res);
        // As Node's compatibility layer answers CONNECT and expectations.
        if (headers[":method"] === "CONNECT") {
          res.statusCode = 405;
          res.end();
          return;
        }
        if (headers.expect !== undefined) {
          if (headers.expect !== "100-continue") {
            res.statusCode = 417;
            res.end();
            return;
          }
          res.writeContinue();
        }
        connectHandler(req, res);
      },
    );
    this.#h2.on("session", (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
      try {
        session.setLocalWindowSize(H2_TUNING.connectionWindowBytes);
      } catch {
        // closing already
      }
      if (this.#closing !== undefined) session.close();
    });
    this.#h1 = createHttp1Server((req, res) => {
      this.#track(res);
      connectHandler(req, res);
    });
  }

  /** Counts a call until its response closed (for the graceful shutdown). */
  #track(res: { once(event: "close", f: () => void): unknown }): void {
    this.#inFlight++;
    res.once("close", () => this.#callEnded());
  }

  #callEnded(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) this.#idle?.();
  }

  /**
   * A response that ends before its request did (a refused message, an
   * early error): once the status (trailers) is out, the rest of the request
   * is discarded and the stream reset with NO_ERROR (RFC 9113 §8.1), so the
   * client stops sending and the stream ends. Without this, Node keeps such
   * a stream open until the client gives up.
   */
  #endWithResponse(req: Http2ServerRequest, res: Http2ServerResponse): void {
    const stream = res.stream;
    // Runs after the compat layer's own listener, which sends the trailers.
    stream.once("wantTrailers", () => {
      if (req.readableEnded) return; // the usual case: nothing to do
      setImmediate(() => {
        if (req.readableEnded || stream.destroyed) return;
        // Destroying (not close()) resets with NO_ERROR at once, after the
        // trailers already queued: close() would wait for the readable side
        // to end, which never happens when the handler stopped reading.
        stream.destroy();
      });
    });
  }

  /** Maps store errors to statuses and logs server faults, for the connect handlers. */
  #errorInterceptor(): Interceptor {
    const fail = (
      err: unknown,
      path: string,
      header: Headers,
      signal: AbortSignal,
    ): ConnectError => {
      // A call the client cancelled ends with whatever the store or the
      // request stream threw ("Premature close"): that is a cancellation.
      const status =
        signal.aborted && !(err instanceof ConnectError)
          ? new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, err)
          : toConnectError(err);
      this.#report(status, path, header.get("traceparent") ?? undefined, err);
      return status;
    };
    return (next) => async (req) => {
      const path = `/${req.service.typeName}/${req.method.name}`;
      try {
        const res = await next(req);
        if (!res.stream) return res;
        const messages = res.message;
        async function* mapped() {
          try {
            yield* messages;
          } catch (err) {
            throw fail(err, path, req.header, req.signal);
          }
        }
        return { ...res, message: mapped() };
      } catch (err) {
        throw fail(err, path, req.header, req.signal);
      }
    };
  }

  #report(status: ConnectError, path: string, traceparent: unknown, cause: unknown): void {
    const fields = { method: path, code: Code[status.code], traceparent, error: cause };
    if (SERVER_FAULTS.has(status.code)) this.#log.warn(`call failed: ${status.rawMessage}`, fields);
    else this.#log.debug(`call ended: ${status.rawMessage}`, fields);
  }

  /** Accepts a connection: HTTP/2 if it starts with the preface, else HTTP/1.1. */
  #accept(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    // Small answers must not wait for Nagle's algorithm (a no-op on unix sockets).
    socket.setNoDelay(true);
    socket.on("error", () => {
      // Reset by the peer; the HTTP layers see it too.
    });
    const seen: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      seen.push(chunk);
      length += chunk.length;
      const head = Buffer.concat(seen, length);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && head.length < H2_PREFACE.length) return; // undecided yet
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // The HTTP/2 session reads the socket natively and picks up the unshifted bytes.
        this.#h2.emit("connection", socket);
      } else {
        this.#h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  }

  /** Starts listening on each address; resolves to what it listens on. */
  async listen(addresses: readonly ListenAddress[]): Promise<BoundListener[]> {
    const bound: BoundListener[] = [];
    for (const address of addresses) {
      const server = createNetServer((socket) => this.#accept(socket));
      this.#netServers.push(server);
      const b = await bindListener(server, address);
      this.#bound.push(b);
      bound.push(b);
      this.#log.info(`listening on ${b.display}`);
    }
    return bound;
  }

  /** Calls running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Graceful shutdown: no new connections or calls, running calls get up to
   * `graceMs` to finish, then they are cancelled. Idempotent.
   */
  close(graceMs = 10_000): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.#health.shuttingDown();
    const stopped = this.#netServers.map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    );
    for (const session of this.#sessions) session.close();
    this.#h1.closeIdleConnections();
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.#inFlight > 0) {
      this.#log.warn(`cancelling ${this.#inFlight} calls still running after ${graceMs} ms`);
    }
    this.#shutdown.abort();
    // Cancelled calls end quickly; then whatever is left is cut off.
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all(stopped);
    for (const b of this.#bound) b.cleanup();
  }
}
