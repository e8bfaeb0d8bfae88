/**
 * `npm run bench [-- SECTION...]`: strata's hot paths against reference
 * tools, measured in the same run on the same input. Prints time ratios and
 * peak RSS. Sections: nar (NAR pack/hash vs Nix), blob (objectstore+file vs
 * cp/cat), store (import / re-import / nar dump vs Nix, NAR calculation),
 * kv (LMDB directory put/get rates), http (binary cache vs nginx), grpc (daemon
 * and clients vs a raw socket). Default: all.
 *
 * Env: STRATA_BENCH_DIR (where the generated tree is cached, default
 * $TMPDIR/strata-bench), STRATA_BENCH_RUNS (runs per command, default 5).
 */
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchBlobs } from "./blob.js";
import { benchGrpc } from "./grpc.js";
import { benchHttp } from "./http.js";
import { benchKv } from "./kv.js";
import { compare, formatComparison } from "./measure.js";
import { STRATA_BIN_FOR_BENCH } from "./paths.js";
import { benchStore } from "./store.js";
import { ensureTree } from "./tree.js";

const runs = Number(process.env.STRATA_BENCH_RUNS ?? 5);
const dir = process.env.STRATA_BENCH_DIR ?? join(tmpdir(), "strata-bench");
const log = (line: string): void => console.log(line);

function have(cmd: string): boolean {
  return spawnSync("bash", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function treeStats(tree: string): string {
  const r = spawnSync(
    "bash",
    ["-c", `du -sb --apparent-size '${tree}' | cut -f1; find '${tree}' -type f | wc -l`],
    {
      encoding: "utf8",
    },
  );
  const [bytes, files] = r.stdout.trim().split("\n");
  return `${(Number(bytes) / 2 ** 20).toFixed(0)} MiB apparent size, ${files} regular files`;
}

async function benchNar(): Promise<void> {
  log("== NAR: strata vs Nix ==");
  log("generating/reusing the benchmark tree ...");
  const tree = ensureTree(join(dir, "v3"));
  log(`tree: ${tree} (${treeStats(tree)}), ${runs} runs per command, page cache warm`);
  if (!have("nix-store")) {
    log("SKIPPED Nix comparisons: nix-store not installed (apt-get install -y nix-bin)");
    return;
  }
  const strata = `${process.execPath} ${STRATA_BIN_FOR_BENCH}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NIX_CONFIG: "experimental-features = nix-command",
  };
  delete env.NIX_REMOTE;
  const pack = compare(
    "NAR serialisation to /dev/null",
    `${strata} nar pack '${tree}' > /dev/null`,
    `nix-store --dump '${tree}' > /dev/null`,
    runs,
    env,
  );
  log(formatComparison(pack, "strata nar pack", "nix-store --dump"));
  const hash = compare(
    "NAR hash (sha256)",
    `${strata} nar hash '${tree}' > /dev/null`,
    `nix hash path '${tree}' > /dev/null`,
    runs,
    env,
  );
  log(formatComparison(hash, "strata nar hash", "nix hash path"));
}

const sections: Record<string, () => Promise<void>> = {
  nar: benchNar,
  blob: async () => {
    log("== blobs: objectstore+file vs cp / cat ==");
    await benchBlobs(log);
  },
  store: async () => {
    log("== store pipelines: import, re-import, nar dump, NAR calculation ==");
    await benchStore(log, ensureTree(join(dir, "v3")), Math.min(runs, 3));
  },
  kv: async () => {
    log("== LMDB directory service ==");
    await benchKv(log);
  },
  http: async () => {
    log("== binary cache: strata serve vs nginx (cache shootout) ==");
    await benchHttp(log);
  },
  grpc: async () => {
    log("== gRPC daemon: blob Read/Put vs a raw socket, small request rates ==");
    await benchGrpc(log);
  },
};

const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!(name in sections)) {
    console.error(`unknown bench section '${name}' (known: ${Object.keys(sections).join(", ")})`);
    process.exit(2);
  }
}
for (const [name, run] of Object.entries(sections)) {
  if (wanted.length === 0 || wanted.includes(name)) await run();
}
