/**
 * Common options: settings every instance of a composition understands,
 * whatever its type, applied by the composition as a decorator around the
 * built service (STYLE 4: cross-cutting concerns are `(next) => next`).
 *
 * - `timeout_ms`: the longest one call may take — a request (`has`, `get`,
 *   `put`, `openRead`, `chunks`, `sync`, and `read` on a blob reader), or
 *   the wait for the next item of a stream (`getRecursive`, `list`, blob
 *   `stream`). On expiry the call's AbortSignal fires and the call fails with
 *   an UnavailableError naming the instance (so `priority` skips it and
 *   `retry` repeats it). Uploads (`openWrite`, `putMultiple`) are not timed.
 * - `max_concurrency`: at most this many requests of the instance run at
 *   once; further ones wait their turn (streams and uploads are not counted).
 *
 * Precedence (one rule, most specific wins): a field set on the instance,
 * else `[defaults.<section>]` (e.g. `[defaults.pathinfoservices]`), else
 * `[defaults]`, else unset. `[defaults]` and `[defaults.<section>]` apply to
 * backends only, not to combinators (cache, priority, race, lru, retry):
 * a default timeout on a priority list would cut off its fallbacks before
 * they are asked. Set on a combinator instance itself, an option applies to
 * it like to any other instance.
 */
import { z } from "zod";
import { CallGuard } from "./call-guard.js";
import {
  GuardedBlobService,
  GuardedDirectoryService,
  GuardedPathInfoService,
} from "./guarded-services.js";
import type { ServiceByKind, ServiceKind } from "./registry.js";

/** The common option fields, as they appear in an instance's table and in `[defaults]`. */
export const COMMON_OPTION_FIELDS = {
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      "Longest a single call (or the wait for the next item of a stream) may take, in ms; then it fails as 'Unavailable'.",
    ),
  max_concurrency: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("At most this many requests of the instance at once; more wait their turn."),
};

export const commonOptionsSchema = z.strictObject(COMMON_OPTION_FIELDS);

export type CommonOptions = z.infer<typeof commonOptionsSchema>;

export const COMMON_OPTION_NAMES: readonly string[] = Object.keys(COMMON_OPTION_FIELDS);

/** Whether any option is set. */
export function hasCommonOptions(options: CommonOptions): boolean {
  return options.timeout_ms !== undefined || options.max_concurrency !== undefined;
}

/** Merges option layers, later layers winning field by field. */
export function mergeCommonOptions(...layers: (CommonOptions | undefined)[]): CommonOptions {
  const out: { timeout_ms?: number; max_concurrency?: number } = {};
  for (const layer of layers) {
    if (layer?.timeout_ms !== undefined) out.timeout_ms = layer.timeout_ms;
    if (layer?.max_concurrency !== undefined) out.max_concurrency = layer.max_concurrency;
  }
  return out;
}

/**
 * Wraps `service` so that its calls obey `options`; returns it unchanged
 * when no option is set. `what` names the instance in errors
 * (`path info service 'upstream'`).
 */
export function withCommonOptions<K extends ServiceKind>(
  kind: K,
  service: ServiceByKind[K],
  options: CommonOptions,
  what: string,
): ServiceByKind[K] {
  if (!hasCommonOptions(options)) return service;
  return GUARDED[kind](service, new CallGuard(options, what));
}

/** The guarded service of each kind. */
const GUARDED: {
  [K in ServiceKind]: (inner: ServiceByKind[K], guard: CallGuard) => ServiceByKind[K];
} = {
  blob: (inner, guard) => new GuardedBlobService(inner, guard),
  directory: (inner, guard) => new GuardedDirectoryService(inner, guard),
  pathinfo: (inner, guard) => new GuardedPathInfoService(inner, guard),
};
