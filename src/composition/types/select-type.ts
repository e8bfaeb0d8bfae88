/**
 * What `priority` and `race` share: the `stores` field, the kind's
 * Select*Service they build (semantics: castore/combinators/select-stores.ts),
 * and the rest of the type definition. They differ only in their tag, their
 * schema and URL, and the strategy (castore/combinators/select.ts).
 */
import { z } from "zod";
import type { Selector } from "../../castore/combinators/select.js";
import type { SelectInit } from "../../castore/combinators/select-stores.js";
import type { CombinatorDeps } from "../../castore/combinators/support.js";
import type {
  ServiceByKind,
  ServiceConfig,
  ServiceKind,
  ServiceType,
  ServiceTypeInfo,
} from "../registry.js";
import { defined, listField, type Ref, refSchema } from "./combinator-parts.js";
import { combinatorType, lazyClass } from "./combinator-type.js";

/** `stores` of priority and race. */
export const storesSchema = z
  .array(refSchema)
  .min(1, "needs at least one store")
  .describe("The stores, in order. Writes go to the first one.");

/** The fields priority and race configs have in common. */
interface SelectConfig extends ServiceConfig {
  readonly stores: readonly Ref[];
  readonly negative_ttl_ms?: number | undefined;
}

/** The kind's Select*Service. */
const SELECT_CLASSES: {
  [K in ServiceKind]: (
    init: SelectInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  blob: lazyClass(
    async () => (await import("../../castore/blob/combinators/select.js")).SelectBlobService,
  ),
  directory: lazyClass(
    async () =>
      (await import("../../castore/directory/combinators/select.js")).SelectDirectoryService,
  ),
  pathinfo: lazyClass(
    async () => (await import("../../store/pathinfo/combinators/select.js")).SelectPathInfoService,
  ),
};

/** A priority or race type of `kind`: its own parts, and the strategy a config asks for. */
export function selectType<K extends ServiceKind, C extends SelectConfig>(
  kind: K,
  info: ServiceTypeInfo<C>,
  selectorOf: (config: NoInfer<C>) => Selector,
): ServiceType<K, C> {
  return combinatorType(kind, info, {
    refs: (config) => config.stores.map((ref, i) => ({ field: listField("stores", i), ref })),
    init: (stores, config) => ({
      stores,
      selector: selectorOf(config),
      ...defined({ negativeTtlMs: config.negative_ttl_ms }),
    }),
    make: SELECT_CLASSES[kind],
  });
}
