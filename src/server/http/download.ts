/**
 * The read side of the binary cache: nix-cache-info, narinfos, NARs
 * (whole, ranged, compressed on the fly), `.ls` listings and build logs.
 * HEAD answers with the headers a GET would get, without rendering.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { IntegrityError } from "../../errors.js";
import { NarRender, narRenderChunks } from "../../store/nar/castore-render-node.js";
import type { NarGeometry } from "../../store/nar/geometry.js";
import { nixbase32Encode } from "../../store/nixbase32.js";
import { parseStorePathHashPart, STORE_DIR } from "../../store/store-path.js";
import { type Codec, canCompress, compress } from "./compression.js";
import type { CacheContext, ResolvedNar } from "./context.js";
import type { FastResponse } from "./fast-path.js";
import { blobRangeSource, renderListing, renderNarRange } from "./nar-layout.js";
import { parseRange } from "./range.js";
import {
  CACHE_IMMUTABLE,
  CACHE_INFO,
  CACHE_NOT_FOUND,
  HttpError,
  sendError,
  sendStream,
} from "./respond.js";
import { sendNarRender } from "./send-nar.js";

const NAR_TYPE = "application/x-nix-nar";

function isHead(req: IncomingMessage): boolean {
  return req.method === "HEAD";
}

/** A complete small response (status, headers, body), as both HTTP paths send it. */
export function smallResponse(
  status: number,
  type: string,
  cache: string,
  body: string,
): FastResponse {
  return {
    status,
    headers: { "Content-Type": type, "Cache-Control": cache },
    body: Buffer.from(body, "utf8"),
  };
}

/** Sends a small response through node:http (no body for HEAD). */
export function sendSmall(req: IncomingMessage, res: ServerResponse, r: FastResponse): void {
  res.writeHead(r.status, { ...r.headers, "Content-Length": r.body.length });
  res.end(isHead(req) ? undefined : r.body);
}

export function cacheInfoResponse(ctx: CacheContext): FastResponse {
  return smallResponse(
    200,
    "text/x-nix-cache-info",
    CACHE_INFO,
    `StoreDir: ${STORE_DIR}\nWantMassQuery: 1\nPriority: ${ctx.priority}\n`,
  );
}

/**
 * The narinfo of the path with this hash part, or a 404. Found narinfos are
 * kept for a moment (CacheContext.cachedNarInfo): fetching, decoding and
 * rendering one costs more than the rest of answering it.
 */
export async function narInfoResponse(
  ctx: CacheContext,
  hash: string,
  signal?: AbortSignal,
): Promise<FastResponse> {
  const cached = ctx.cachedNarInfo(hash);
  if (cached !== undefined) return cached;
  const info = await ctx.stores.pathInfos.get(
    parseStorePathHashPart(hash),
    signal === undefined ? {} : { signal },
  );
  if (info === undefined) {
    return smallResponse(
      404,
      "text/plain; charset=utf-8",
      CACHE_NOT_FOUND,
      `no store path with hash ${hash} in this cache\n`,
    );
  }
  const text = ctx.narInfoText(info);
  ctx.remember(info);
  const response = smallResponse(200, "text/x-nix-narinfo", CACHE_IMMUTABLE, text);
  ctx.cacheNarInfo(hash, response);
  return response;
}

async function pathInfoOr404(ctx: CacheContext, hash: string, signal: AbortSignal) {
  const info = await ctx.stores.pathInfos.get(parseStorePathHashPart(hash), { signal });
  if (info === undefined) {
    throw new HttpError(404, `no store path with hash ${hash} in this cache`);
  }
  return info;
}

export async function getListing(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
  hash: string,
  signal: AbortSignal,
): Promise<void> {
  const info = await pathInfoOr404(ctx, hash, signal);
  const geometry = await ctx.geometry(info.narSha256, info.node);
  sendSmall(
    req,
    res,
    smallResponse(200, "application/json", CACHE_IMMUTABLE, renderListing(info.node, geometry)),
  );
}

/**
 * The whole NAR (nar-render.ts). The directory closure is fetched first, in
 * one recursive call (one round trip to a remote directory service instead
 * of one per directory), which also checks, before any header is sent, that
 * the tree's NAR has the size the path info promises.
 */
async function wholeNar(
  ctx: CacheContext,
  nar: ResolvedNar,
  signal: AbortSignal,
  what: string,
): Promise<NarRender> {
  const geometry = await ctx.geometry(nar.narSha256, nar.node);
  checkSize(geometry, nar, what);
  return new NarRender(nar.node, geometry, ctx.stores.blobs, { signal });
}

function checkSize(geometry: NarGeometry, nar: ResolvedNar, what: string): void {
  const size = geometry.narSize(nar.node);
  if (size !== nar.narSize) {
    throw new IntegrityError(
      `${what}: the tree's NAR has ${size} bytes, its recorded size is ${nar.narSize}`,
    );
  }
}

/** Fails the stream (before writing past it) when it is not exactly `size` bytes long. */
async function* exactly(
  stream: AsyncIterable<Uint8Array>,
  size: number,
  what: string,
): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > size) throw new IntegrityError(`${what} is longer than its recorded size ${size}`);
    yield chunk;
  }
  if (n !== size) throw new IntegrityError(`${what} has ${n} bytes, its recorded size is ${size}`);
}

/** Whether `Accept-Encoding` asks for zstd (`zstd`, `zstd;q=0.5`; not `zstd;q=0`). */
export function acceptsZstd(header: string | undefined): boolean {
  if (header === undefined) return false;
  for (const part of header.split(",")) {
    const [name, ...params] = part.trim().split(";");
    if (name?.trim().toLowerCase() !== "zstd") continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

export interface NarRequest {
  readonly id: string;
  readonly file: string;
  readonly codec: Codec | undefined;
}

export async function getNar(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
  route: NarRequest,
  signal: AbortSignal,
  compressOnTheFly: boolean,
): Promise<void> {
  // A GET of an unknown NAR may be for a path added by other means (then the
  // index is rebuilt); HEADs of unknown NARs are what every upload starts with.
  const nar = await ctx.resolveNar(route.id, route.file, { signal, rescan: !isHead(req) });
  if (nar === undefined) throw new HttpError(404, `no NAR ${route.file} in this cache`);
  const { node, narSize } = nar;
  const hash = nixbase32Encode(nar.narSha256);
  const what = `NAR sha256:${hash}`;
  const base = { "Content-Type": NAR_TYPE, "Cache-Control": CACHE_IMMUTABLE };

  if (route.codec !== undefined) {
    // A compressed file form: the body is the compressed file (no Content-Encoding).
    if (!canCompress(route.codec)) {
      throw new HttpError(
        404,
        `this server cannot produce ${route.codec} files (the tool is not installed); ask for nar/${hash}.nar`,
      );
    }
    const body = isHead(req) ? undefined : await wholeNar(ctx, nar, signal, what);
    res.writeHead(200, { ...base, ETag: `"${hash}-${route.codec}"` });
    if (body === undefined) return void res.end();
    const chunks = exactly(narRenderChunks(body), narSize, what);
    await sendStream(res, compress(chunks, route.codec, true), false);
    res.end();
    return;
  }

  const etag = `"${hash}"`;
  const ifRange = req.headers["if-range"];
  const range =
    ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, narSize) : undefined;
  if (range?.kind === "unsatisfiable") {
    return sendError(res, 416, `range not satisfiable: the NAR has ${narSize} bytes`, {
      "Content-Range": `bytes */${narSize}`,
    });
  }
  if (range !== undefined) {
    const { start, end } = range;
    const geometry = await ctx.geometry(nar.narSha256, node);
    checkSize(geometry, nar, what);
    res.writeHead(206, {
      ...base,
      ETag: etag,
      "Accept-Ranges": "bytes",
      "Content-Range": `bytes ${start}-${end - 1}/${narSize}`,
      "Content-Length": end - start,
    });
    if (isHead(req)) return void res.end();
    const blobs = blobRangeSource(ctx.stores.blobs, { signal }, true);
    const body = renderNarRange(node, geometry, start, end, blobs);
    await sendStream(res, exactly(body, end - start, `${what} range`), true);
    res.end();
    return;
  }

  const body = isHead(req) ? undefined : await wholeNar(ctx, nar, signal, what);
  if (compressOnTheFly && acceptsZstd(req.headers["accept-encoding"]) && canCompress("zstd")) {
    res.writeHead(200, {
      ...base,
      ETag: `"${hash}-zstd"`,
      "Content-Encoding": "zstd",
      Vary: "Accept-Encoding",
    });
    if (body === undefined) return void res.end();
    const chunks = exactly(narRenderChunks(body), narSize, what);
    await sendStream(res, compress(chunks, "zstd", true), false);
    res.end();
    return;
  }

  res.writeHead(200, {
    ...base,
    ETag: etag,
    "Accept-Ranges": "bytes",
    "Content-Length": narSize,
    ...(compressOnTheFly && { Vary: "Accept-Encoding" }),
  });
  if (body === undefined) return void res.end();
  await sendNarRender(res, body, narSize, what);
  res.end();
}

export async function getLog(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
  drv: string,
  signal: AbortSignal,
): Promise<void> {
  const rec = ctx.index.getLog(drv);
  const reader =
    rec === undefined ? undefined : await ctx.stores.blobs.openRead(rec.digest, { signal });
  if (reader === undefined) throw new HttpError(404, `no build log for ${drv} in this cache`);
  try {
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": reader.size,
      "Cache-Control": "public, max-age=3600",
    });
    if (isHead(req)) return void res.end();
    await sendStream(res, reader.stream(0, { signal, transient: true }), true);
    res.end();
  } finally {
    await reader.close();
  }
}
