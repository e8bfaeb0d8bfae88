/**
 * Times shell commands the same way for strata and the reference tools:
 * wall clock around the child, peak RSS from /usr/bin/time when installed.
 * Runs are interleaved (A, B, A, B, ...) so load changes hit both sides.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Sample {
  wallS: number;
  maxRssKiB: number | undefined;
}

const TIME = "/usr/bin/time";

export function runOnce(cmd: string, env: NodeJS.ProcessEnv = process.env): Sample {
  const dir = mkdtempSync(join(tmpdir(), "strata-bench-"));
  const timeFile = join(dir, "time");
  const useTime = existsSync(TIME);
  const argv = useTime
    ? [TIME, "-f", "%M", "-o", timeFile, "bash", "-c", cmd]
    : ["bash", "-c", cmd];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "inherit"], env });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`benchmark command failed (${r.status}): ${cmd}`);
  const maxRssKiB = useTime
    ? Number(readFileSync(timeFile, "utf8").trim().split("\n").pop())
    : undefined;
  rmSync(dir, { recursive: true, force: true });
  return { wallS, maxRssKiB };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Comparison {
  label: string;
  ours: Sample[];
  reference: Sample[];
}

export function compare(
  label: string,
  ours: string,
  reference: string,
  runs: number,
  env?: NodeJS.ProcessEnv,
): Comparison {
  runOnce(ours, env); // warm-up: page cache, JIT-less startup paths
  runOnce(reference, env);
  const a: Sample[] = [];
  const b: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    a.push(runOnce(ours, env));
    b.push(runOnce(reference, env));
  }
  return { label, ours: a, reference: b };
}

export function formatComparison(c: Comparison, oursName: string, refName: string): string {
  const ow = median(c.ours.map((s) => s.wallS));
  const rw = median(c.reference.map((s) => s.wallS));
  const rss = (xs: Sample[]): string => {
    const v = xs.map((s) => s.maxRssKiB).filter((x): x is number => x !== undefined);
    return v.length ? `${(Math.max(...v) / 1024).toFixed(0)} MiB` : "n/a";
  };
  return [
    `${c.label}`,
    `  ${oursName.padEnd(28)} median ${ow.toFixed(3)} s   peak RSS ${rss(c.ours)}`,
    `  ${refName.padEnd(28)} median ${rw.toFixed(3)} s   peak RSS ${rss(c.reference)}`,
    `  ratio strata/reference: ${(ow / rw).toFixed(2)}`,
  ].join("\n");
}
