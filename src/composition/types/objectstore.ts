/**
 * `objectstore+<store>://` — blobs in an object store. Only local
 * directories (`objectstore+file:///ABSOLUTE/DIR`) exist so far; S3 and the
 * rest of what Snix supports through `object_store` (`objectstore+s3://`,
 * `+gs://`, `+https://`, `+memory://`) are rejected as "not supported yet".
 *
 * URL: `objectstore+file:///ABSOLUTE/DIR`; no host, no query (Snix passes
 * query pairs on as object-store options; the file store has none), no
 * fragment, not `/`.
 * Config, as in Snix: `{ type = "objectstore", object_store_url =
 * "file:///ABSOLUTE/DIR" }`, optionally `object_store_options = {}` (must be
 * empty for file://). Snix's `avg_chunk_size` is not accepted: this backend
 * does not chunk, and a field that would be silently ignored is rejected.
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { ConfigError } from "../../errors.js";
import { defineServiceType, type ServiceType } from "../registry.js";
import {
  checkQuery,
  localPathFromUrl,
  localPathProblem,
  rejectFragment,
  rejectHost,
  schemeVariant,
} from "./url-parts.js";

const SUPPORTED = "objectstore+file:///ABSOLUTE/DIR";

/** What is wrong with `object_store_url`, or undefined. */
function objectStoreUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `'${value}' is not a URL (expected file:///ABSOLUTE/DIR)`;
  }
  if (url.protocol !== "file:") {
    return `${url.protocol}// object stores are not supported yet (only file:///ABSOLUTE/DIR)`;
  }
  // The WHATWG parser already turned file://localhost/ into file:///.
  if (url.host !== "") return `file URLs with a host ('${url.host}') are not supported`;
  if (url.search !== "" || url.hash !== "") {
    return "a file URL takes no query or fragment (object store options go in object_store_options)";
  }
  return localPathProblem(fileURLToPath(url));
}

const objectStoreConfigSchema = z
  .strictObject({
    type: z.literal("objectstore"),
    object_store_url: z
      .string()
      .superRefine((v, ctx) => {
        const problem = objectStoreUrlProblem(v);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
      })
      .describe("Where the objects live; for now file:///ABSOLUTE/DIR."),
    object_store_options: z
      .record(z.string(), z.string())
      .superRefine((opts, ctx) => {
        for (const key of Object.keys(opts)) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: "unknown option (file:// object stores take none)",
          });
        }
      })
      .optional()
      .describe("Options of the object store (credentials, region, ...); none for file://."),
  })
  .describe("Blobs in an object store (for now: a local directory).");

export type ObjectStoreConfig = z.infer<typeof objectStoreConfigSchema>;

function objectStoreFromUrl(url: URL): ObjectStoreConfig {
  const variant = schemeVariant(url);
  if (variant === undefined) {
    throw new ConfigError(`objectstore:// needs the kind of object store, e.g. ${SUPPORTED}`);
  }
  const form = `objectstore+${variant}://`;
  if (variant !== "file") {
    throw new ConfigError(`${form} is not supported yet (supported: ${SUPPORTED})`);
  }
  rejectHost(url, form, `; write ${SUPPORTED}`);
  checkQuery(url, form);
  rejectFragment(url, form);
  const path = localPathFromUrl(url, form);
  if (path === undefined) throw new ConfigError(`${form} needs a path (${SUPPORTED})`);
  // Re-encode from the decoded path rather than re-parsing our URL as file:
  // the file scheme treats '\' and '%' differently from ours.
  return { type: "objectstore", object_store_url: pathToFileURL(path).href };
}

export const objectStoreBlobType: ServiceType<"blob", ObjectStoreConfig> = defineServiceType({
  kind: "blob",
  tag: "objectstore",
  description: "Blobs as files in a local directory (object stores such as S3: later).",
  urlForms: [SUPPORTED],
  schema: objectStoreConfigSchema,
  fromUrl: objectStoreFromUrl,
  build: async (config) => {
    const { FsObjectStoreBlobService } = await import("../../castore/blob/objectstore-fs.js");
    return FsObjectStoreBlobService.open({ root: fileURLToPath(config.object_store_url) });
  },
});
