/**
 * `retry` — repeats the calls of an inner store that fail with
 * `Unavailable` (backend or network down), with exponential backoff and
 * jitter, for all three kinds (semantics: castore/combinators/retry-policy.ts
 * and the `Retry*Service` classes: uploads are not retried).
 *
 * Config: { type = "retry", inner = REF, attempts = 3, backoff_ms = 100,
 *           max_backoff_ms = 5000 }
 * URL:    `retry://?inner=URL[&attempts=N][&backoff_ms=N][&max_backoff_ms=N]`
 */
import { z } from "zod";
import type { RetryInit } from "../../castore/combinators/retried-inner.js";
import type { RetryPolicy } from "../../castore/combinators/retry-policy.js";
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
  refSchema,
  requiredParam,
  resolveMembers,
} from "./combinator-parts.js";

const retryConfigSchema = z
  .strictObject({
    type: z.literal("retry"),
    inner: refSchema.describe("The store whose calls are retried."),
    attempts: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .describe("Total attempts per call, the first included (default 3)."),
    backoff_ms: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe(
        "Delay before the second attempt in ms (default 100); doubles for each further one.",
      ),
    max_backoff_ms: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Upper bound of one delay in ms (default 5000)."),
  })
  .describe("Repeats calls of an inner store that fail with 'Unavailable', with backoff.");

export type RetryConfig = z.infer<typeof retryConfigSchema>;

/** The defaults of the `retry` fields. */
export const RETRY_DEFAULTS = { attempts: 3, backoff_ms: 100, max_backoff_ms: 5000 } as const;

const FORM = "retry://";

function retryFromUrl(url: URL): RetryConfig {
  const q = combinatorQuery(url, FORM, {
    single: ["inner", "attempts", "backoff_ms", "max_backoff_ms"],
  });
  return {
    type: "retry",
    inner: requiredParam(q, "inner", FORM),
    ...defined({
      attempts: intParam(q, "attempts", FORM),
      backoff_ms: intParam(q, "backoff_ms", FORM),
      max_backoff_ms: intParam(q, "max_backoff_ms", FORM),
    }),
  };
}

function policyOf(config: RetryConfig): RetryPolicy {
  return {
    attempts: config.attempts ?? RETRY_DEFAULTS.attempts,
    backoffMs: config.backoff_ms ?? RETRY_DEFAULTS.backoff_ms,
    maxBackoffMs: config.max_backoff_ms ?? RETRY_DEFAULTS.max_backoff_ms,
  };
}

/** The kind's Retry*Service, loaded on first use. */
const RETRY_CLASSES: {
  [K in ServiceKind]: (
    init: RetryInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  blob: async (init, deps) => {
    const { RetryBlobService } = await import("../../castore/blob/combinators/retry.js");
    return new RetryBlobService(init, deps);
  },
  directory: async (init, deps) => {
    const { RetryDirectoryService } = await import("../../castore/directory/combinators/retry.js");
    return new RetryDirectoryService(init, deps);
  },
  pathinfo: async (init, deps) => {
    const { RetryPathInfoService } = await import("../../store/pathinfo/combinators/retry.js");
    return new RetryPathInfoService(init, deps);
  },
};

function retryType<K extends ServiceKind>(kind: K): ServiceType<K, RetryConfig> {
  return defineServiceType({
    kind,
    tag: "retry",
    description: "Repeats calls of an inner store that fail with 'Unavailable', with backoff.",
    urlForms: ["retry://?inner=URL[&attempts=N][&backoff_ms=N]"],
    schema: retryConfigSchema,
    combinator: true,
    fromUrl: retryFromUrl,
    references: (config) => [{ kind, field: "inner", ref: config.inner }],
    async build(config, ctx) {
      const [inner] = await resolveMembers(ctx, kind, [{ field: "inner", ref: config.inner }]);
      return RETRY_CLASSES[kind](
        { inner: inner!, policy: policyOf(config) },
        combinatorDeps(ctx, combinatorModule(kind, "retry")),
      );
    },
  });
}

export const retryBlobType: ServiceType<"blob", RetryConfig> = retryType("blob");
export const retryDirectoryType: ServiceType<"directory", RetryConfig> = retryType("directory");
export const retryPathInfoType: ServiceType<"pathinfo", RetryConfig> = retryType("pathinfo");
