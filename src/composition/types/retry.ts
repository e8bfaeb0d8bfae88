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
import type { ServiceByKind, ServiceKind, ServiceType } from "../registry.js";
import {
  combinatorQuery,
  defined,
  intParam,
  refSchema,
  requiredParam,
} from "./combinator-parts.js";
import { combinatorType, lazyClass } from "./combinator-type.js";

const DESCRIPTION = "Repeats calls of an inner store that fail with 'Unavailable', with backoff.";

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
  .describe(DESCRIPTION);

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

/** The kind's Retry*Service. */
const RETRY_CLASSES: {
  [K in ServiceKind]: (
    init: RetryInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  blob: lazyClass(
    async () => (await import("../../castore/blob/combinators/retry.js")).RetryBlobService,
  ),
  directory: lazyClass(
    async () =>
      (await import("../../castore/directory/combinators/retry.js")).RetryDirectoryService,
  ),
  pathinfo: lazyClass(
    async () => (await import("../../store/pathinfo/combinators/retry.js")).RetryPathInfoService,
  ),
};

function retryType<K extends ServiceKind>(kind: K): ServiceType<K, RetryConfig> {
  return combinatorType(
    kind,
    {
      tag: "retry",
      description: DESCRIPTION,
      urlForms: ["retry://?inner=URL[&attempts=N][&backoff_ms=N]"],
      schema: retryConfigSchema,
      fromUrl: retryFromUrl,
    },
    {
      refs: (config) => [{ field: "inner", ref: config.inner }],
      init: ([inner], config) => ({ inner: inner!, policy: policyOf(config) }),
      make: RETRY_CLASSES[kind],
    },
  );
}

export const retryBlobType: ServiceType<"blob", RetryConfig> = retryType("blob");
export const retryDirectoryType: ServiceType<"directory", RetryConfig> = retryType("directory");
export const retryPathInfoType: ServiceType<"pathinfo", RetryConfig> = retryType("pathinfo");
