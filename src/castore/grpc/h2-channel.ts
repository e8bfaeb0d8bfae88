/**
 * One client HTTP/2 connection to a gRPC server, opened on first use and
 * again after it died (server restart, GOAWAY, idle timeout). It takes the
 * place of connect-node's Http2SessionManager, with the same duties except
 * keep-alive PINGs (which strata never turned on), and adds what small calls
 * need: a synchronous way to a stream on the open session (`streamNow`),
 * with the session's stream count kept by the caller instead of by two
 * listeners per stream and a promise per request.
 *
 * Like connect's manager: an idle connection does not keep the process
 * alive (unref'd while it has no streams), one idle for `idleTimeoutMs` is
 * closed, and a request that finds its session closing while it opens a
 * stream retries on a new connection.
 */
import { AsyncResource } from "node:async_hooks";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type ClientSessionOptions,
  type ClientSessionRequestOptions,
  connect as h2connect,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

function ignore(): void {}

/**
 * `ClientHttp2Session.request()` binds a callback to a fresh AsyncResource
 * per stream, and Node 20's `AsyncResource.prototype.bind` defines a
 * deprecated `asyncResource` accessor pair (two `deprecate()` wrappers) on
 * every bound function: a third of what `request()` costs, ~10 us per small
 * call here. While `request()` runs (synchronously; no user code but async
 * hooks runs inside), `bind` is this equivalent without the deprecated
 * accessor: the callback still runs in the resource's async scope.
 */
const nodeBind = AsyncResource.prototype.bind;
function bindInScope(
  this: AsyncResource,
  fn: (...args: unknown[]) => unknown,
  thisArg?: unknown,
): (...args: unknown[]) => unknown {
  const resource = this;
  return function (this: unknown, ...args: unknown[]) {
    return resource.runInAsyncScope(fn, thisArg === undefined ? this : thisArg, ...args);
  };
}

/** Only where measured (Node 20): newer releases keep their own `bind` untouched. */
const SWAP_BIND = Number(process.versions.node.split(".")[0]) <= 20;

function request(
  h2: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  options: ClientSessionRequestOptions | undefined,
): ClientHttp2Stream {
  if (!SWAP_BIND) return h2.request(headers, options);
  AsyncResource.prototype.bind = bindInScope as unknown as typeof nodeBind;
  try {
    return h2.request(headers, options);
  } finally {
    AsyncResource.prototype.bind = nodeBind;
  }
}

/** A session of the channel, with its count of open streams. */
export class LiveSession {
  readonly h2: ClientHttp2Session;
  readonly #idleTimeoutMs: number;
  readonly #onIdle: () => void;
  #streams = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #goaway = false;

  /** `onGone(closed)`: the session takes no more streams; `closed`: it has none either. */
  constructor(
    h2: ClientHttp2Session,
    idleTimeoutMs: number,
    onGone: (live: LiveSession, closed: boolean) => void,
  ) {
    this.h2 = h2;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#onIdle = () => {
      onGone(this, false);
      h2.close();
    };
    h2.on("goaway", () => {
      // No new streams here (Node closes the session); running ones finish.
      this.#goaway = true;
      onGone(this, false);
    });
    h2.on("close", () => {
      if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
      onGone(this, true);
    });
    // Failures reach the streams (and end in "close").
    h2.on("error", () => onGone(this, false));
    // Idle: it must not keep the process alive.
    h2.unref();
    this.#armIdle();
  }

  /** Whether new streams may go here. */
  get usable(): boolean {
    return !this.#goaway && !this.h2.closed && !this.h2.destroyed;
  }

  /**
   * Opens a stream (throws if the session cannot take one). The caller
   * calls `streamClosed()` once the stream closed.
   */
  open(headers: OutgoingHttpHeaders, options?: ClientSessionRequestOptions): ClientHttp2Stream {
    const stream = request(this.h2, headers, options);
    if (this.#streams++ === 0) {
      this.h2.ref();
      if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
    return stream;
  }

  streamClosed(): void {
    if (--this.#streams > 0) return;
    if (this.h2.destroyed) return;
    this.h2.unref();
    this.#armIdle();
  }

  #armIdle(): void {
    if (this.#idleTimeoutMs > 0x7fffffff) return;
    this.#idleTimer = setTimeout(this.#onIdle, this.#idleTimeoutMs).unref();
  }

  destroy(reason: ConnectError): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    if (!this.h2.destroyed) this.h2.destroy(reason);
  }
}

export class H2Channel {
  /** The origin connected to (`http://host:port`, `https://...`). */
  readonly authority: string;
  readonly #options: ClientSessionOptions | SecureClientSessionOptions;
  readonly #idleTimeoutMs: number;
  readonly #onSession: (h2: ClientHttp2Session) => void;
  /** The session new streams go to, while it is usable. */
  #live: LiveSession | undefined;
  /** Every session not closed yet (the live one, and older ones finishing their streams). */
  readonly #sessions = new Set<LiveSession>();
  #connecting: { promise: Promise<LiveSession>; h2: ClientHttp2Session } | undefined;
  /** The last connection failure (for `connect()`'s error). */
  #lastError: unknown;

  constructor(
    authority: string,
    options: ClientSessionOptions | SecureClientSessionOptions,
    idleTimeoutMs: number,
    /** Called with every new session once connected (e.g. to widen its window). */
    onSession: (h2: ClientHttp2Session) => void,
  ) {
    this.authority = authority;
    this.#options = options;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#onSession = onSession;
  }

  /** The open session, if there is one that takes new streams. */
  get live(): LiveSession | undefined {
    const live = this.#live;
    return live?.usable ? live : undefined;
  }

  /** The open session, connecting first if there is none. */
  session(): Promise<LiveSession> {
    const live = this.live;
    if (live !== undefined) return Promise.resolve(live);
    this.#connecting ??= this.#connect();
    return this.#connecting.promise;
  }

  #connect(): { promise: Promise<LiveSession>; h2: ClientHttp2Session } {
    const h2 = h2connect(this.authority, this.#options);
    // An error without a listener would throw; the ones that matter are handled below.
    h2.on("error", ignore);
    const promise = new Promise<LiveSession>((resolve, reject) => {
      const done = (): void => {
        h2.off("connect", onConnect);
        h2.off("error", onError);
        h2.off("close", onClose);
        if (this.#connecting?.h2 === h2) this.#connecting = undefined;
      };
      const onConnect = (): void => {
        done();
        this.#onSession(h2);
        const live = new LiveSession(h2, this.#idleTimeoutMs, (gone, closed) => {
          if (this.#live === gone) this.#live = undefined;
          if (closed) this.#sessions.delete(gone);
        });
        this.#live = live;
        this.#sessions.add(live);
        resolve(live);
      };
      const onError = (err: unknown): void => {
        done();
        this.#lastError = err;
        // Any failure to connect means the server cannot be reached now.
        const ce = ConnectError.from(err, Code.Unavailable);
        if (ce !== err) ce.cause = err;
        reject(ce);
      };
      const onClose = (): void =>
        onError(new ConnectError("the connection closed while connecting", Code.Unavailable));
      h2.once("connect", onConnect);
      h2.once("error", onError);
      h2.once("close", onClose);
    });
    return { promise, h2 };
  }

  /**
   * A stream on the open session, or on a new connection if there is none
   * (retrying once per session that closes under it). The caller calls
   * `streamClosed()` of the returned session once the stream closed.
   */
  async open(
    headers: OutgoingHttpHeaders,
    options?: ClientSessionRequestOptions,
  ): Promise<{ stream: ClientHttp2Stream; session: LiveSession }> {
    for (;;) {
      const session = await this.session();
      try {
        return { stream: session.open(headers, options), session };
      } catch (err) {
        // Closed between connecting and now: take the next connection.
        if (session.h2.closed || session.h2.destroyed) continue;
        throw err;
      }
    }
  }

  /** The last connection failure, if any. */
  get lastError(): unknown {
    return this.#lastError;
  }

  /** Ends the connection (and a connection attempt); running calls fail with `reason`. */
  abort(reason: ConnectError): void {
    const connecting = this.#connecting;
    this.#connecting = undefined;
    if (connecting !== undefined && !connecting.h2.destroyed) {
      connecting.h2.destroy(reason);
    }
    this.#live = undefined;
    for (const s of this.#sessions) s.destroy(reason);
    this.#sessions.clear();
  }
}
