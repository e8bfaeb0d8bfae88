/** Imports a path on disk into the store, like `nix-store --add`. Node-only (reads the file system). */
import { basename, resolve } from "node:path";
import type { CallOptions } from "../../castore/call-options.js";
import { contentAddressedStorePath } from "../content-address.js";
import type { PathInfo } from "../path-info.js";
import type { PathInfoService } from "../pathinfo/service.js";
import { ingestPath } from "./fs-ingest.js";
import type { CastoreWriters, IngestInit } from "./ingest-source.js";

export interface ImportPathInit extends IngestInit {
  /** Store path name (default: the basename of the path, as Nix does). */
  name?: string;
}

export interface StoreWriters extends CastoreWriters {
  readonly pathInfos: PathInfoService;
}

/**
 * Imports `path` as a recursive-SHA-256 content-addressed store path (the
 * path `nix-store --add` creates). The PathInfo is written last, after all
 * the castore content it references is durable.
 */
export async function importPath(
  path: string,
  services: StoreWriters,
  init: ImportPathInit = {},
  options: CallOptions = {},
): Promise<PathInfo> {
  const name = init.name ?? basename(resolve(path));
  const ca = { method: "nar", algo: "sha256" } as const;
  // Validate the name before reading anything.
  contentAddressedStorePath(name, { ...ca, digest: new Uint8Array(32) });
  const { node, narSha256, narSize } = await ingestPath(path, services, init, options);
  const storePath = contentAddressedStorePath(name, { ...ca, digest: narSha256 });
  const info: PathInfo = {
    storePath,
    node,
    references: [],
    narSize,
    narSha256,
    signatures: [],
    ca: { ...ca, digest: narSha256 },
  };
  return services.pathInfos.put(info, options);
}
