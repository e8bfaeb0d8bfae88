import { Command } from "commander";
import { contentAddressedStorePath } from "../../store/content-address.js";
import { hashPathNar } from "../../store/nar/fs-hash.js";
import { defaultName } from "./nar.js";

export function storePathCommand(): Command {
  return new Command("store-path")
    .description(
      "print the /nix/store path that `nix-store --add PATH` would create (recursive SHA-256 " +
        "content address, no references), without writing anything",
    )
    .argument("<path>", "file, directory or symlink")
    .option("-n, --name <name>", "store path name (default: the basename of PATH)")
    .action(async (path: string, opts: { name?: string }) => {
      const name = opts.name ?? defaultName(path);
      const { sha256 } = await hashPathNar(path);
      const sp = contentAddressedStorePath(name, { method: "nar", algo: "sha256", digest: sha256 });
      process.stdout.write(`${sp.absolute}\n`);
    });
}
