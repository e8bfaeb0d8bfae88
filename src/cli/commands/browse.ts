/** `strata ls`, `strata cat`, `strata export`: reading store paths back out. */
import { resolve } from "node:path";
import { Command } from "commander";
import { formatB3 } from "../../castore/digest.js";
import { IntegrityError, InvalidInputError } from "../../errors.js";
import { castoreNarSource, castoreReaders } from "../../store/nar/castore-source.js";
import { restoreNar } from "../../store/nar/restore-fs.js";
import { writeNar } from "../../store/nar/writer.js";
import { pipeToStdout, stdoutIsSynchronous } from "../io.js";
import { addStoreOptions, openStores, type StoreFlags } from "../store-options.js";
import { resolveNode } from "../store-paths.js";

export function lsCommand(): Command {
  return addStoreOptions(
    new Command("ls")
      .description("list a store path or a directory below it (format of `nix store ls -l`)")
      .argument("<path>", "/nix/store/<hash>-<name>[/sub/path]")
      .option("-R, --recursive", "list subdirectories too"),
  ).action(async (arg: string, opts: StoreFlags & { recursive?: boolean }) => {
    await using stores = await openStores(opts);
    const { node } = await resolveNode(stores, arg);
    const dec = new TextDecoder();
    const out: string[] = [];
    const line = (prefix: string, n: typeof node): string => {
      switch (n.type) {
        case "directory":
          return `dr-xr-xr-x ${"0".padStart(20)} ${prefix}`;
        case "symlink":
          return `lrwxrwxrwx ${"0".padStart(20)} ${prefix} -> ${dec.decode(n.target)}`;
        case "file":
          return `${n.executable ? "-r-xr-xr-x" : "-r--r--r--"} ${String(n.size).padStart(20)} ${prefix}`;
      }
    };
    if (node.type !== "directory") {
      out.push(line(".", node));
    } else {
      const walk = async (digest: typeof node.digest, prefix: string): Promise<void> => {
        const dir = await stores.directories.get(digest);
        if (dir === undefined) throw new IntegrityError(`directory ${formatB3(digest)} is missing`);
        for (const { name, node: child } of dir.entries) {
          const p = `${prefix}/${dec.decode(name)}`;
          out.push(line(p, child));
          if (opts.recursive && child.type === "directory") await walk(child.digest, p);
        }
      };
      await walk(node.digest, ".");
    }
    if (out.length > 0) process.stdout.write(`${out.join("\n")}\n`);
  });
}

export function catCommand(): Command {
  return addStoreOptions(
    new Command("cat")
      .description("write the contents of a file in the store to stdout")
      .argument("<path>", "/nix/store/<hash>-<name>[/sub/path] naming a regular file"),
  ).action(async (arg: string, opts: StoreFlags) => {
    await using stores = await openStores(opts);
    const { node, path } = await resolveNode(stores, arg);
    if (node.type !== "file")
      throw new InvalidInputError(`'${path}' is a ${node.type}, not a regular file`);
    const reader = await stores.blobs.openRead(node.digest);
    if (reader === undefined)
      throw new IntegrityError(`blob ${formatB3(node.digest)} of '${path}' is missing`);
    try {
      const transient = stdoutIsSynchronous();
      await pipeToStdout(reader.stream(0, { transient }), { transient });
    } finally {
      await reader.close();
    }
  });
}

export function exportCommand(): Command {
  return addStoreOptions(
    new Command("export")
      .description(
        "materialise a store path (or a path below it) at DEST, with executable bits and symlinks; " +
          "DEST must not exist; nothing outside DEST is ever created or followed",
      )
      .argument("<path>", "/nix/store/<hash>-<name>[/sub/path]")
      .argument("<dest>", "where to create it")
      .option("-q, --quiet", "no progress output"),
  ).action(async (arg: string, dest: string, opts: StoreFlags) => {
    await using stores = await openStores(opts);
    const { node } = await resolveNode(stores, arg);
    // Going through the NAR reader re-checks every name, so nothing can
    // escape DEST, and the restore is atomic (temp dir + rename).
    const nar = writeNar(castoreNarSource(node, castoreReaders(stores.blobs, stores.directories)));
    await restoreNar(nar, resolve(dest));
  });
}
