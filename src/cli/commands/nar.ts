import { basename, resolve } from "node:path";
import { Command } from "commander";
import { toBase64 } from "../../castore/bytes.js";
import { hashPathNar } from "../../store/nar/fs-hash.js";
import { fsNarStream } from "../../store/nar/fs-nar-stream.js";
import { readNar } from "../../store/nar/reader.js";
import { restoreNar } from "../../store/nar/restore-fs.js";
import { writeNar } from "../../store/nar/writer.js";
import { nixbase32Encode } from "../../store/nixbase32.js";
import { pipeToStdout, readInput, stdoutIsSynchronous } from "../io.js";
import { addStoreOptions, openStores, type StoreFlags } from "../store-options.js";

export function narCommand(): Command {
  const nar = new Command("nar").description(
    "create, inspect, hash and unpack NAR (Nix ARchive) files",
  );

  nar
    .command("pack")
    .description(
      "write the NAR of a file-system path to stdout (same bytes as `nix-store --dump PATH`)",
    )
    .argument("<path>", "file, directory or symlink to serialise")
    .action(async (path: string) => {
      const transient = stdoutIsSynchronous();
      await pipeToStdout(fsNarStream(path, { transient }), { transient });
    });

  nar
    .command("unpack")
    .description(
      "restore a NAR read from stdin (or --file) to DEST, like `nix-store --restore DEST`; " +
        "DEST must not exist, and a bad NAR leaves nothing behind",
    )
    .argument("<dest>", "where to create the file, directory or symlink")
    .option("-f, --file <nar>", "read the NAR from this file instead of stdin")
    .action(async (dest: string, opts: { file?: string }) => {
      await restoreNar(readInput(opts.file), resolve(dest));
    });

  nar
    .command("hash")
    .description(
      "print the SHA-256 of the NAR of PATH, like `nix hash path PATH` (SRI form sha256-<base64>)",
    )
    .argument("<path>", "file, directory or symlink to hash")
    .option("--base32", "print sha256:<nixbase32> instead, like `nix-store -q --hash`")
    .action(async (path: string, opts: { base32?: boolean }) => {
      const { sha256 } = await hashPathNar(path);
      process.stdout.write(
        opts.base32 ? `sha256:${nixbase32Encode(sha256)}\n` : `sha256-${toBase64(sha256)}\n`,
      );
    });

  nar
    .command("ls")
    .description(
      "list the entries of a NAR file, validating it (format of `nix nar ls -lR FILE /`)",
    )
    .argument("[file]", "the NAR file (default: stdin)")
    .action(async (file: string | undefined) => {
      const lines: string[] = [];
      const flush = async (): Promise<void> => {
        if (lines.length === 0) return;
        const text = lines.join("");
        lines.length = 0;
        await pipeToStdout([Buffer.from(text)]);
      };
      const dec = new TextDecoder();
      for await (const ev of readNar(readInput(file))) {
        if (ev.type === "end") continue;
        const p = ev.path.length === 0 ? "." : `./${ev.path.map((c) => dec.decode(c)).join("/")}`;
        if (ev.type === "directory") lines.push(`dr-xr-xr-x ${"0".padStart(20)} ${p}\n`);
        else if (ev.type === "symlink")
          lines.push(`lrwxrwxrwx ${"0".padStart(20)} ${p} -> ${dec.decode(ev.target)}\n`);
        else {
          lines.push(
            `${ev.executable ? "-r-xr-xr-x" : "-r--r--r--"} ${String(ev.size).padStart(20)} ${p}\n`,
          );
          for await (const _ of ev.contents) {
            // drained so the reader validates the contents' framing
          }
        }
        if (lines.length >= 512) await flush();
      }
      await flush();
    });

  addStoreOptions(
    nar
      .command("import")
      .description(
        "ingest a NAR from stdin (or --file) into the store and print its store path; without " +
          "--store-path the content-addressed path (recursive SHA-256, like `nix-store --add`) is computed from --name",
      )
      .option("-f, --file <nar>", "read the NAR from this file instead of stdin")
      .option("--store-path <path>", "the store path to register the NAR under (input-addressed)")
      .option(
        "-n, --name <name>",
        "name of the computed content-addressed store path (without --store-path)",
      )
      .option(
        "--reference <path>",
        "a store path this one refers to (repeatable)",
        collect,
        [] as string[],
      )
      .option(
        "--nar-hash <hash>",
        "reject the NAR unless its SHA-256 is this (sha256-<base64> or sha256:<nix32>)",
      ),
  ).action(
    async (
      opts: StoreFlags & {
        file?: string;
        storePath?: string;
        name?: string;
        reference: string[];
        narHash?: string;
      },
    ) => {
      const { narImport } = await import("./nar-import.js");
      const info = await narImport(readInput(opts.file), opts);
      process.stdout.write(`${info.storePath.absolute}\n`);
    },
  );

  addStoreOptions(
    nar
      .command("dump")
      .description(
        "write the NAR of a store path in the store to stdout (same bytes as `nix-store --dump`)",
      )
      .argument("<store-path>", "/nix/store/<hash>-<name>[/sub/path]"),
  ).action(async (arg: string, opts: StoreFlags) => {
    // Loaded here: they pull in protobuf and BLAKE3, which `nar pack` does not need.
    const { castoreNarSource, castoreReaders } = await import("../../store/nar/castore-source.js");
    const { NarRender, narRenderChunks } = await import("../../store/nar/castore-render-node.js");
    const { NarGeometry } = await import("../../store/nar/geometry.js");
    const { resolveNode } = await import("../store-paths.js");
    await using stores = await openStores(opts);
    const { node } = await resolveNode(stores, arg);
    const transient = stdoutIsSynchronous();
    // The whole-tree renderer is faster but holds the directory closure in
    // memory; beyond ~30 MiB of it, stream directory by directory instead.
    const geometry = await NarGeometry.loadUpTo(node, stores.directories, 100_000);
    let nar: AsyncIterable<Uint8Array>;
    if (geometry !== undefined) {
      const chunks = narRenderChunks(new NarRender(node, geometry, stores.blobs));
      nar = transient ? chunks : copies(chunks);
    } else {
      const readers = castoreReaders(stores.blobs, stores.directories, {}, { transient });
      nar = writeNar(castoreNarSource(node, readers), { transient });
    }
    await pipeToStdout(nar, { transient });
  });

  return nar;
}

/** Copies of chunks that are only valid until the next one (for consumers that keep them). */
async function* copies(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) yield c.slice();
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The default store path name Nix uses for `nix-store --add PATH`. */
export function defaultName(path: string): string {
  return basename(resolve(path));
}
