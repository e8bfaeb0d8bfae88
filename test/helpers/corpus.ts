/**
 * The deterministic NAR edge-case corpus (test/fixtures/corpus.py, adapted
 * from the shared Nix harness), generated once per machine.
 * test/fixtures/corpus-expected.tsv holds what Nix 2.8 recorded for seed 1.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let dir: string | undefined;

export const FIXTURES = join(
  import.meta.dirname ?? new URL(".", import.meta.url).pathname,
  "../../../test/fixtures",
);

/**
 * Generates the corpus (seed 1, 50 MiB big file) once per machine and
 * returns its directory. Test files run in parallel processes: each builds
 * into its own temp dir and renames it into place; the first one wins.
 */
export function corpusDir(): string {
  if (dir === undefined) {
    const script = join(FIXTURES, "corpus.py");
    const version = createHash("sha256").update(readFileSync(script)).digest("hex").slice(0, 16);
    const final = join(tmpdir(), `strata-corpus-${version}`);
    if (!existsSync(join(final, "corpus"))) {
      const base = mkdtempSync(join(tmpdir(), "strata-corpus-build-"));
      execFileSync(
        "python3",
        [script, "--out", join(base, "corpus"), "--seed", "1", "--big-mib", "50"],
        {
          stdio: ["ignore", "ignore", "inherit"],
        },
      );
      try {
        renameSync(base, final);
      } catch {
        rmSync(base, { recursive: true, force: true }); // another process won the race
      }
    }
    dir = join(final, "corpus");
  }
  return dir;
}

export function corpusItems(): string[] {
  return readdirSync(corpusDir()).sort();
}

export interface ExpectedItem {
  case: string;
  type: string;
  storePath: string;
  narHashNix32: string;
  narHashSri: string;
  narSize: number;
  ca: string;
  narSha256Hex: string;
  flatStorePath: string;
}

/** What Nix 2.8 recorded for each corpus item (record.sh output). */
export function expectedItems(): Map<string, ExpectedItem> {
  const lines = readFileSync(join(FIXTURES, "corpus-expected.tsv"), "utf8")
    .trim()
    .split("\n")
    .slice(1);
  const out = new Map<string, ExpectedItem>();
  for (const line of lines) {
    const f = line.split("\t");
    out.set(f[0]!, {
      case: f[0]!,
      type: f[1]!,
      storePath: f[2]!,
      narHashNix32: f[3]!,
      narHashSri: f[4]!,
      narSize: Number(f[5]),
      ca: f[6]!,
      narSha256Hex: f[7]!,
      flatStorePath: f[8] ?? "",
    });
  }
  return out;
}
