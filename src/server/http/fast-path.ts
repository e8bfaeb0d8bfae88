/**
 * A raw-socket front for the most frequent requests of a binary cache:
 * `GET`/`HEAD` of narinfos and nix-cache-info (Nix asks for every narinfo of
 * a closure, often hundreds, before it fetches any NAR). node:http costs
 * ~100 us per request on its own; answering these directly from the socket
 * costs a third of that.
 *
 * Only plain requests are answered here: HTTP/1.1, GET or HEAD, an
 * origin-form target that is exactly `/nix-cache-info` or
 * `/<hash>.narinfo`, no body, no `Expect`, `Upgrade`, `Range` or
 * conditional headers. Anything else — and everything after it on the same
 * connection — is handed to node:http untouched (the bytes read so far are
 * put back into the socket), so both paths answer the same way and node:http
 * remains the reference for every protocol corner.
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

export interface FastResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | number>>;
  readonly body: Uint8Array;
}

/** Answers a plain GET/HEAD (`path` is the raw target), or undefined to let node:http do it. */
export type FastHandler = (path: string) => Promise<FastResponse | undefined>;

const REASONS: Readonly<Record<number, string>> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** Headers whose presence sends the request to node:http. */
const DEFER = new Set([
  "content-length",
  "transfer-encoding",
  "expect",
  "upgrade",
  "range",
  "if-range",
  "if-match",
  "if-none-match",
  "if-modified-since",
  "if-unmodified-since",
  "http2-settings",
]);

const TARGET = /^\/(?:nix-cache-info|[0-9abcdfghijklmnpqrsvwxyz]{32}\.narinfo)$/;
const END = Buffer.from("\r\n\r\n");
const HEADERS_TIMEOUT_MS = 60_000;

/** GET keep-alive serialisations of responses served more than once (cached narinfos). */
const wire = new WeakMap<FastResponse, Buffer>();

/**
 * The response bytes (status line, headers, body) in one buffer: one write,
 * one syscall. The common form (GET, keep-alive) is kept with the response:
 * sent again as it is (the buffer is never written to after it is made).
 */
export function serializeResponse(r: FastResponse, head: boolean, close: boolean): Buffer {
  if (head || close) return serialize(r, head, close);
  let out = wire.get(r);
  if (out === undefined) {
    out = serialize(r, false, false);
    wire.set(r, out);
  }
  return out;
}

function serialize(r: FastResponse, head: boolean, close: boolean): Buffer {
  let text = `HTTP/1.1 ${r.status} ${REASONS[r.status] ?? "Unknown"}\r\n`;
  for (const [k, v] of Object.entries(r.headers)) text += `${k}: ${v}\r\n`;
  text += `Content-Length: ${r.body.length}\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
  const bodyLength = head ? 0 : r.body.length;
  const out = Buffer.allocUnsafe(text.length + bodyLength);
  out.write(text, 0, "latin1");
  if (bodyLength > 0) out.set(r.body, text.length);
  return out;
}

interface Parsed {
  readonly method: "GET" | "HEAD";
  readonly path: string;
  readonly close: boolean;
  /** Bytes of the request head (up to and including the blank line). */
  readonly length: number;
}

/** Parses a request head if it qualifies for the fast path; undefined otherwise. */
function parse(buf: Buffer, end: number): Parsed | undefined {
  const text = buf.toString("latin1", 0, end);
  const lines = text.split("\r\n");
  const m = /^(GET|HEAD) (\S+) HTTP\/1\.1$/.exec(lines[0]!);
  if (m === null || !TARGET.test(m[2]!)) return undefined;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) return undefined;
    const name = line.slice(0, colon).toLowerCase();
    if (DEFER.has(name)) return undefined;
    if (name === "connection") {
      const v = line
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (v === "close") close = true;
      else if (v !== "keep-alive") return undefined;
    }
  }
  return { method: m[1] as "GET" | "HEAD", path: m[2]!, close, length: end + 4 };
}

export class FastFront {
  readonly #http: Server;
  readonly #handler: FastHandler;
  readonly #maxHeaderBytes: number;
  readonly #idleMs: number;
  readonly #sockets = new Map<Socket, { busy: boolean }>();
  #closing = false;
  /** Requests being answered here (for graceful shutdown). */
  inFlight = 0;
  onIdle: (() => void) | undefined;

  constructor(http: Server, handler: FastHandler, maxHeaderBytes: number, idleMs: number) {
    this.#http = http;
    this.#handler = handler;
    this.#maxHeaderBytes = maxHeaderBytes;
    this.#idleMs = idleMs;
  }

  accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const state = { busy: false };
    this.#sockets.set(socket, state);
    let pending: Buffer = Buffer.alloc(0);
    let handedOff = false;
    const onTimeout = (): void => {
      // No idle timeout while an answer is being made (a slow store is not an
      // idle client): the answer's write re-arms the timer (net.Socket
      // refreshes it on every read and write, which is also why it is not
      // reset per request here: that costs a timer object each time).
      if (state.busy) return;
      socket.destroy();
    };
    const onError = (): void => {
      // Reset by the peer: close is next.
    };
    const cleanup = (): void => {
      socket.off("data", onData);
      socket.off("timeout", onTimeout);
      socket.off("error", onError);
      socket.setTimeout(0);
      this.#sockets.delete(socket);
    };
    const handOff = (): void => {
      handedOff = true;
      cleanup();
      socket.pause();
      if (pending.length > 0) socket.unshift(pending);
      this.#http.emit("connection", socket);
      socket.resume();
    };
    const next = async (): Promise<void> => {
      while (!handedOff && !state.busy && pending.length > 0) {
        const end = pending.indexOf(END);
        if (end < 0) {
          // Incomplete head; node:http answers an oversized one (431).
          if (pending.length > this.#maxHeaderBytes) handOff();
          return;
        }
        const req = end + 4 <= this.#maxHeaderBytes ? parse(pending, end) : undefined;
        if (req === undefined) return handOff();
        headStarted = undefined;
        state.busy = true;
        this.inFlight++;
        let response: FastResponse | undefined;
        try {
          response = await this.#handler(req.path);
        } catch {
          response = undefined;
        } finally {
          state.busy = false;
          if (--this.inFlight === 0) this.onIdle?.();
        }
        if (socket.destroyed) return;
        if (response === undefined) return handOff();
        pending = pending.subarray(req.length);
        const close = req.close || this.#closing;
        socket.write(serializeResponse(response, req.method === "HEAD", close));
        if (close) {
          cleanup();
          socket.end();
          return;
        }
      }
    };
    /** When the current, still incomplete request head started to arrive. */
    let headStarted: number | undefined;
    const onData = (chunk: Buffer): void => {
      // A head trickling in byte by byte keeps the idle timer happy; node:http
      // gives a head 60 s (headersTimeout), so does this path.
      headStarted ??= Date.now();
      if (Date.now() - headStarted > HEADERS_TIMEOUT_MS) {
        socket.destroy();
        return;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      void next();
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("timeout", onTimeout);
    socket.once("close", () => {
      if (!handedOff) cleanup();
    });
    socket.setTimeout(this.#idleMs);
  }

  /** Stops taking connections; idle ones are closed now, busy ones after their answer. */
  close(): void {
    this.#closing = true;
    for (const [socket, state] of this.#sockets) if (!state.busy) socket.destroy();
  }

  /** Cuts every connection still here. */
  destroyAll(): void {
    for (const socket of this.#sockets.keys()) socket.destroy();
  }
}
