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
import {
  defineServiceType,
  type ServiceByKind,
  type ServiceConfig,
  type ServiceKind,
  type ServiceType,
} from "../registry.js";
import {
  combinatorDeps,
  combinatorModule,
  defined,
  listField,
  type Ref,
  refSchema,
  resolveMembers,
} from "./combinator-parts.js";

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

/** The kind's Select*Service, loaded on first use. */
const SELECT_CLASSES: {
  [K in ServiceKind]: (
    init: SelectInit<ServiceByKind[K]>,
    deps: CombinatorDeps,
  ) => Promise<ServiceByKind[K]>;
} = {
  blob: async (init, deps) => {
    const { SelectBlobService } = await import("../../castore/blob/combinators/select.js");
    return new SelectBlobService(init, deps);
  },
  directory: async (init, deps) => {
    const { SelectDirectoryService } = await import(
      "../../castore/directory/combinators/select.js"
    );
    return new SelectDirectoryService(init, deps);
  },
  pathinfo: async (init, deps) => {
    const { SelectPathInfoService } = await import("../../store/pathinfo/combinators/select.js");
    return new SelectPathInfoService(init, deps);
  },
};

/** A priority or race type of `kind`: the parts that differ, and the strategy a config asks for. */
export function selectType<K extends ServiceKind, C extends SelectConfig>(
  kind: K,
  parts: Pick<ServiceType<K, C>, "tag" | "description" | "urlForms" | "schema" | "fromUrl">,
  selectorOf: (config: NoInfer<C>) => Selector,
): ServiceType<K, C> {
  return defineServiceType({
    ...parts,
    kind,
    combinator: true,
    references: (config) =>
      config.stores.map((ref, i) => ({ kind, field: listField("stores", i), ref })),
    async build(config, ctx) {
      const selector = selectorOf(config);
      const stores = await resolveMembers(
        ctx,
        kind,
        config.stores.map((ref, i) => ({ field: listField("stores", i), ref })),
      );
      return SELECT_CLASSES[kind](
        { stores, selector, ...defined({ negativeTtlMs: config.negative_ttl_ms }) },
        combinatorDeps(ctx, combinatorModule(kind, selector.name)),
      );
    },
  });
}
