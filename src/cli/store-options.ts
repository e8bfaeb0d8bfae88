/**
 * The store flags every command that opens a store accepts, and opening the
 * three services from them. Precedence: flag, then the environment
 * variable, then the default of ARCHITECTURE §7.
 *
 * `--config FILE` (a composition config, README "Store composition"): the
 * three roots come from the file. A kind the file does not define uses its
 * `*_SERVICE_ADDR` variable or default, as without `--config`. Giving
 * `--config` and a `--*-service-addr` flag on one command line is an error
 * (two descriptions of one store); the variables, being ambient, only fill
 * in the kinds the file leaves out.
 */
import { type Command, Option } from "commander";
import type { BlobService } from "../castore/blob/service.js";
import type { DirectoryService } from "../castore/directory/service.js";
import type { Registry } from "../composition/registry.js";
import { ConfigError } from "../errors.js";
import type { PathInfoService } from "../store/pathinfo/service.js";

export interface StoreFlags {
  config?: string;
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

/** The `--*-service-addr` options, by their commander attribute name. */
const ADDR_FLAGS = {
  blobServiceAddr: "--blob-service-addr",
  directoryServiceAddr: "--directory-service-addr",
  pathInfoServiceAddr: "--path-info-service-addr",
} as const;

export function addStoreOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "--config <file>",
        "composition config file (TOML or JSON) describing the store; kinds it leaves out use the flags' defaults",
      ),
    )
    .hook("preAction", (command) => {
      if (command.getOptionValue("config") === undefined) return;
      for (const [attr, flag] of Object.entries(ADDR_FLAGS)) {
        if (command.getOptionValueSource(attr) === "cli") {
          throw new ConfigError(
            `--config and ${flag} cannot be combined: the config file describes the store (a kind the file leaves out uses ${flag}'s environment variable or default)`,
          );
        }
      }
    })
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
  if (flags.config !== undefined) {
    return openComposition(flags.config, registry, {
      blob: flags.blobServiceAddr || defaults.blob,
      directory: flags.directoryServiceAddr || defaults.directory,
      pathinfo: flags.pathInfoServiceAddr || defaults.pathinfo,
    });
  }
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

/** The three roots of a composition config file; closing the Stores closes the composition. */
async function openComposition(
  file: string,
  registry: Registry,
  defaults: { blob: string; directory: string; pathinfo: string },
): Promise<Stores> {
  const { openConfigFile } = await import("../composition/config-file.js");
  const composition = await openConfigFile(file, { registry, defaults });
  try {
    const [blobs, directories, pathInfos] = await Promise.all([
      composition.service("blob"),
      composition.service("directory"),
      composition.service("pathinfo"),
    ]);
    const close = (): Promise<void> => composition.close();
    return { blobs, directories, pathInfos, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    await composition.close().catch(() => undefined);
    throw err;
  }
}
