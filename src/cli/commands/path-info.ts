import { Command } from "commander";
import { toBase64 } from "../../castore/bytes.js";
import { formatContentAddress } from "../../store/content-address.js";
import type { PathInfo } from "../../store/path-info.js";
import { formatSignature } from "../../store/signature.js";
import { StorePath } from "../../store/store-path.js";
import { addStoreOptions, openStores, type StoreFlags, type Stores } from "../store-options.js";
import { requirePathInfo } from "../store-paths.js";

/** The shape of `nix path-info --json` (Nix 2.8), minus registrationTime. */
export function pathInfoJson(info: PathInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {
    path: info.storePath.absolute,
    narHash: `sha256-${toBase64(info.narSha256)}`,
    narSize: info.narSize,
    references: info.references.map((r) => r.absolute).sort(),
  };
  if (info.ca !== undefined) out.ca = formatContentAddress(info.ca);
  if (info.deriver !== undefined) out.deriver = info.deriver.absolute;
  if (info.signatures.length > 0) out.signatures = info.signatures.map(formatSignature);
  return out;
}

/** The closure of `roots` (references followed), sorted by path like Nix prints it. */
export async function closureOf(stores: Stores, roots: readonly StorePath[]): Promise<PathInfo[]> {
  const seen = new Map<string, PathInfo>();
  const queue = [...roots];
  while (queue.length > 0) {
    const sp = queue.shift()!;
    if (seen.has(sp.absolute)) continue;
    const info = await requirePathInfo(stores, sp);
    seen.set(sp.absolute, info);
    for (const r of info.references) if (!seen.has(r.absolute)) queue.push(r);
  }
  return [...seen.values()].sort((a, b) => (a.storePath.absolute < b.storePath.absolute ? -1 : 1));
}

export function pathInfoCommand(): Command {
  return addStoreOptions(
    new Command("path-info")
      .description(
        "show the metadata of store paths: NAR hash (SRI), NAR size, references, deriver, signatures, content address",
      )
      .argument("<store-path...>", "/nix/store/<hash>-<name> paths")
      .option("--json", "print JSON in the shape of `nix path-info --json`")
      .option("-r, --recursive", "show the closure (every path reachable through references)"),
  ).action(async (paths: string[], opts: StoreFlags & { json?: boolean; recursive?: boolean }) => {
    await using stores = await openStores(opts);
    const roots = paths.map((p) => StorePath.parseAbsolute(p));
    const infos = opts.recursive
      ? await closureOf(stores, roots)
      : await Promise.all(roots.map((r) => requirePathInfo(stores, r)));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(infos.map(pathInfoJson))}\n`);
      return;
    }
    const lines: string[] = [];
    for (const info of infos) {
      const j = pathInfoJson(info);
      lines.push(info.storePath.absolute);
      lines.push(`  narHash: ${j.narHash}`, `  narSize: ${info.narSize}`);
      lines.push(`  references:${info.references.length === 0 ? " (none)" : ""}`);
      for (const r of j.references as string[]) lines.push(`    ${r}`);
      if (j.deriver !== undefined) lines.push(`  deriver: ${j.deriver}`);
      if (j.ca !== undefined) lines.push(`  ca: ${j.ca}`);
      for (const s of (j.signatures as string[] | undefined) ?? []) lines.push(`  signature: ${s}`);
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  });
}
