/**
 * `lru` — the most recently used path infos or directories of an inner
 * store kept in memory (semantics: castore/directory/combinators/lru.ts,
 * store/pathinfo/combinators/lru.ts). Blobs have no lru: they are large,
 * and a `cache` with a `memory://` near tier does that job.
 *
 * Config: { type = "lru", inner = REF, capacity = N }
 * URL:    `lru://?inner=URL&capacity=N`
 */
import { z } from "zod";
import type { LruInit } from "../../castore/combinators/lru-inner.js";
import type { CombinatorDeps } from "../../castore/combinators/support.js";
import { ConfigError } from "../../errors.js";
import type { ServiceByKind, ServiceType } from "../registry.js";
import { combinatorQuery, intParam, refSchema, requiredParam } from "./combinator-parts.js";
import { combinatorType, lazyClass } from "./combinator-type.js";

const DESCRIPTION = "The most recently used entries of an inner store, kept in memory.";

const lruConfigSchema = z
  .strictObject({
    type: z.literal("lru"),
    inner: refSchema.describe("The store whose entries are kept in memory."),
    capacity: z
      .number()
      .int()
      .min(1)
      .max(100_000_000)
      .describe("How many entries are kept in memory."),
  })
  .describe(DESCRIPTION);

export type LruConfig = z.infer<typeof lruConfigSchema>;

const FORM = "lru://";

function lruFromUrl(url: URL): LruConfig {
  const q = combinatorQuery(url, FORM, { single: ["inner", "capacity"] });
  const capacity = intParam(q, "capacity", FORM);
  if (capacity === undefined)
    throw new ConfigError(`${FORM}: query parameter 'capacity' is missing`);
  return { type: "lru", inner: requiredParam(q, "inner", FORM), capacity };
}

/** The kinds an lru exists for. */
type LruKind = "directory" | "pathinfo";

/** The kind's Lru*Service. */
const LRU_CLASSES: {
  [K in LruKind]: (
    init: LruInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  directory: lazyClass(
    async () => (await import("../../castore/directory/combinators/lru.js")).LruDirectoryService,
  ),
  pathinfo: lazyClass(
    async () => (await import("../../store/pathinfo/combinators/lru.js")).LruPathInfoService,
  ),
};

function lruType<K extends LruKind>(kind: K): ServiceType<K, LruConfig> {
  return combinatorType(
    kind,
    {
      tag: "lru",
      description: DESCRIPTION,
      urlForms: ["lru://?inner=URL&capacity=N"],
      schema: lruConfigSchema,
      fromUrl: lruFromUrl,
    },
    {
      refs: (config) => [{ field: "inner", ref: config.inner }],
      init: ([inner], config) => ({ inner: inner!, capacity: config.capacity }),
      make: LRU_CLASSES[kind],
    },
  );
}

export const lruDirectoryType: ServiceType<"directory", LruConfig> = lruType("directory");
export const lruPathInfoType: ServiceType<"pathinfo", LruConfig> = lruType("pathinfo");
