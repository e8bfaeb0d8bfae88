/**
 * Response helpers: plain-text errors with the reason in the body, caching
 * headers, streaming bodies with backpressure, bounded request bodies.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AbortedError, StrataError } from "../../errors.js";

/** Narinfos (of immutable store paths) and NARs (addressed by their hash) never change. */
export const CACHE_IMMUTABLE = "public, max-age=31536000, immutable";
/** A 404 may become a 200 as soon as someone uploads: cache it briefly. */
export const CACHE_NOT_FOUND = "public, max-age=60";
export const CACHE_INFO = "public, max-age=86400";

/** An error that becomes a response with this status and the message as body. */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/** The status a failure maps to: bad input 400, a backend that is down 503, anything else 500. */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof StrataError) {
    switch (err.code) {
      case "InvalidInput":
      case "Integrity":
        return 400;
      case "Unavailable":
        return 503;
      default:
        return 500;
    }
  }
  return 500;
}

/** Sends a complete text response (no body for HEAD). */
export function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string | number> = {},
): void {
  const bytes = Buffer.from(body, "utf8");
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    ...headers,
    "Content-Length": bytes.length,
  });
  res.end(res.req.method === "HEAD" ? undefined : bytes);
}

/** An error response: the reason as text, one line. */
export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    // Too late for a status: cut the connection so the client sees a failure.
    res.destroy();
    return;
  }
  const extra: Record<string, string> = { ...headers };
  if (status === 404) extra["Cache-Control"] ??= CACHE_NOT_FOUND;
  else extra["Cache-Control"] ??= "no-store";
  sendText(res, status, `${message}\n`, extra);
}

/**
 * Writes a chunk. Resolves at once while Node's buffers have room; otherwise
 * when they drained or, with `flushed`, when this very chunk has left them
 * (so its memory may be reused). Rejects once the client went away.
 */
function write(
  res: ServerResponse,
  chunk: Uint8Array,
  flushed: boolean,
): Promise<void> | undefined {
  let settle: ((err?: unknown) => void) | undefined;
  const written = flushed
    ? new Promise<void>((resolve, reject) => {
        settle = (err) => (err ? reject(err) : resolve());
      })
    : undefined;
  const ok = res.write(chunk, (err) => settle?.(err));
  if (flushed ? res.writableLength === 0 : ok) return undefined;
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      res.off("drain", done);
      res.off("close", closed);
    };
    const done = (): void => {
      cleanup();
      resolve();
    };
    const closed = (): void => {
      cleanup();
      reject(new AbortedError("the client closed the connection"));
    };
    res.on("close", closed);
    if (written !== undefined) written.then(done, closed);
    else res.on("drain", done);
  });
}

/**
 * Writes a body stream with backpressure (the response is not ended). With
 * `transient` (chunks are recycled buffers), the next chunk is pulled only
 * once the previous one has left Node's buffers. Resolves to the number of
 * bytes written. Rejects (AbortedError) when the client goes away; the
 * stream is then closed, which releases its readers.
 */
export async function sendStream(
  res: ServerResponse,
  stream: AsyncIterable<Uint8Array>,
  transient: boolean,
): Promise<number> {
  let n = 0;
  for await (const chunk of stream) {
    if (res.destroyed) throw new AbortedError("the client closed the connection");
    n += chunk.length;
    const wait = write(res, chunk, transient);
    if (wait !== undefined) await wait;
  }
  return n;
}

/** The request body, at most `limit` bytes (413 beyond; checked against Content-Length up front). */
export async function* limitedBody(
  req: IncomingMessage,
  limit: number,
  what: string,
): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) throw new HttpError(413, `${what} is larger than the limit of ${limit} bytes`);
    yield chunk;
  }
  if (!req.complete) throw new AbortedError("the client aborted the upload");
}

/** The whole request body (small bodies only: narinfo, nix-cache-info). */
export async function readBody(req: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of limitedBody(req, limit, what)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Rejects a declared body above `limit` before any of it is read (before `100 Continue`). */
export function checkDeclaredLength(req: IncomingMessage, limit: number, what: string): void {
  const header = req.headers["content-length"];
  if (header === undefined) return;
  const n = Number(header);
  if (Number.isSafeInteger(n) && n > limit) {
    throw new HttpError(413, `${what} of ${n} bytes is larger than the limit of ${limit} bytes`);
  }
}
