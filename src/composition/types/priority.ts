/**
 * `priority` — several stores asked one after another, first hit wins, for
 * all three kinds (semantics: castore/combinators/select.ts and the
 * `Select*Service` classes). A failing store is skipped with a warning;
 * writes go to the first store.
 *
 * Config: { type = "priority", stores = [REF, ...], negative_ttl_ms = N }
 * URL:    `priority://?stores=URL&stores=URL...[&negative_ttl_ms=N]`
 *         (inner URLs percent-escaped where they contain `%`, `&` or `#`).
 */
import { z } from "zod";
import { prioritySelector, type Selector } from "../../castore/combinators/select.js";
import {
  type BuildContext,
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
  listField,
  negativeTtlSchema,
  refSchema,
  resolveMembers,
} from "./combinator-parts.js";

/** `stores` of priority and race. */
export const storesSchema = z
  .array(refSchema)
  .min(1, "needs at least one store")
  .describe("The stores, in order. Writes go to the first one.");

const priorityConfigSchema = z
  .strictObject({
    type: z.literal("priority"),
    stores: storesSchema,
    negative_ttl_ms: negativeTtlSchema,
  })
  .describe(
    "Stores asked one after another; the first that has the item answers. A failing store is skipped with a warning. Writes go to the first store.",
  );

export type PriorityConfig = z.infer<typeof priorityConfigSchema>;

/** Builds the kind's Select*Service over the resolved stores. */
export async function buildSelect<K extends ServiceKind>(
  kind: K,
  ctx: BuildContext,
  stores: readonly (string | { readonly type: string })[],
  selector: Selector,
  negativeTtlMs: number | undefined,
): Promise<ServiceByKind[K]> {
  const members = await resolveMembers(
    ctx,
    kind,
    stores.map((ref, i) => ({ field: listField("stores", i), ref })),
  );
  const deps = combinatorDeps(ctx, combinatorModule(kind, selector.name));
  const extra = defined({ negativeTtlMs });
  // One branch per kind: each class is typed for its own service interface
  // (`members` holds services of kind K, which the branch narrows to).
  if (kind === "blob") {
    const { SelectBlobService } = await import("../../castore/blob/combinators/select.js");
    return new SelectBlobService(
      { stores: members as never, selector, ...extra },
      deps,
    ) as unknown as ServiceByKind[K];
  }
  if (kind === "directory") {
    const { SelectDirectoryService } = await import(
      "../../castore/directory/combinators/select.js"
    );
    return new SelectDirectoryService(
      { stores: members as never, selector, ...extra },
      deps,
    ) as unknown as ServiceByKind[K];
  }
  const { SelectPathInfoService } = await import("../../store/pathinfo/combinators/select.js");
  return new SelectPathInfoService(
    { stores: members as never, selector, ...extra },
    deps,
  ) as unknown as ServiceByKind[K];
}

/** The `references` of priority and race configs. */
export function storeReferences(
  kind: ServiceKind,
  stores: readonly (string | { readonly type: string })[],
): { kind: ServiceKind; field: string; ref: string | { readonly type: string } }[] {
  return stores.map((ref, i) => ({ kind, field: listField("stores", i), ref }));
}

const FORM = "priority://";

function priorityFromUrl(url: URL): PriorityConfig {
  const q = combinatorQuery(url, FORM, { single: ["negative_ttl_ms"], multi: ["stores"] });
  return {
    type: "priority",
    stores: [...(q.multi.get("stores") ?? [])],
    ...defined({ negative_ttl_ms: intParam(q, "negative_ttl_ms", FORM) }),
  };
}

function priorityType<K extends ServiceKind>(kind: K): ServiceType<K, PriorityConfig> {
  return defineServiceType({
    kind,
    tag: "priority",
    description:
      "Stores asked one after another; the first that has the item answers. A failing store is skipped with a warning. Writes go to the first store.",
    urlForms: ["priority://?stores=URL&stores=URL..."],
    schema: priorityConfigSchema,
    combinator: true,
    fromUrl: priorityFromUrl,
    references: (config) => storeReferences(kind, config.stores),
    build: (config, ctx) =>
      buildSelect(kind, ctx, config.stores, prioritySelector, config.negative_ttl_ms),
  });
}

export const priorityBlobType: ServiceType<"blob", PriorityConfig> = priorityType("blob");
export const priorityDirectoryType: ServiceType<"directory", PriorityConfig> =
  priorityType("directory");
export const priorityPathInfoType: ServiceType<"pathinfo", PriorityConfig> =
  priorityType("pathinfo");
