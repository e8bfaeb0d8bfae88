/**
 * `lmdb://` — LMDB-backed (lmdb-js) directory and path info services.
 *
 * URLs:
 * - `lmdb:///ABSOLUTE/PATH` — a persistent database in that directory;
 *   config `{ type = "lmdb", path = "/ABSOLUTE/PATH" }`.
 * - `lmdb://` — a temporary database, removed on close; config
 *   `{ type = "lmdb" }`.
 * No host (`lmdb://foo.example/x` is rejected: it would read as a relative
 * path), no `/` as the path, no query, no fragment. These are the rules Snix
 * applies to its `redb://` URLs, whose test rows we run against `lmdb://`.
 *
 * Snix-style config: Snix's redb config says `is_temporary = true` or
 * `is_temporary = false` + `path`; that field is accepted here too, and must
 * agree with `path`. (The tag stays `lmdb`: a redb file is not an LMDB one.)
 */
import { z } from "zod";
import { defineServiceType, type ServiceKind, type ServiceType } from "../registry.js";
import {
  checkQuery,
  localPathFromUrl,
  localPathProblem,
  rejectFragment,
  rejectHost,
  rejectVariant,
} from "./url-parts.js";

const lmdbConfigSchema = z
  .strictObject({
    type: z.literal("lmdb"),
    path: z
      .string()
      .superRefine((p, ctx) => {
        const problem = localPathProblem(p);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
      })
      .optional()
      .describe("Directory of the database (absolute). Absent: a temporary database."),
    is_temporary: z
      .boolean()
      .optional()
      .describe("Snix compatibility: true = temporary (no path), false = requires path."),
  })
  .superRefine((c, ctx) => {
    if (c.is_temporary === true && c.path !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["is_temporary"],
        message: "a temporary database takes no 'path'",
      });
    }
    if (c.is_temporary === false && c.path === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["path"],
        message: "required when is_temporary is false",
      });
    }
  })
  .describe("LMDB database in a local directory (or a temporary one).");

export type LmdbConfig = z.infer<typeof lmdbConfigSchema>;

const FORM = "lmdb://";

function lmdbFromUrl(url: URL): LmdbConfig {
  rejectVariant(url, FORM);
  rejectHost(url, FORM, "; a path is written lmdb:///ABSOLUTE/PATH");
  checkQuery(url, FORM);
  rejectFragment(url, FORM);
  const path = localPathFromUrl(url, FORM);
  return path === undefined ? { type: "lmdb" } : { type: "lmdb", path };
}

/** Options for the backends' `open`: no path means temporary. */
function openOptions(config: LmdbConfig): { path?: string } {
  return config.path === undefined ? {} : { path: config.path };
}

function lmdbType<K extends ServiceKind>(
  kind: K,
  build: ServiceType<K, LmdbConfig>["build"],
): ServiceType<K, LmdbConfig> {
  return defineServiceType({
    kind,
    tag: "lmdb",
    description: "LMDB database in a local directory (lmdb:// alone: a temporary one).",
    urlForms: ["lmdb:///ABSOLUTE/PATH", "lmdb://"],
    schema: lmdbConfigSchema,
    fromUrl: lmdbFromUrl,
    build,
  });
}

export const lmdbDirectoryType: ServiceType<"directory", LmdbConfig> = lmdbType(
  "directory",
  async (config) => {
    const { LmdbDirectoryService } = await import("../../castore/directory/lmdb.js");
    return LmdbDirectoryService.open(openOptions(config));
  },
);

export const lmdbPathInfoType: ServiceType<"pathinfo", LmdbConfig> = lmdbType(
  "pathinfo",
  async (config) => {
    const { LmdbPathInfoService } = await import("../../store/pathinfo/lmdb.js");
    return LmdbPathInfoService.open(openOptions(config));
  },
);
