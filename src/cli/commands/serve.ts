/**
 * `strata serve`: the store as a Nix HTTP binary cache (nar-bridge) and,
 * unless `--grpc-listen-address none`, as the Tvix/Snix gRPC store services.
 * Prints the URLs it listens on (stdout, one `label: value` per line), runs
 * until SIGINT/SIGTERM, then shuts down gracefully.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { strataDataDir } from "../../composition/open.js";
import { ConfigError } from "../../errors.js";
import {
  formatPublicKey,
  parseSecretKey,
  publicKeyOf,
  type SecretKey,
} from "../../store/signature.js";
import { addStoreOptions, openStores, type StoreFlags } from "../store-options.js";

export interface ServeFlags extends StoreFlags {
  listenAddress: string;
  grpcListenAddress: string;
  signingKeyFile: string[];
  allowUpload?: boolean;
  uploadCredentialsFile?: string;
  priority: string;
  narIndex?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `$XDG_DATA_HOME/strata/nar-bridge` (next to the embedded default store). */
function defaultNarIndexDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(strataDataDir(env), "nar-bridge");
}

function readKey(file: string): SecretKey {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    throw new ConfigError(`cannot read the signing key file '${file}'`, { cause });
  }
  try {
    return parseSecretKey(text);
  } catch (cause) {
    throw new ConfigError(`'${file}' is not a Nix secret key (nix key generate-secret)`, {
      cause,
    });
  }
}

export function serveCommand(): Command {
  return addStoreOptions(
    new Command("serve")
      .description(
        "serve the store as a Nix HTTP binary cache (narinfo + NARs rendered from the store, uploads from `nix copy --to`) and over gRPC",
      )
      .option(
        "--listen-address <addr>",
        "HTTP binary cache address: HOST:PORT, [V6]:PORT or unix:///PATH",
        "[::1]:9000",
      )
      .option(
        "--grpc-listen-address <addr>",
        "gRPC store services address (HOST:PORT, unix:///PATH), or 'none'",
        "[::1]:8000",
      )
      .option(
        "--signing-key-file <file>",
        "sign narinfos with this Nix secret key (nix key generate-secret); repeatable",
        collect,
        [],
      )
      .option("--allow-upload", "accept uploads (nix copy --to) from clients with credentials")
      .option(
        "--upload-credentials-file <file>",
        "lines 'user:password' for HTTP basic auth of uploads (required with --allow-upload)",
      )
      .option("--priority <n>", "Priority in nix-cache-info (lower is preferred by Nix)", "30")
      .option(
        "--nar-index <dir>",
        "where uploads and served NARs are indexed (LMDB); 'memory' keeps it in memory (default: $XDG_DATA_HOME/strata/nar-bridge)",
      ),
  ).action(async (opts: ServeFlags) => {
    await serve(opts);
  });
}

export async function serve(opts: ServeFlags): Promise<void> {
  // Everything that can be wrong with the flags is checked before anything is opened.
  const { parseListenAddress } = await import("../../server/grpc/listen.js");
  const { UploadCredentials } = await import("../../server/http/auth.js");
  const priority = Number(opts.priority);
  if (!/^\d{1,9}$/.test(opts.priority) || !Number.isSafeInteger(priority)) {
    throw new ConfigError(`--priority '${opts.priority}' is not a non-negative integer`);
  }
  if (opts.allowUpload === true && opts.uploadCredentialsFile === undefined) {
    throw new ConfigError(
      "--allow-upload needs --upload-credentials-file FILE (lines 'user:password'): uploads are never anonymous",
    );
  }
  if (opts.allowUpload !== true && opts.uploadCredentialsFile !== undefined) {
    throw new ConfigError("--upload-credentials-file is only used with --allow-upload");
  }
  const credentials =
    opts.allowUpload === true ? UploadCredentials.fromFile(opts.uploadCredentialsFile!) : undefined;
  const keys = opts.signingKeyFile.map(readKey);
  const httpAddress = parseListenAddress(opts.listenAddress);
  const grpcAddress =
    opts.grpcListenAddress === "none" ? undefined : parseListenAddress(opts.grpcListenAddress);

  const { HttpCacheServer, listenerUrl } = await import("../../server/http/server.js");
  const { NarIndex } = await import("../../server/http/nar-index.js");
  await using stores = await openStores(opts);
  const indexDir = opts.narIndex ?? defaultNarIndexDir();
  const index = indexDir === "memory" ? NarIndex.memory() : NarIndex.open(indexDir);
  try {
    const http = new HttpCacheServer({
      stores,
      index,
      signingKeys: keys,
      priority,
      ...(credentials !== undefined && { uploadCredentials: credentials }),
    });
    const closers: (() => Promise<void>)[] = [() => http.close()];
    try {
      const bound = await http.listen(httpAddress);
      const lines = [`binary cache: ${listenerUrl(bound)}`];
      lines.push(
        `uploads: ${credentials === undefined ? "disabled" : "allowed with HTTP basic auth"}`,
      );
      for (const k of keys) lines.push(`public key: ${formatPublicKey(publicKeyOf(k))}`);
      if (grpcAddress !== undefined) {
        const { GrpcServer } = await import("../../server/grpc/server.js");
        const grpc = new GrpcServer({ stores });
        closers.push(() => grpc.close());
        for (const b of await grpc.listen([grpcAddress])) {
          lines.push(
            `gRPC: ${b.address.kind === "tcp" ? `grpc+http://${b.display}` : b.address.kind === "unix" ? `grpc+unix://${b.address.path}` : b.display}`,
          );
        }
      }
      process.stdout.write(`${lines.join("\n")}\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      process.stderr.write("strata serve: shutting down\n");
    } finally {
      await Promise.all(closers.map((c) => c()));
    }
  } finally {
    await index.close();
  }
}
