import { basename, join, resolve } from "node:path";
import { Command } from "commander";
import { strataDataDir } from "../../composition/open.js";
import { importPath } from "../../store/import/fs-import.js";
import {
  fingerprintTree,
  ImportCache,
  type TreeFingerprint,
} from "../../store/import/fs-import-cache.js";
import type { PathInfoService } from "../../store/pathinfo/service.js";
import { StorePath } from "../../store/store-path.js";
import { Progress } from "../progress.js";
import { addStoreOptions, openStores, type StoreFlags } from "../store-options.js";

export function importCommand(): Command {
  return addStoreOptions(
    new Command("import")
      .description(
        "import files or directories into the store as content-addressed store paths " +
          "(the same path `nix-store --add PATH` creates); prints one store path per input",
      )
      .argument("<path...>", "files, directories or symlinks to import")
      .option("-n, --name <name>", "store path name (only with one PATH; default: its basename)")
      .option("-q, --quiet", "no progress output")
      .option(
        "--no-stat-cache",
        "read every file, even of a tree whose entries' sizes, inodes and times are all as at " +
          "its last import (by default such a tree is answered from the store; the cache lives " +
          "in $XDG_DATA_HOME/strata/import-cache)",
      ),
  ).action(async (paths: string[], opts: ImportFlags) => {
    if (opts.name !== undefined && paths.length > 1) {
      throw new Error("--name can only be used with a single PATH");
    }
    await using stores = await openStores(opts);
    const cache = opts.statCache
      ? new ImportCache(join(strataDataDir(), "import-cache"))
      : undefined;
    const progress = new Progress({ label: "imported", quiet: opts.quiet === true });
    try {
      for (const path of paths) {
        const name = opts.name ?? basename(resolve(path));
        const fp = cache === undefined ? undefined : tryFingerprint(path);
        let storePath =
          cache === undefined || fp === undefined
            ? undefined
            : await cachedResult(cache, stores.pathInfos, path, name, fp);
        if (storePath === undefined) {
          const info = await importPath(path, stores, {
            name,
            onFile: (size) => progress.add(0, size),
          });
          storePath = info.storePath.absolute;
          if (fp !== undefined) cache?.record(path, name, fp, storePath);
        }
        progress.add(1, 0);
        progress.done();
        process.stdout.write(`${storePath}\n`);
      }
    } finally {
      progress.done();
    }
  });
}

interface ImportFlags extends StoreFlags {
  name?: string;
  quiet?: boolean;
  statCache: boolean;
}

/** The fingerprint, or undefined when the tree cannot be walked (the import then reports why). */
function tryFingerprint(path: string): TreeFingerprint | undefined {
  try {
    return fingerprintTree(path);
  } catch {
    return undefined;
  }
}

/** The store path of an earlier import of this very tree state, if the store still has it. */
async function cachedResult(
  cache: ImportCache,
  pathInfos: PathInfoService,
  path: string,
  name: string,
  fp: TreeFingerprint,
): Promise<string | undefined> {
  const hit = cache.lookup(path, name, fp);
  if (hit === undefined) return undefined;
  let sp: StorePath;
  try {
    sp = StorePath.parseAbsolute(hit);
  } catch {
    return undefined;
  }
  const info = await pathInfos.get(sp.digest);
  return info?.storePath.absolute === hit ? hit : undefined;
}
