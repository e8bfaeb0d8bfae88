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
import {
  defineServiceType,
  type ServiceByKind,
  type ServiceKind,
  type ServiceType,
} from "../registry.js";
import {
  combinatorDeps,
  combinatorModule,
  combinatorQuery,
  defined,
  intParam,
  negativeTtlSchema,
  refSchema,
  requiredParam,
  resolveMembers,
} from "./combinator-parts.js";

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
  .describe("A fast near store in front of a slow far one; what comes from far is kept in near.");

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

/** The kind's Cache*Service, loaded on first use. */
const CACHE_CLASSES: {
  [K in ServiceKind]: (
    init: CacheInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  blob: async (init, deps) => {
    const { CacheBlobService } = await import("../../castore/blob/combinators/cache.js");
    return new CacheBlobService(init, deps);
  },
  directory: async (init, deps) => {
    const { CacheDirectoryService } = await import("../../castore/directory/combinators/cache.js");
    return new CacheDirectoryService(init, deps);
  },
  pathinfo: async (init, deps) => {
    const { CachePathInfoService } = await import("../../store/pathinfo/combinators/cache.js");
    return new CachePathInfoService(init, deps);
  },
};

function cacheType<K extends ServiceKind>(kind: K): ServiceType<K, CacheConfig> {
  return defineServiceType({
    kind,
    tag: "cache",
    description:
      "A fast near store in front of a slow far one; what comes from far is kept in near.",
    urlForms: ["cache://?near=URL&far=URL"],
    schema: cacheConfigSchema,
    combinator: true,
    fromUrl: cacheFromUrl,
    references: (config) => [
      { kind, field: "near", ref: config.near },
      { kind, field: "far", ref: config.far },
    ],
    async build(config, ctx) {
      const [near, far] = await resolveMembers(ctx, kind, [
        { field: "near", ref: config.near },
        { field: "far", ref: config.far },
      ]);
      return CACHE_CLASSES[kind](
        {
          near: near!,
          far: far!,
          ...defined({ write: config.write, negativeTtlMs: config.negative_ttl_ms }),
        },
        combinatorDeps(ctx, combinatorModule(kind, "cache")),
      );
    },
  });
}

export const cacheBlobType: ServiceType<"blob", CacheConfig> = cacheType("blob");
export const cacheDirectoryType: ServiceType<"directory", CacheConfig> = cacheType("directory");
export const cachePathInfoType: ServiceType<"pathinfo", CacheConfig> = cacheType("pathinfo");
