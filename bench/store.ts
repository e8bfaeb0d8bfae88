/**
 * Store pipelines against Nix on the same tree, in the same run:
 * - `strata import` into a fresh default store vs `nix-store --add` into a
 *   fresh chroot store root (target ratio <= 0.8), and a re-import
 *   (target <= 0.3 of the first import): answered by the import stat cache,
 *   and, for comparison, with `--no-stat-cache` (every file read and hashed);
 * - `strata nar dump` vs `nix-store --dump` (target <= 1.0);
 * - NAR calculation over a "far" store with 5 ms added per call, window
 *   64 MiB vs 0 (target >= 5x faster);
 * - peak RSS importing a single 2 GiB file (target < 200 MiB).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryBlobService } from "../src/castore/blob/memory.js";
import type { BlobService } from "../src/castore/blob/service.js";
import { MemoryDirectoryService } from "../src/castore/directory/memory.js";
import { fingerprintTree } from "../src/store/import/fs-import-cache.js";
import { ingestSource } from "../src/store/import/ingest-source.js";
import { NarCalculator } from "../src/store/nar/calculate.js";
import { fsNarSource } from "../src/store/nar/fs-source.js";
import { median, runOnce } from "./measure.js";
import { STRATA_BIN_FOR_BENCH } from "./paths.js";

function slow(inner: BlobService, ms: number): BlobService {
  const wrapped = Object.create(inner) as BlobService;
  const delay = (): Promise<void> => new Promise((r) => setTimeout(r, ms));
  wrapped.openRead = async (d, o) => {
    await delay();
    return inner.openRead(d, o);
  };
  wrapped.has = async (d, o) => {
    await delay();
    return inner.has(d, o);
  };
  return wrapped;
}

export async function benchStore(
  log: (line: string) => void,
  tree: string,
  runs: number,
): Promise<void> {
  const strata = `${process.execPath} ${STRATA_BIN_FOR_BENCH}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NIX_CONFIG: "experimental-features = nix-command",
  };
  delete env.NIX_REMOTE;
  const haveNix =
    spawnSync("bash", ["-c", "command -v nix-store"], { stdio: "ignore" }).status === 0;
  const scratch = mkdtempSync(join(tmpdir(), "strata-bench-store-"));
  const storeEnv = (i: number): string =>
    `XDG_DATA_HOME='${scratch}/xdg-${i}' BLOB_SERVICE_ADDR= DIRECTORY_SERVICE_ADDR= PATH_INFO_SERVICE_ADDR=`;
  try {
    const first: number[] = [];
    const again: number[] = [];
    const againFull: number[] = [];
    if (fingerprintTree(tree).racy) {
      // A tree generated just now is too fresh for the stat cache to record it.
      log("  (tree files are < 2.5 s old: waiting 3 s so the stat cache may record the import)");
      await new Promise((r) => setTimeout(r, 3000));
    }
    const nixAdd: number[] = [];
    const dump: number[] = [];
    const nixDump: number[] = [];
    let rss = 0;
    for (let i = 0; i < runs; i++) {
      const a = runOnce(
        `${storeEnv(i)} ${strata} import --quiet '${tree}' > '${scratch}/path'`,
        env,
      );
      first.push(a.wallS);
      rss = Math.max(rss, a.maxRssKiB ?? 0);
      again.push(
        runOnce(`${storeEnv(i)} ${strata} import --quiet '${tree}' > /dev/null`, env).wallS,
      );
      againFull.push(
        runOnce(
          `${storeEnv(i)} ${strata} import --quiet --no-stat-cache '${tree}' > /dev/null`,
          env,
        ).wallS,
      );
      if (haveNix) {
        nixAdd.push(
          runOnce(`nix-store --store '${scratch}/nix-${i}' --add '${tree}' > /dev/null`, env).wallS,
        );
        rmSync(join(scratch, `nix-${i}`), { recursive: true, force: true });
        dump.push(
          runOnce(`${storeEnv(i)} ${strata} nar dump $(cat '${scratch}/path') > /dev/null`, env)
            .wallS,
        );
        nixDump.push(runOnce(`nix-store --dump '${tree}' > /dev/null`, env).wallS);
      }
      rmSync(join(scratch, `xdg-${i}`), { recursive: true, force: true });
    }
    const f = median(first);
    log(
      `  strata import (fresh default store)  median ${f.toFixed(3)} s   peak RSS ${(rss / 1024).toFixed(0)} MiB`,
    );
    log(
      `  strata import again (all present)    median ${median(again).toFixed(3)} s   ratio to first import ${(median(again) / f).toFixed(2)} (target <= 0.3; stat cache)`,
    );
    log(
      `  ... with --no-stat-cache             median ${median(againFull).toFixed(3)} s   ratio to first import ${(median(againFull) / f).toFixed(2)} (every file read and hashed again)`,
    );
    if (haveNix) {
      const n = median(nixAdd);
      log(
        `  nix-store --add (fresh chroot store) median ${n.toFixed(3)} s   ratio strata/nix ${(f / n).toFixed(2)} (target <= 0.8)`,
      );
      const d = median(dump);
      const nd = median(nixDump);
      log(`  strata nar dump (from the store)     median ${d.toFixed(3)} s`);
      log(
        `  nix-store --dump (of the tree)       median ${nd.toFixed(3)} s   ratio strata/nix ${(d / nd).toFixed(2)} (target <= 1.0)`,
      );
    } else {
      log("  SKIPPED Nix comparisons: nix-store not installed");
    }

    // NAR calculation over a far store.
    const blobs = new MemoryBlobService();
    const directories = new MemoryDirectoryService();
    const { node } = await ingestSource(fsNarSource(tree, { reuseBuffer: true }), {
      blobs,
      directories,
    });
    const far = slow(blobs, 5);
    const time = async (windowBytes: number): Promise<number> => {
      const t0 = performance.now();
      await new NarCalculator(far, directories, { windowBytes, cacheEntries: 0 }).calculate(node);
      return (performance.now() - t0) / 1000;
    };
    const w0 = await time(0);
    const w64 = await time(64 * 1024 * 1024);
    log(
      `  NAR calculation, far store (+5 ms per call): window 0 ${w0.toFixed(2)} s, window 64 MiB ${w64.toFixed(2)} s, speed-up ${(w0 / w64).toFixed(1)}x (target >= 5x)`,
    );
    await blobs.close();
    await directories.close();

    // Peak RSS importing one 2 GiB file.
    const big = join(scratch, "big.bin");
    const r = spawnSync("bash", [
      "-c",
      `head -c ${2 * 1024 * 1024 * 1024} /dev/urandom > '${big}'`,
    ]);
    if (r.status === 0) {
      const s = runOnce(`${storeEnv(99)} ${strata} import --quiet '${big}' > /dev/null`, env);
      log(
        `  import of a 2 GiB file: ${s.wallS.toFixed(2)} s, peak RSS ${s.maxRssKiB === undefined ? "n/a" : `${(s.maxRssKiB / 1024).toFixed(0)} MiB`} (target < 200 MiB)`,
      );
    }
    writeFileSync(join(scratch, "done"), "");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
