/**
 * `race` — several stores asked concurrently, the first positive answer
 * wins and the others are aborted through their AbortSignal, for all three
 * kinds (semantics: castore/combinators/select.ts). With `hedge_after_ms`,
 * the first store is asked alone and one more is started whenever that long
 * passes without an answer. A failing store is skipped with a warning;
 * writes go to the first store.
 *
 * Config: { type = "race", stores = [REF, ...], hedge_after_ms = N,
 *           negative_ttl_ms = N }
 * URL:    `race://?stores=URL&stores=URL...[&hedge_after_ms=N][&negative_ttl_ms=N]`
 */
import { z } from "zod";
import { raceSelector } from "../../castore/combinators/select.js";
import type { ServiceKind, ServiceType } from "../registry.js";
import { combinatorQuery, defined, intParam, negativeTtlSchema } from "./combinator-parts.js";
import { selectType, storesSchema } from "./select-type.js";

const DESCRIPTION =
  "Stores asked concurrently; the first positive answer wins and the others are aborted. Writes go to the first store.";

const raceConfigSchema = z
  .strictObject({
    type: z.literal("race"),
    stores: storesSchema,
    hedge_after_ms: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe(
        "Ask the first store alone and one more each time this many milliseconds pass without an answer (absent: ask all at once).",
      ),
    negative_ttl_ms: negativeTtlSchema,
  })
  .describe(DESCRIPTION);

export type RaceConfig = z.infer<typeof raceConfigSchema>;

const FORM = "race://";

function raceFromUrl(url: URL): RaceConfig {
  const q = combinatorQuery(url, FORM, {
    single: ["hedge_after_ms", "negative_ttl_ms"],
    multi: ["stores"],
  });
  return {
    type: "race",
    stores: [...(q.multi.get("stores") ?? [])],
    ...defined({
      hedge_after_ms: intParam(q, "hedge_after_ms", FORM),
      negative_ttl_ms: intParam(q, "negative_ttl_ms", FORM),
    }),
  };
}

function raceType<K extends ServiceKind>(kind: K): ServiceType<K, RaceConfig> {
  return selectType(
    kind,
    {
      tag: "race",
      description: DESCRIPTION,
      urlForms: ["race://?stores=URL&stores=URL...[&hedge_after_ms=N]"],
      schema: raceConfigSchema,
      fromUrl: raceFromUrl,
    },
    (config) => raceSelector(config.hedge_after_ms),
  );
}

export const raceBlobType: ServiceType<"blob", RaceConfig> = raceType("blob");
export const raceDirectoryType: ServiceType<"directory", RaceConfig> = raceType("directory");
export const racePathInfoType: ServiceType<"pathinfo", RaceConfig> = raceType("pathinfo");
