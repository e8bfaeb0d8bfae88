/**
 * The objectstore+file blob backend against the reference tools, on the same
 * 1 GiB of bytes in the same run:
 *   write: a 1 GiB file read in 1 MiB chunks into a BlobWriter (hash + temp
 *          file + rename) vs `cp SRC DST`;
 *   read:  BlobReader.stream() to the end vs `cat FILE > /dev/null` on the blob file.
 * Page cache warm for both sides; `sync` before every timed step so earlier
 * dirty pages do not bill the next one. Prints MB/s, ratios (higher is better
 * for us) and the RSS peak while streaming.
 * Targets: read >= 0.7 x cat, write >= 0.5 x cp, RSS < 150 MiB.
 *
 * Env: STRATA_BENCH_BLOB_MIB (blob size, default 1024), STRATA_BENCH_RUNS
 * (default 3; the median is reported).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsObjectStoreBlobService } from "../src/castore/blob/objectstore-fs.js";
import type { B3Digest } from "../src/castore/digest.js";

const MiB = 1024 * 1024;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Wall-clock seconds of a shell command (spawn overhead is noise next to 1 GiB). */
function timeShell(cmd: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync("bash", ["-c", cmd], { stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`benchmark command failed (${r.status}): ${cmd}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function flushDirtyPages(): void {
  spawnSync("sync");
}

async function generate(path: string, bytes: number): Promise<void> {
  const fh = await open(path, "w");
  try {
    for (let off = 0; off < bytes; off += MiB) {
      await fh.write(randomBytes(Math.min(MiB, bytes - off)));
    }
  } finally {
    await fh.close();
  }
}

async function writeBlob(store: FsObjectStoreBlobService, src: string): Promise<B3Digest> {
  const fh = await open(src, "r");
  try {
    const buf = Buffer.allocUnsafe(MiB);
    const w = store.openWrite();
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, MiB, null);
      if (bytesRead === 0) break;
      await w.write(buf.subarray(0, bytesRead));
    }
    return await w.close();
  } finally {
    await fh.close();
  }
}

/** Streams the blob to nowhere; returns the byte count and the RSS peak sampled meanwhile. */
async function streamBlob(
  store: FsObjectStoreBlobService,
  digest: B3Digest,
  transient = false,
): Promise<{ bytes: number; peakRss: number }> {
  const reader = await store.openRead(digest);
  if (reader === undefined) throw new Error("the blob just written is missing");
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 2);
  let bytes = 0;
  try {
    for await (const chunk of reader.stream(0, { transient })) bytes += chunk.length;
  } finally {
    clearInterval(timer);
    await reader.close();
  }
  return { bytes, peakRss: Math.max(peakRss, process.memoryUsage.rss()) };
}

export async function benchBlobs(log: (line: string) => void): Promise<void> {
  const sizeMiB = Number(process.env.STRATA_BENCH_BLOB_MIB ?? 1024);
  const runs = Number(process.env.STRATA_BENCH_RUNS ?? 3);
  const bytes = sizeMiB * MiB;
  const dir = await mkdtemp(join(tmpdir(), "strata-bench-blob-"));
  const mbps = (s: number): number => bytes / 1e6 / s;
  try {
    log(`blob objectstore+file: ${sizeMiB} MiB blob, ${runs} runs, page cache warm, in ${dir}`);
    const src = join(dir, "src.bin");
    await generate(src, bytes);
    const ours = { write: [] as number[], read: [] as number[], readTransient: [] as number[] };
    const ref = { cp: [] as number[], cat: [] as number[] };
    let peakRss = 0;
    const rssBefore = process.memoryUsage.rss();
    for (let i = 0; i < runs; i++) {
      const root = join(dir, `store-${i}`);
      const store = await FsObjectStoreBlobService.open({ root });
      try {
        flushDirtyPages();
        let t0 = performance.now();
        const digest = await writeBlob(store, src);
        ours.write.push((performance.now() - t0) / 1000);

        flushDirtyPages();
        const dst = join(dir, "cp.bin");
        ref.cp.push(timeShell(`cp '${src}' '${dst}'`));
        await rm(dst);

        flushDirtyPages();
        // One untimed pass first: the first reader of freshly written pages
        // pays for moving them to the active LRU list; neither side should.
        timeShell(`cat '${store.blobPath(digest)}' > /dev/null`);
        t0 = performance.now();
        const streamed = await streamBlob(store, digest);
        ours.read.push((performance.now() - t0) / 1000);
        if (streamed.bytes !== bytes)
          throw new Error(`streamed ${streamed.bytes} of ${bytes} bytes`);
        peakRss = Math.max(peakRss, streamed.peakRss);

        t0 = performance.now();
        const transient = await streamBlob(store, digest, true);
        ours.readTransient.push((performance.now() - t0) / 1000);
        if (transient.bytes !== bytes)
          throw new Error(`streamed ${transient.bytes} of ${bytes} bytes`);
        peakRss = Math.max(peakRss, transient.peakRss);

        ref.cat.push(timeShell(`cat '${store.blobPath(digest)}' > /dev/null`));
      } finally {
        await store.close();
        await rm(root, { recursive: true, force: true });
      }
    }
    const w = median(ours.write);
    const cp = median(ref.cp);
    const r = median(ours.read);
    const cat = median(ref.cat);
    const line = (what: string, s: number): string =>
      `  ${what.padEnd(34)} median ${s.toFixed(3)} s  ${mbps(s).toFixed(0).padStart(6)} MB/s`;
    log(line("write (BlobWriter, hash + file)", w));
    log(line("cp SRC DST", cp));
    log(`  write ratio ours/cp (throughput): ${(cp / w).toFixed(2)}   (target >= 0.5)`);
    log(line("read (BlobReader.stream)", r));
    const rt = median(ours.readTransient);
    log(line("read (stream, transient: true)", rt));
    log(line("cat FILE > /dev/null", cat));
    // cat reuses one buffer; the like-for-like reader is the transient
    // stream, which is what `strata cat`, NAR rendering and hashing use.
    log(
      `  read ratio transient/cat (throughput): ${(cat / rt).toFixed(2)}   (target >= 0.7; recycled buffers, like cat's)`,
    );
    log(
      `  read ratio fresh chunks/cat (throughput): ${(cat / r).toFixed(2)}   (consumers that keep every chunk)`,
    );
    log(
      `  RSS while streaming: peak ${(peakRss / MiB).toFixed(0)} MiB (before the runs ${(rssBefore / MiB).toFixed(0)} MiB; target < 150 MiB); process maxRSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
