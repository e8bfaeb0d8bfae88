/**
 * nar-bridge: a Nix HTTP binary cache in front of any composed store.
 *
 * Reads are public: `GET`/`HEAD` of nix-cache-info, narinfos (rendered from
 * PathInfos and signed with the configured keys), NARs (rendered from the
 * castore while they stream, Range and on-the-fly zstd supported), `.ls`
 * listings and build logs. Writes (`PUT`) need uploads enabled and HTTP
 * basic credentials: 403 when uploads are disabled, 401 without valid
 * credentials. `Expect: 100-continue` (which Nix sends with every PUT) is
 * answered only after the route, the credentials and the declared size were
 * checked, so a rejected upload is never transferred.
 *
 * Limits (HttpCacheLimits): request headers 16 KiB (431 beyond), narinfo
 * uploads 1 MiB, listings 64 MiB, logs 256 MiB, NARs 64 GiB (413 beyond).
 * No overall request timeout (big uploads take long); headers must arrive
 * within 60 s.
 */

import { setMaxListeners } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type Server as NetServer } from "node:net";
import { AbortedError, formatErrorChain } from "../../errors.js";
import { type Logger, logger } from "../../observability/log.js";
import type { SecretKey } from "../../store/signature.js";
import { type BoundListener, bindListener, type ListenAddress } from "../grpc/listen.js";
import type { UploadCredentials } from "./auth.js";
import {
  CacheContext,
  DEFAULT_LIMITS,
  type HttpCacheLimits,
  type ServedStores,
} from "./context.js";
import {
  cacheInfoResponse,
  getListing,
  getLog,
  getNar,
  narInfoResponse,
  sendSmall,
} from "./download.js";
import { FastFront, type FastResponse } from "./fast-path.js";
import { NarIndex } from "./nar-index.js";
import { checkDeclaredLength, HttpError, sendError, sendText, statusOf } from "./respond.js";
import { type Route, route } from "./routes.js";
import { putCacheInfo, putListing, putLog, putNar, putNarInfo } from "./upload.js";

export interface HttpCacheServerOptions {
  readonly stores: ServedStores;
  /** Where uploads and served NARs are indexed (default: in memory). Closed by the caller. */
  readonly index?: NarIndex;
  /** Every narinfo served (and stored by an upload) gets a signature by each key. */
  readonly signingKeys?: readonly SecretKey[];
  /** `Priority:` in nix-cache-info (default 30; lower is preferred by Nix). */
  readonly priority?: number;
  /** Uploads are enabled exactly when credentials are given. */
  readonly uploadCredentials?: UploadCredentials;
  readonly limits?: Partial<HttpCacheLimits>;
  /** Answer `Accept-Encoding: zstd` with compressed NARs (default true). */
  readonly compressOnTheFly?: boolean;
  /** Default: the `server.http` logger (STRATA_LOG). */
  readonly log?: Logger;
}

export const DEFAULT_HTTP_LISTEN_ADDRESS = "[::1]:9000";
export const DEFAULT_PRIORITY = 30;

/** The URL clients use for a bound listener (`http://127.0.0.1:9000`, `http://[::1]:9000`). */
export function listenerUrl(b: BoundListener): string {
  const a = b.address;
  if (a.kind === "tcp") {
    return `http://${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
  }
  return b.display;
}

export class HttpCacheServer {
  readonly #ctx: CacheContext;
  readonly #upload: UploadCredentials | undefined;
  readonly #compress: boolean;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #net: NetServer;
  readonly #front: FastFront;
  /** One listener per request in flight (removed when it ends): no listener cap. */
  readonly #shutdown = withoutListenerCap(new AbortController());
  readonly #ownIndex: NarIndex | undefined;
  #bound: BoundListener | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: HttpCacheServerOptions) {
    this.#log = options.log ?? logger("server.http");
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#ownIndex = options.index === undefined ? NarIndex.memory() : undefined;
    this.#ctx = new CacheContext({
      stores: options.stores,
      index: options.index ?? this.#ownIndex!,
      keys: options.signingKeys ?? [],
      limits,
      priority: options.priority ?? DEFAULT_PRIORITY,
      log: this.#log,
    });
    this.#upload = options.uploadCredentials;
    this.#compress = options.compressOnTheFly ?? true;
    this.#server = createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 30_000,
    });
    this.#server.on("request", (req, res) => void this.#handle(req, res, false));
    this.#server.on("checkContinue", (req, res) => void this.#handle(req, res, true));
    // Connections arrive at the fast path first, which passes them on to
    // node:http at the first request it does not answer itself.
    this.#front = new FastFront(
      this.#server,
      (path) => this.#fast(path),
      limits.maxHeaderBytes,
      this.#server.keepAliveTimeout,
    );
    this.#front.onIdle = () => this.#checkIdle();
    this.#net = createNetServer((socket) => this.#front.accept(socket));
  }

  /** narinfo and nix-cache-info GET/HEAD, straight from the socket (see fast-path.ts). */
  async #fast(path: string): Promise<FastResponse | undefined> {
    if (this.#log.enabled("debug")) this.#log.debug("request (fast path)", { url: path });
    if (path === "/nix-cache-info") return cacheInfoResponse(this.#ctx);
    // Failures are answered by node:http, which reports them properly.
    return narInfoResponse(this.#ctx, path.slice(1, 33));
  }

  #checkIdle(): void {
    if (this.#inFlight === 0 && this.#front.inFlight === 0) this.#idle?.();
  }

  /** Whether PUT requests can succeed (with credentials). */
  get uploadsEnabled(): boolean {
    return this.#upload !== undefined;
  }

  /** Starts listening; resolves to what it listens on (the real port for port 0). */
  async listen(address: ListenAddress): Promise<BoundListener> {
    if (this.#bound !== undefined) throw new Error("the HTTP cache server is already listening");
    this.#bound = await bindListener(this.#net, address);
    // Starts node:http's bookkeeping of connections (timeouts, closeIdleConnections).
    this.#server.emit("listening");
    this.#log.info(`binary cache listening on ${listenerUrl(this.#bound)}`);
    return this.#bound;
  }

  /**
   * Graceful shutdown: no new connections; requests running get up to
   * `graceMs`, then they are cancelled and their connections cut. Idempotent.
   */
  close(graceMs = 10_000): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#net.close(() => resolve()));
    this.#front.close();
    this.#server.closeIdleConnections();
    if (this.#inFlight > 0 || this.#front.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#shutdown.abort(new AbortedError("the server is shutting down"));
    this.#server.closeAllConnections();
    this.#front.destroyAll();
    // Every connection was cut; do not hang on one that slipped through.
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 2000).unref())]);
    // Stops node:http's connection checks (it never listened itself).
    this.#server.close();
    this.#bound?.cleanup();
    await this.#ownIndex?.close();
  }

  async #handle(
    req: IncomingMessage,
    res: ServerResponse,
    expectsContinue: boolean,
  ): Promise<void> {
    this.#inFlight++;
    const started = performance.now();
    const abort = new AbortController();
    const onShutdown = (): void => abort.abort(this.#shutdown.signal.reason);
    this.#shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    res.on("close", () => {
      if (!res.writableFinished) abort.abort(new AbortedError("the client closed the connection"));
    });
    try {
      const r = route(req.url ?? "/");
      switch (req.method) {
        case "GET":
        case "HEAD":
          await this.#read(r, req, res, abort.signal);
          break;
        case "PUT":
          await this.#write(r, req, res, abort.signal, expectsContinue);
          break;
        default:
          throw new HttpError(405, `method ${req.method} is not supported here`, {
            Allow: "GET, HEAD, PUT",
          });
      }
    } catch (err) {
      this.#fail(req, res, err);
    } finally {
      this.#shutdown.signal.removeEventListener("abort", onShutdown);
      if (this.#log.enabled("debug")) {
        this.#log.debug("request", {
          method: req.method,
          url: req.url,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
        });
      }
      this.#inFlight--;
      this.#checkIdle();
    }
  }

  #fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.destroyed || (err instanceof AbortedError && res.headersSent)) {
      this.#log.debug("request cancelled", { method: req.method, url: req.url });
      res.destroy();
      return;
    }
    const status = statusOf(err);
    const message =
      err instanceof HttpError ? err.message : formatErrorChain(err).replace(/^error: /, "");
    if (status >= 500) this.#log.error(`${req.method} ${req.url} failed`, { status, err });
    else if (status === 404) this.#log.debug(`${req.method} ${req.url}: not found`);
    else this.#log.info(`${req.method} ${req.url} rejected`, { status, reason: message });
    const headers: Record<string, string> = err instanceof HttpError ? { ...err.headers } : {};
    // The rest of a rejected upload is not read: the connection cannot be reused.
    if (req.method === "PUT" && !req.complete) headers.Connection = "close";
    sendError(res, status, message, headers);
    if (req.method === "PUT" && !req.complete) req.resume();
  }

  async #read(
    r: Route,
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    const ctx = this.#ctx;
    switch (r.kind) {
      case "root":
        return sendText(
          res,
          200,
          "strata binary cache (nar-bridge). Use it as a Nix substituter: --option substituters <this URL>\n",
        );
      case "cache-info":
        return sendSmall(req, res, cacheInfoResponse(ctx));
      case "narinfo":
        return sendSmall(req, res, await narInfoResponse(ctx, r.hash, signal));
      case "listing":
        return getListing(ctx, req, res, r.hash, signal);
      case "nar":
        return getNar(ctx, req, res, r, signal, this.#compress);
      case "log":
        return getLog(ctx, req, res, r.drv, signal);
      case "unknown":
        throw new HttpError(404, `${r.path} is not a file of this binary cache`);
    }
  }

  async #write(
    r: Route,
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
    expectsContinue: boolean,
  ): Promise<void> {
    if (this.#upload === undefined) {
      throw new HttpError(
        403,
        "uploads are disabled on this cache (start strata serve with --allow-upload --upload-credentials-file FILE)",
      );
    }
    const auth = this.#upload.check(req.headers.authorization);
    if (auth !== "ok") {
      throw new HttpError(
        401,
        auth === "missing"
          ? "uploading needs credentials (HTTP basic auth; for Nix: a netrc-file entry for this host)"
          : "wrong user name or password",
        { "WWW-Authenticate": 'Basic realm="strata binary cache", charset="UTF-8"' },
      );
    }
    const limits = this.#ctx.limits;
    const go = (limit: number, what: string): void => {
      checkDeclaredLength(req, limit, what);
      if (expectsContinue) res.writeContinue();
    };
    const ctx = this.#ctx;
    switch (r.kind) {
      case "cache-info":
        go(4096, "nix-cache-info");
        return putCacheInfo(req, res);
      case "narinfo":
        go(limits.maxNarInfoBytes, "the narinfo");
        return putNarInfo(ctx, req, res, r.hash, signal);
      case "listing":
        go(limits.maxListingBytes, "the listing");
        return putListing(ctx, req, res);
      case "nar":
        go(limits.maxNarBytes, "the NAR upload");
        return putNar(ctx, req, res, r, signal);
      case "log":
        go(limits.maxLogBytes, "the build log");
        return putLog(ctx, req, res, r.drv, signal);
      case "root":
      case "unknown":
        throw new HttpError(
          404,
          `${req.url} is not a file of a binary cache (uploads go to /nar/, /<hash>.narinfo, /<hash>.ls, /log/)`,
        );
    }
  }
}

function withoutListenerCap(c: AbortController): AbortController {
  setMaxListeners(0, c.signal);
  return c;
}
