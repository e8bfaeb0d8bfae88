/**
 * `cache` — a fast `near` store in front of a slow `far` one, for all three
 * kinds (semantics: castore/blob/combinators/cache.ts,
 * castore/directory/combinators/cache.ts, store/pathinfo/combinators/cache.ts).
 *
 * Config:
 *   { type = "cache", near = REF, far = REF, write = "near" | "through",
 *     negative_ttl_ms = N }
 * where REF is an entry name, an ad-hoc URL or an inline table.
 *
 * URLs (inner URLs percent-escaped where they contain `%`, `&` or `#`):
 * - `cache://?near=URL&far=URL[&write=through][&negative_ttl_ms=N]`
 * - `?cache=NEAR_URL` on any store URL (handled by the registry):
 *   `grpc+https://host?cache=memory://` is
 *   `cache://?near=memory://&far=grpc%2Bhttps://host`.
 */
import { z } from "zod";
import type { CacheInit } from "../../castore/combinators/cache-tiers.js";
import type { CombinatorDeps } from "../../castore/combinators/support.js";
import type { ServiceByKind, ServiceKind, ServiceType } from "../registry.js";
import {
  combinatorQuery,
  defined,
  intParam,
  negativeTtlSchema,
  refSchema,
  requiredParam,
} from "./combinator-parts.js";
import { combinatorType, lazyClass } from "./combinator-type.js";

const DESCRIPTION =
  "A fast near store in front of a slow far one; what comes from far is kept in near.";

const cacheConfigSchema = z
  .strictObject({
    type: z.literal("cache"),
    near: refSchema.describe("The fast tier: read first, filled from far, written to."),
    far: refSchema.describe("The slow tier: read when near lacks an item."),
    write: z
      .enum(["near", "through"])
      .optional()
      .describe("Where writes go: 'near' (default) or 'through' (near and far)."),
    negative_ttl_ms: negativeTtlSchema,
  })
  .describe(DESCRIPTION);

export type CacheConfig = z.infer<typeof cacheConfigSchema>;

const FORM = "cache://";

function cacheFromUrl(url: URL): CacheConfig {
  const q = combinatorQuery(url, FORM, { single: ["near", "far", "write", "negative_ttl_ms"] });
  const write = q.single.get("write");
  return {
    type: "cache",
    near: requiredParam(q, "near", FORM),
    far: requiredParam(q, "far", FORM),
    // The schema rejects anything but near/through, naming the field.
    ...(write === undefined ? {} : { write: write as "near" }),
    ...defined({ negative_ttl_ms: intParam(q, "negative_ttl_ms", FORM) }),
  };
}

/** The kind's Cache*Service. */
const CACHE_CLASSES: {
  [K in ServiceKind]: (
    init: CacheInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  blob: lazyClass(
    async () => (await import("../../castore/blob/combinators/cache.js")).CacheBlobService,
  ),
  directory: lazyClass(
    async () =>
      (await import("../../castore/directory/combinators/cache.js")).CacheDirectoryService,
  ),
  pathinfo: lazyClass(
    async () => (await import("../../store/pathinfo/combinators/cache.js")).CachePathInfoService,
  ),
};

function cacheType<K extends ServiceKind>(kind: K): ServiceType<K, CacheConfig> {
  return combinatorType(
    kind,
    {
      tag: "cache",
      description: DESCRIPTION,
      urlForms: ["cache://?near=URL&far=URL"],
      schema: cacheConfigSchema,
      fromUrl: cacheFromUrl,
    },
    {
      refs: (config) => [
        { field: "near", ref: config.near },
        { field: "far", ref: config.far },
      ],
      init: ([near, far], config) => ({
        near: near!,
        far: far!,
        ...defined({ write: config.write, negativeTtlMs: config.negative_ttl_ms }),
      }),
      make: CACHE_CLASSES[kind],
    },
  );
}

export const cacheBlobType: ServiceType<"blob", CacheConfig> = cacheType("blob");
export const cacheDirectoryType: ServiceType<"directory", CacheConfig> = cacheType("directory");
export const cachePathInfoType: ServiceType<"pathinfo", CacheConfig> = cacheType("pathinfo");
