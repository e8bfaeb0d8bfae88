/**
 * The store flags every command that opens a store accepts, and opening the
 * three services from them. Precedence: flag, then the environment
 * variable, then the default of ARCHITECTURE §7.
 */
import { type Command, Option } from "commander";
import type { BlobService } from "../castore/blob/service.js";
import type { DirectoryService } from "../castore/directory/service.js";
import type { PathInfoService } from "../store/pathinfo/service.js";

export interface StoreFlags {
  blobServiceAddr?: string;
  directoryServiceAddr?: string;
  pathInfoServiceAddr?: string;
}

/** The three services of a store, closed together. */
export interface Stores extends AsyncDisposable {
  readonly blobs: BlobService;
  readonly directories: DirectoryService;
  readonly pathInfos: PathInfoService;
  close(): Promise<void>;
}

export function addStoreOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "--blob-service-addr <url>",
        "blob service URL (default: objectstore+file://$XDG_DATA_HOME/strata/blobs)",
      ).env("BLOB_SERVICE_ADDR"),
    )
    .addOption(
      new Option(
        "--directory-service-addr <url>",
        "directory service URL (default: lmdb://$XDG_DATA_HOME/strata/directories)",
      ).env("DIRECTORY_SERVICE_ADDR"),
    )
    .addOption(
      new Option(
        "--path-info-service-addr <url>",
        "path info service URL (default: lmdb://$XDG_DATA_HOME/strata/pathinfo)",
      ).env("PATH_INFO_SERVICE_ADDR"),
    );
}

/**
 * Opens the store the flags describe. An empty flag or variable counts as
 * unset (`BLOB_SERVICE_ADDR= strata ...`), as in defaultServiceUrls.
 * Loaded lazily so that commands that
 * need no store (nar pack, store-path) do not pay for zod and LMDB.
 */
export async function openStores(flags: StoreFlags): Promise<Stores> {
  const { defaultServiceUrls } = await import("../composition/open.js");
  const { defaultRegistry } = await import("../composition/default-registry.js");
  const defaults = defaultServiceUrls();
  const registry = defaultRegistry();
  const opened: { close(): Promise<void> }[] = [];
  try {
    const blobs = await registry.build("blob", flags.blobServiceAddr || defaults.blob);
    opened.push(blobs);
    const directories = await registry.build(
      "directory",
      flags.directoryServiceAddr || defaults.directory,
    );
    opened.push(directories);
    const pathInfos = await registry.build(
      "pathinfo",
      flags.pathInfoServiceAddr || defaults.pathinfo,
    );
    opened.push(pathInfos);
    const close = async (): Promise<void> => {
      await Promise.all(opened.map((s) => s.close()));
    };
    return { blobs, directories, pathInfos, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
    throw err;
  }
}
