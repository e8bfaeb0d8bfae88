/**
 * The write side (only with uploads enabled and authorised), in the order
 * `nix copy --to` uses it:
 *
 * - `PUT /nar/<file hash>.nar[.xz|.zst|.bz2|.br]`: decompressed and ingested
 *   while it streams in (blobs and directories stored, NAR hash and size
 *   computed). The castore root is recorded in the NAR index under the NAR
 *   hash and the file name; nothing is visible in the cache yet.
 * - `PUT /<hash>.narinfo`: accepted only when its StorePath matches the
 *   URL, its NAR (NarHash + NarSize) was received or is already present, its
 *   references (other than itself) are in the cache, and its CA (if any)
 *   matches its store path. Its signatures are kept, ours added; it then
 *   becomes a PathInfo, and the path is served.
 * - `PUT /<hash>.ls` is read and dropped (listings are rendered from the
 *   store), `PUT /log/<drv>` stored as a blob, `PUT /nix-cache-info`
 *   accepted without changing anything.
 *
 * Every rejection is a 400 (409 for a conflicting narinfo) with the reason
 * as the body; a rejected upload leaves nothing the cache would serve
 * (blobs already written stay unreferenced, for garbage collection).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { bytesEqual, fromUtf8 } from "../../castore/bytes.js";
import { InvalidInputError } from "../../errors.js";
import { contentAddressedStorePath } from "../../store/content-address.js";
import { ingestNar } from "../../store/import/nar-ingest.js";
import { type NarInfo, parseNarInfo } from "../../store/narinfo.js";
import { nixbase32DecodeOrUndefined, nixbase32Encode } from "../../store/nixbase32.js";
import { type PathInfo, pathInfoFromNarInfo } from "../../store/path-info.js";
import { createSha256 } from "../../store/sha256-node.js";
import { sortSignatures } from "../../store/signature.js";
import { STORE_DIR } from "../../store/store-path.js";
import { type Codec, decompress, sniffGzip } from "./compression.js";
import type { CacheContext } from "./context.js";
import { HttpError, limitedBody, readBody, sendText } from "./respond.js";

function ok(res: ServerResponse, message: string): void {
  sendText(res, 200, `${message}\n`, { "Cache-Control": "no-store" });
}

/** Counts and hashes what passes (the upload as sent). */
class Tap {
  readonly #sha = createSha256();
  bytes = 0;
  #digest: Uint8Array | undefined;

  async *through(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const c of source) {
      this.#sha.update(c);
      this.bytes += c.length;
      yield c;
    }
  }

  digest(): Uint8Array {
    this.#digest ??= this.#sha.digest();
    return this.#digest;
  }
}

/** Fails once more than `limit` bytes came through (a decompression bomb, say). */
async function* atMost(
  source: AsyncIterable<Uint8Array>,
  limit: number,
  what: string,
): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const c of source) {
    n += c.length;
    if (n > limit) throw new HttpError(413, `${what} is larger than the limit of ${limit} bytes`);
    yield c;
  }
}

export async function putNar(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
  route: { file: string; id: string; codec: Codec | undefined },
  signal: AbortSignal,
): Promise<void> {
  const limit = ctx.limits.maxNarBytes;
  const tap = new Tap();
  let nar: AsyncIterable<Uint8Array> = tap.through(limitedBody(req, limit, "the NAR upload"));
  if (route.codec !== undefined) {
    nar = decompress(nar, route.codec);
  } else {
    // Nix names gzip NARs `.nar` too.
    const sniffed = await sniffGzip(nar);
    nar = sniffed.gzip ? decompress(sniffed.stream, "gzip") : sniffed.stream;
  }
  const result = await ingestNar(
    atMost(nar, limit, "the uncompressed NAR"),
    ctx.stores,
    {},
    {
      signal,
    },
  );
  const named = route.id.length === 52 ? nixbase32DecodeOrUndefined(route.id) : undefined;
  if (
    named !== undefined &&
    !bytesEqual(named, tap.digest()) &&
    !bytesEqual(named, result.narSha256)
  ) {
    throw new InvalidInputError(
      `the upload's name says sha256:${route.id}, but the file has sha256:${nixbase32Encode(tap.digest())} ` +
        `and the NAR sha256:${nixbase32Encode(result.narSha256)}`,
    );
  }
  await ctx.index.putNar(result.narSha256, { node: result.node, narSize: result.narSize });
  await ctx.index.putFile(route.file, result.narSha256);
  ctx.log.info("NAR received", {
    file: route.file,
    narHash: `sha256:${nixbase32Encode(result.narSha256)}`,
    narSize: result.narSize,
    fileSize: tap.bytes,
  });
  ok(res, `NAR sha256:${nixbase32Encode(result.narSha256)} (${result.narSize} bytes) received`);
}

/** Checks a CA narinfo's store path against its content address. */
function checkContentAddress(narinfo: NarInfo): void {
  const { ca, storePath } = narinfo;
  if (ca === undefined) return;
  if (ca.method === "nar" && ca.algo === "sha256" && !bytesEqual(ca.digest, narinfo.narHash)) {
    throw new InvalidInputError(
      `CA fixed:r:sha256:${nixbase32Encode(ca.digest)} is not the NarHash sha256:${nixbase32Encode(narinfo.narHash)}`,
    );
  }
  const self = narinfo.references.some((r) => r.equals(storePath));
  const others = narinfo.references.filter((r) => !r.equals(storePath));
  let expected: ReturnType<typeof contentAddressedStorePath>;
  try {
    expected = contentAddressedStorePath(storePath.name, ca, others, self);
  } catch (cause) {
    throw new InvalidInputError(`the CA field does not fit the path`, { cause });
  }
  if (!expected.equals(storePath)) {
    throw new InvalidInputError(
      `StorePath ${storePath.absolute} does not match its content address (that gives ${expected.absolute})`,
    );
  }
}

function sameReferences(a: PathInfo["references"], b: PathInfo["references"]): boolean {
  const x = a.map((r) => r.basename).sort();
  const y = b.map((r) => r.basename).sort();
  return x.length === y.length && x.every((r, i) => r === y[i]);
}

export async function putNarInfo(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
  hash: string,
  signal: AbortSignal,
): Promise<void> {
  const body = await readBody(req, ctx.limits.maxNarInfoBytes, "the narinfo");
  let text: string;
  try {
    text = fromUtf8(body);
  } catch {
    throw new InvalidInputError("the narinfo is not UTF-8 text");
  }
  const narinfo = parseNarInfo(text);
  const { storePath } = narinfo;
  if (storePath.hashPart !== hash) {
    throw new InvalidInputError(
      `StorePath ${storePath.absolute} does not match the hash ${hash} of the URL`,
    );
  }
  const narHash = `sha256:${nixbase32Encode(narinfo.narHash)}`;
  const existing = await ctx.stores.pathInfos.get(storePath.digest, { signal });
  let info: PathInfo;
  if (existing !== undefined) {
    // Store paths are immutable: the same metadata may come again (with more
    // signatures, e.g. from `nix store sign`), different metadata may not.
    if (
      !bytesEqual(existing.narSha256, narinfo.narHash) ||
      existing.narSize !== narinfo.narSize ||
      !sameReferences(existing.references, narinfo.references)
    ) {
      throw new HttpError(
        409,
        `${storePath.absolute} is already in this cache with other contents or references ` +
          `(NarHash sha256:${nixbase32Encode(existing.narSha256)}, NarSize ${existing.narSize}); store paths are immutable`,
      );
    }
    info = {
      ...existing,
      signatures: sortSignatures([...existing.signatures, ...narinfo.signatures]),
    };
  } else {
    const rec = ctx.index.getNar(narinfo.narHash);
    if (rec === undefined || !(await ctx.rootPresent(rec.node, { signal }))) {
      throw new InvalidInputError(
        `the NAR of ${storePath.absolute} (NarHash ${narHash}, NarSize ${narinfo.narSize}) was never uploaded to this cache: PUT it to /nar/ first`,
      );
    }
    if (rec.narSize !== narinfo.narSize) {
      throw new InvalidInputError(
        `NarSize ${narinfo.narSize} is wrong: the NAR with ${narHash} has ${rec.narSize} bytes`,
      );
    }
    for (const r of narinfo.references) {
      if (r.equals(storePath)) continue;
      if ((await ctx.stores.pathInfos.get(r.digest, { signal })) === undefined) {
        throw new InvalidInputError(
          `reference ${r.absolute} is not in this cache (dependencies must be uploaded first)`,
        );
      }
    }
    checkContentAddress(narinfo);
    info = pathInfoFromNarInfo(narinfo, rec.node);
  }
  const stored = await ctx.stores.pathInfos.put(ctx.signed(info), { signal });
  ctx.forgetNarInfo(hash); // more signatures now
  ctx.log.info("narinfo stored", { path: stored.storePath.absolute });
  ok(res, `${stored.storePath.absolute} stored`);
}

export async function putListing(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  for await (const _ of limitedBody(req, ctx.limits.maxListingBytes, "the listing")) {
    // dropped: listings are rendered from the store
  }
  ok(res, "listing ignored: this cache renders listings from the store");
}

export async function putLog(
  ctx: CacheContext,
  req: IncomingMessage,
  res: ServerResponse,
  drv: string,
  signal: AbortSignal,
): Promise<void> {
  if (!drv.endsWith(".drv")) throw new InvalidInputError(`'${drv}' is not a derivation`);
  const w = ctx.stores.blobs.openWrite({ signal });
  let digest: Awaited<ReturnType<typeof w.close>>;
  try {
    for await (const c of limitedBody(req, ctx.limits.maxLogBytes, "the build log")) {
      await w.write(c, { signal });
    }
    digest = await w.close({ signal });
  } catch (err) {
    await w.abort(err);
    throw err;
  }
  await ctx.stores.blobs.sync({ signal });
  await ctx.index.putLog(drv, { digest, size: w.bytesWritten });
  ok(res, `build log of ${drv} stored`);
}

export async function putCacheInfo(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const text = (await readBody(req, 4096, "nix-cache-info")).toString("utf8");
  const storeDir = /^StoreDir: (.*)$/m.exec(text)?.[1];
  if (storeDir !== undefined && storeDir !== STORE_DIR) {
    throw new InvalidInputError(`this cache is for ${STORE_DIR}, not ${storeDir}`);
  }
  ok(res, "nix-cache-info is set by the server; nothing changed");
}
