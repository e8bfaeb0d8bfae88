/**
 * `npm run bench`: strata's hot paths against the reference tools, measured
 * in the same run on the same input. Prints time ratios and peak RSS.
 *
 * Env: STRATA_BENCH_DIR (where the generated tree is cached, default
 * $TMPDIR/strata-bench), STRATA_BENCH_RUNS (runs per command, default 5).
 */
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compare, formatComparison } from "./measure.js";
import { STRATA_BIN_FOR_BENCH } from "./paths.js";
import { ensureTree } from "./tree.js";

const runs = Number(process.env.STRATA_BENCH_RUNS ?? 5);
const dir = process.env.STRATA_BENCH_DIR ?? join(tmpdir(), "strata-bench");

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

console.log("generating/reusing the benchmark tree ...");
const tree = ensureTree(join(dir, "v3"));
console.log(`tree: ${tree} (${treeStats(tree)}), ${runs} runs per command, page cache warm`);
const strata = `${process.execPath} ${STRATA_BIN_FOR_BENCH}`;
const env: NodeJS.ProcessEnv = {
  ...process.env,
  NIX_CONFIG: "experimental-features = nix-command",
};
delete env.NIX_REMOTE;

if (!have("nix-store")) {
  console.log("SKIPPED Nix comparisons: nix-store not installed (apt-get install -y nix-bin)");
} else {
  const results = [
    compare(
      "NAR serialisation to /dev/null",
      `${strata} nar pack '${tree}' > /dev/null`,
      `nix-store --dump '${tree}' > /dev/null`,
      runs,
      env,
    ),
    compare(
      "NAR hash (sha256)",
      `${strata} nar hash '${tree}' > /dev/null`,
      `nix hash path '${tree}' > /dev/null`,
      runs,
      env,
    ),
  ];
  for (const [i, r] of results.entries()) {
    console.log(
      formatComparison(
        r,
        i === 0 ? "strata nar pack" : "strata nar hash",
        i === 0 ? "nix-store --dump" : "nix hash path",
      ),
    );
  }
}
