/**
 * A deterministic synthetic tree for benchmarks: many small files (the
 * shape of real store paths: man pages, headers, Python modules), a few
 * large ones, symlinks and nested directories. Generated once and reused.
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

export interface TreeSpec {
  /** Number of small files (0.1-16 KiB). */
  smallFiles: number;
  /** Sizes of the large files in MiB. */
  largeMiB: readonly number[];
}

export const DEFAULT_TREE: TreeSpec = { smallFiles: 20000, largeMiB: [96, 64, 32, 16, 8, 4] };

/** Pseudo-random bytes (SHA-256 in counter mode over a seed), fast enough for 300 MiB. */
function fill(buf: Buffer, seed: string): void {
  let i = 0;
  let ctr = 0;
  // One expensive hash per 1 MiB block; the block is the hash repeated with a
  // varying counter so content is not trivially compressible.
  while (i < buf.length) {
    const block = createHash("sha512").update(`${seed}:${ctr++}`).digest();
    for (let j = 0; j < 4096 && i < buf.length; j++) {
      const n = Math.min(block.length, buf.length - i);
      block.copy(buf, i, 0, n);
      block[j % block.length] = (block[j % block.length]! + j) & 0xff;
      i += n;
    }
  }
}

export function ensureTree(dir: string, spec: TreeSpec = DEFAULT_TREE): string {
  const done = join(dir, ".complete");
  if (existsSync(done)) return join(dir, "tree");
  rmSync(dir, { recursive: true, force: true });
  const tmp = join(dir, "tree.tmp");
  mkdirSync(tmp, { recursive: true });
  let rnd = 1;
  const next = (): number => {
    rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
    return rnd;
  };
  for (let i = 0; i < spec.smallFiles; i++) {
    const sub = join(tmp, `pkg${i % 40}`, `lib${(i >> 3) % 25}`);
    mkdirSync(sub, { recursive: true });
    // Low LCG bits are poorly distributed: take the high ones. Mean ~8 KiB.
    const size = 100 + ((next() >> 12) % 16384);
    const buf = Buffer.allocUnsafe(size);
    fill(buf, `small-${i}`);
    const f = join(sub, `file-${i}.dat`);
    writeFileSync(f, buf);
    if (i % 17 === 0) chmodSync(f, 0o755);
    if (i % 29 === 0) symlinkSync(`file-${i}.dat`, join(sub, `link-${i}`));
  }
  mkdirSync(join(tmp, "large"), { recursive: true });
  for (const [i, mib] of spec.largeMiB.entries()) {
    const buf = Buffer.allocUnsafe(mib << 20);
    fill(buf, `large-${i}`);
    writeFileSync(join(tmp, "large", `blob-${i}.bin`), buf);
  }
  renameSync(tmp, join(dir, "tree"));
  writeFileSync(done, "");
  return join(dir, "tree");
}
