import { Command } from "commander";
import { importPath } from "../../store/import/fs-import.js";
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
      .option("-q, --quiet", "no progress output"),
  ).action(async (paths: string[], opts: StoreFlags & { name?: string; quiet?: boolean }) => {
    if (opts.name !== undefined && paths.length > 1) {
      throw new Error("--name can only be used with a single PATH");
    }
    await using stores = await openStores(opts);
    const progress = new Progress({ label: "imported", quiet: opts.quiet === true });
    try {
      for (const path of paths) {
        const info = await importPath(path, stores, {
          ...(opts.name === undefined ? {} : { name: opts.name }),
          onFile: (size) => progress.add(0, size),
        });
        progress.add(1, 0);
        progress.done();
        process.stdout.write(`${info.storePath.absolute}\n`);
      }
    } finally {
      progress.done();
    }
  });
}
