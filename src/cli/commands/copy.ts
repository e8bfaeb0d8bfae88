/**
 * `strata copy`: imports a closure from the local Nix store, keeping store
 * paths, references, deriver, signatures and content addresses. The
 * reference graph comes from `nix path-info --json --recursive` output or
 * from an `exportReferencesGraph` JSON file.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { bytesEqual, toHex } from "../../castore/bytes.js";
import { IntegrityError, InvalidInputError } from "../../errors.js";
import { parseContentAddress } from "../../store/content-address.js";
import { ingestPath } from "../../store/import/fs-ingest.js";
import type { PathInfo } from "../../store/path-info.js";
import { parseSignature } from "../../store/signature.js";
import { STORE_DIR, StorePath } from "../../store/store-path.js";
import { Progress } from "../progress.js";
import { addStoreOptions, openStores, type StoreFlags } from "../store-options.js";
import { parseSha256 } from "./nar-import.js";

/** One path of the closure, as Nix describes it. */
export interface NixPathEntry {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  deriver?: string;
  signatures?: string[];
  ca?: string;
}

/**
 * Reads `nix path-info --json [-r]` output (an array of objects with `path`)
 * or an `exportReferencesGraph` file (`{ "<name>": [ { "path": ... } ] }`,
 * Nix's structured-attrs form), validating the fields we use.
 */
export function parseClosureJson(text: string, where: string): NixPathEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new InvalidInputError(`${where}: not JSON`, { cause });
  }
  const list: unknown[] = Array.isArray(doc)
    ? doc
    : typeof doc === "object" && doc !== null
      ? Object.values(doc).flatMap((v) => (Array.isArray(v) ? v : []))
      : [];
  if (list.length === 0) throw new InvalidInputError(`${where}: no store paths found`);
  return list.map((raw, i) => {
    const e = raw as Partial<Record<keyof NixPathEntry, unknown>>;
    const at = `${where}[${i}]`;
    if (typeof e.path !== "string") throw new InvalidInputError(`${at}: missing "path"`);
    if (typeof e.narHash !== "string") throw new InvalidInputError(`${at}: missing "narHash"`);
    if (typeof e.narSize !== "number") throw new InvalidInputError(`${at}: missing "narSize"`);
    if (!Array.isArray(e.references)) throw new InvalidInputError(`${at}: missing "references"`);
    return e as NixPathEntry;
  });
}

/** Dependencies before dependents (self-references ignored); rejects references outside the closure. */
export function topoSort(entries: readonly NixPathEntry[]): NixPathEntry[] {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const out: NixPathEntry[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (e: NixPathEntry): void => {
    if (state.get(e.path) === "done") return;
    if (state.get(e.path) === "visiting")
      throw new InvalidInputError(`reference cycle through ${e.path}`);
    state.set(e.path, "visiting");
    for (const r of e.references) {
      if (r === e.path) continue;
      const dep = byPath.get(r);
      if (dep === undefined)
        throw new InvalidInputError(`${e.path} refers to ${r}, which is not in the closure given`);
      visit(dep);
    }
    state.set(e.path, "done");
    out.push(e);
  };
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : 1))) visit(e);
  return out;
}

export function copyCommand(): Command {
  return addStoreOptions(
    new Command("copy")
      .description(
        "import a closure from the local Nix store, keeping store paths, references, deriver and signatures. " +
          "FILE is the output of `nix path-info --json --recursive PATH...` or an exportReferencesGraph JSON file; " +
          "'-' reads it from stdin",
      )
      .argument("<file>", "closure description (JSON), or - for stdin")
      .option(
        "--store-root <dir>",
        "read the paths below this chroot store root (as `nix --store DIR` uses)",
        "",
      )
      .option("-q, --quiet", "no progress output"),
  ).action(async (file: string, opts: StoreFlags & { storeRoot: string; quiet?: boolean }) => {
    const text = file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
    const entries = topoSort(parseClosureJson(text, file === "-" ? "stdin" : file));
    await using stores = await openStores(opts);
    const progress = new Progress({
      label: "copied",
      totalItems: entries.length,
      totalBytes: entries.reduce((n, e) => n + e.narSize, 0),
      quiet: opts.quiet === true,
    });
    try {
      for (const e of entries) {
        const storePath = StorePath.parseAbsolute(e.path);
        const existing = await stores.pathInfos.get(storePath.digest);
        if (existing === undefined) {
          const narSha256 = parseSha256(e.narHash);
          const onDisk = join(opts.storeRoot, STORE_DIR, storePath.basename);
          const r = await ingestPath(onDisk, stores);
          if (!bytesEqual(r.narSha256, narSha256) || r.narSize !== e.narSize) {
            throw new IntegrityError(
              `${e.path} on disk does not match its metadata: NAR sha256 ${toHex(r.narSha256)} (${r.narSize} bytes), ` +
                `expected ${toHex(narSha256)} (${e.narSize} bytes)`,
            );
          }
          const info: PathInfo = {
            storePath,
            node: r.node,
            references: e.references.map((p) => StorePath.parseAbsolute(p)),
            narSize: r.narSize,
            narSha256,
            signatures: (e.signatures ?? []).map(parseSignature),
            ...(e.deriver === undefined ? {} : { deriver: StorePath.parseAbsolute(e.deriver) }),
            ...(e.ca === undefined ? {} : { ca: parseContentAddress(e.ca) }),
          };
          await stores.pathInfos.put(info);
        }
        progress.add(1, e.narSize);
        process.stdout.write(`${e.path}\n`);
      }
    } finally {
      progress.done();
    }
  });
}
