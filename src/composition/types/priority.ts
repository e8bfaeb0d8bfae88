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
import { prioritySelector } from "../../castore/combinators/select.js";
import type { ServiceKind, ServiceType } from "../registry.js";
import { combinatorQuery, defined, intParam, negativeTtlSchema } from "./combinator-parts.js";
import { selectType, storesSchema } from "./select-type.js";

const DESCRIPTION =
  "Stores asked one after another; the first that has the item answers. A failing store is skipped with a warning. Writes go to the first store.";

const priorityConfigSchema = z
  .strictObject({
    type: z.literal("priority"),
    stores: storesSchema,
    negative_ttl_ms: negativeTtlSchema,
  })
  .describe(DESCRIPTION);

export type PriorityConfig = z.infer<typeof priorityConfigSchema>;

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
  return selectType(
    kind,
    {
      tag: "priority",
      description: DESCRIPTION,
      urlForms: ["priority://?stores=URL&stores=URL..."],
      schema: priorityConfigSchema,
      fromUrl: priorityFromUrl,
    },
    () => prioritySelector,
  );
}

export const priorityBlobType: ServiceType<"blob", PriorityConfig> = priorityType("blob");
export const priorityDirectoryType: ServiceType<"directory", PriorityConfig> =
  priorityType("directory");
export const priorityPathInfoType: ServiceType<"pathinfo", PriorityConfig> =
  priorityType("pathinfo");
