/**
 * Test-only service types, registered only by tests (`testRegistry()`),
 * never by the default registry:
 *
 * - `latency` (`latency://?inner=URL&delay_ms=N`): every request (`has`,
 *   `openRead`, `chunks`, `sync`, `get`, `put`) and the start of every
 *   stream (`getRecursive`, `list`) waits `delay_ms` first. The wait honours
 *   the call's AbortSignal and counts the aborts.
 * - `faulty` (`faulty://?inner=URL&fail_fraction=F`): fails exactly the
 *   fraction F of those calls with an UnavailableError, spread evenly and
 *   deterministically (an accumulator adds F per call and fails the call
 *   that makes it reach 1), before the inner store sees the call. Uploads
 *   (`openWrite`, `putMultiple`) are never failed: `retry` does not retry
 *   them (it would need the bytes again).
 *
 * Both count calls per method (`statsOf(service)`), for tests that prove
 * which store was asked.
 */
import { z } from "zod";
import { sleep } from "../../src/castore/combinators/support.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import {
  defineServiceType,
  type Registry,
  type ServiceKind,
  type ServiceType,
} from "../../src/composition/registry.js";
import {
  combinatorQuery,
  refSchema,
  requiredParam,
  resolveMembers,
} from "../../src/composition/types/combinator-parts.js";
import { AbortedError, ConfigError, UnavailableError } from "../../src/errors.js";

/** Index of the CallOptions argument of each wrapped method. */
const REQUESTS: Readonly<Record<string, number>> = {
  has: 1,
  openRead: 1,
  chunks: 1,
  sync: 0,
  get: 1,
  put: 1,
};
const STREAMS: Readonly<Record<string, number>> = { getRecursive: 1, list: 0 };

/** What a test-only wrapper recorded. */
export interface WrapperStats {
  /** Calls per method (requests and stream starts). */
  readonly calls: Record<string, number>;
  /** Calls whose signal fired while they waited (latency). */
  aborted: number;
  /** Calls failed on purpose (faulty). */
  failed: number;
}

const STATS = Symbol("test wrapper stats");

/** The stats of a `latency` or `faulty` instance (through composition handles too). */
export function statsOf(service: object): WrapperStats {
  const stats = (service as { [STATS]?: WrapperStats })[STATS];
  if (stats === undefined) throw new Error("not a latency/faulty test wrapper");
  return stats;
}

/** Total calls recorded. */
export function totalCalls(service: object): number {
  return Object.values(statsOf(service).calls).reduce((a, b) => a + b, 0);
}

function signalOf(args: unknown[], index: number): AbortSignal | undefined {
  return (args[index] as { signal?: AbortSignal } | undefined)?.signal;
}

/** Wraps every request and stream start of `inner` with `before`. */
function wrap<S extends object>(
  inner: S,
  stats: WrapperStats,
  before: (method: string, signal: AbortSignal | undefined) => Promise<void>,
): S {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === STATS) return stats;
      const value: unknown = Reflect.get(target, prop);
      if (typeof prop !== "string" || typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      const request = REQUESTS[prop];
      if (request !== undefined) {
        return async (...args: unknown[]) => {
          stats.calls[prop] = (stats.calls[prop] ?? 0) + 1;
          await before(prop, signalOf(args, request));
          return fn.apply(target, args);
        };
      }
      const stream = STREAMS[prop];
      if (stream !== undefined) {
        return (...args: unknown[]) =>
          (async function* () {
            stats.calls[prop] = (stats.calls[prop] ?? 0) + 1;
            await before(prop, signalOf(args, stream));
            yield* fn.apply(target, args) as AsyncIterable<unknown>;
          })();
      }
      return fn.bind(target);
    },
  });
}

const latencySchema = z.strictObject({
  type: z.literal("latency"),
  inner: refSchema,
  delay_ms: z.number().int().min(0),
});

const faultySchema = z.strictObject({
  type: z.literal("faulty"),
  inner: refSchema,
  fail_fraction: z.number().min(0).max(1),
});

function numberParam(value: string, name: string, form: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) {
    throw new ConfigError(`${form}: query parameter '${name}' must be a number, got '${value}'`);
  }
  return Number(value);
}

function latencyType<K extends ServiceKind>(
  kind: K,
): ServiceType<K, z.infer<typeof latencySchema>> {
  return defineServiceType({
    kind,
    tag: "latency",
    description: "TEST ONLY: adds a fixed delay to every request of an inner store.",
    urlForms: ["latency://?inner=URL&delay_ms=N"],
    schema: latencySchema,
    combinator: true,
    fromUrl(url) {
      const form = "latency://";
      const q = combinatorQuery(url, form, { single: ["inner", "delay_ms"] });
      return {
        type: "latency",
        inner: requiredParam(q, "inner", form),
        delay_ms: numberParam(requiredParam(q, "delay_ms", form), "delay_ms", form),
      };
    },
    references: (config) => [{ kind, field: "inner", ref: config.inner }],
    async build(config, ctx) {
      const [inner] = await resolveMembers(ctx, kind, [{ field: "inner", ref: config.inner }]);
      const stats: WrapperStats = { calls: {}, aborted: 0, failed: 0 };
      return wrap(inner!.service, stats, async (_method, signal) => {
        try {
          await sleep(config.delay_ms, signal);
        } catch (err) {
          if (err instanceof AbortedError) stats.aborted++;
          throw err;
        }
      });
    },
  });
}

function faultyType<K extends ServiceKind>(kind: K): ServiceType<K, z.infer<typeof faultySchema>> {
  return defineServiceType({
    kind,
    tag: "faulty",
    description: "TEST ONLY: fails a fraction of the requests of an inner store as Unavailable.",
    urlForms: ["faulty://?inner=URL&fail_fraction=F"],
    schema: faultySchema,
    combinator: true,
    fromUrl(url) {
      const form = "faulty://";
      const q = combinatorQuery(url, form, { single: ["inner", "fail_fraction"] });
      return {
        type: "faulty",
        inner: requiredParam(q, "inner", form),
        fail_fraction: numberParam(requiredParam(q, "fail_fraction", form), "fail_fraction", form),
      };
    },
    references: (config) => [{ kind, field: "inner", ref: config.inner }],
    async build(config, ctx) {
      const [inner] = await resolveMembers(ctx, kind, [{ field: "inner", ref: config.inner }]);
      const stats: WrapperStats = { calls: {}, aborted: 0, failed: 0 };
      let acc = 0;
      return wrap(inner!.service, stats, async (method) => {
        acc += config.fail_fraction;
        if (acc >= 1 - 1e-9) {
          acc -= 1;
          stats.failed++;
          throw new UnavailableError(`faulty '${ctx.instanceName}': injected failure of ${method}`);
        }
      });
    },
  });
}

/** The default registry plus the test-only `latency` and `faulty` types, for every kind. */
export function testRegistry(): Registry {
  const registry = defaultRegistry().clone();
  for (const kind of ["blob", "directory", "pathinfo"] as const) {
    registry.register(latencyType(kind)).register(faultyType(kind));
  }
  return registry;
}
