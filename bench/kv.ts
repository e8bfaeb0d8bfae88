/**
 * `lmdb://` DirectoryService throughput: puts (as one closure per
 * putMultiple, and as single puts, concurrent and sequential) and random
 * gets, in ops/s. The store is a durable one (fsync on commit) in
 * STRATA_BENCH_DIR (default: the OS temporary directory), removed after.
 *
 * Timings include what a caller pays: encoding and hashing on put,
 * re-hashing and strict decoding on get. Building the Directory objects
 * is not timed.
 */
import { randomFillSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type B3Digest, b3Digest } from "../src/castore/digest.js";
import { LmdbDirectoryService } from "../src/castore/directory/lmdb.js";
import { Directory } from "../src/castore/directory.js";
import { directoryNode, fileNode, symlinkNode } from "../src/castore/node.js";

const COUNT = 100_000;
const BATCH = 1_000;
const SEQUENTIAL_PUTS = 1_000;
const GET_TARGET = 100_000;

/** A small directory (a file, an executable, a symlink), unique per `i`. */
function smallDirectory(i: number, random: () => B3Digest): Directory {
  return Directory.fromEntries([
    { name: "bin", node: fileNode(random(), 1000 + (i % 977), true) },
    { name: "data", node: fileNode(random(), i) },
    { name: "link", node: symlinkNode(new TextEncoder().encode(`target-${i}`)) },
  ]);
}

function digestSource(): () => B3Digest {
  const pool = new Uint8Array(32 * 4096);
  let at = pool.length;
  return () => {
    if (at === pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    at += 32;
    return b3Digest(pool.slice(at - 32, at));
  };
}

interface Timing {
  wallMs: number;
  /** CPU time of the whole process (all threads, so LMDB's write thread too). */
  cpuMs: number;
}

const fmt = (x: number): string => Math.round(x).toLocaleString("en-US");

/** Ops per wall-clock second, and per CPU second (steadier on a shared machine). */
function rate(label: string, n: number, { wallMs, cpuMs }: Timing): string {
  return `${label.padEnd(48)} ${fmt(n).padStart(7)} in ${(wallMs / 1000).toFixed(2).padStart(5)} s = ${fmt((n / wallMs) * 1000).padStart(7)} ops/s (${fmt((n / cpuMs) * 1000).padStart(7)} per CPU s)`;
}

async function time(f: () => Promise<void>): Promise<Timing> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

export async function benchKv(log: (line: string) => void): Promise<void> {
  const parentDir = process.env.STRATA_BENCH_DIR ?? tmpdir();
  const path = mkdtempSync(join(parentDir, "strata-bench-kv-"));
  const random = digestSource();
  log(`lmdb:// directory service, durable store in ${path}`);
  try {
    await using service = await LmdbDirectoryService.open({ path });
    const stored: B3Digest[] = [];

    // 1. putMultiple: each batch is a closure of BATCH - 1 leaves and their parent.
    const batches: Directory[][] = [];
    for (let b = 0; b < COUNT / BATCH; b++) {
      const leaves: Directory[] = [];
      for (let i = 0; i < BATCH - 1; i++) leaves.push(smallDirectory(b * BATCH + i, random));
      const parent = Directory.fromEntries(
        leaves.map((d, i) => ({ name: `d${i}`, node: directoryNode(d.digest(), d.size) })),
      );
      batches.push([...leaves, parent]);
    }
    // The parents' children were hashed above to build them; start the leaves afresh
    // so that put pays for encoding and hashing like any caller would.
    for (const batch of batches) {
      for (let i = 0; i < batch.length - 1; i++) batch[i] = Directory.decode(batch[i]!.encode());
    }
    const multipleMs = await time(async () => {
      for (const batch of batches) {
        const putter = service.putMultiple();
        for (const d of batch) await putter.put(d);
        await putter.close();
      }
    });
    for (const batch of batches) for (const d of batch) stored.push(d.digest());
    log(rate(`put via putMultiple (${COUNT / BATCH} closures of ${BATCH})`, COUNT, multipleMs));

    // 2. single puts, BATCH in flight at a time: lmdb-js groups them into one commit.
    const singles: Directory[] = [];
    for (let i = 0; i < COUNT; i++) singles.push(smallDirectory(COUNT + i, random));
    const singleMs = await time(async () => {
      for (let i = 0; i < singles.length; i += BATCH) {
        const digests = await Promise.all(singles.slice(i, i + BATCH).map((d) => service.put(d)));
        stored.push(...digests);
      }
    });
    log(rate(`put, single, ${BATCH} concurrent`, COUNT, singleMs));

    // 3. single puts awaited one by one: one commit and fsync each.
    const sequential: Directory[] = [];
    for (let i = 0; i < SEQUENTIAL_PUTS; i++) {
      sequential.push(smallDirectory(2 * COUNT + i, random));
    }
    const sequentialMs = await time(async () => {
      for (const d of sequential) stored.push(await service.put(d));
    });
    log(rate("put, single, sequential (one fsync each)", SEQUENTIAL_PUTS, sequentialMs));

    // The directories built for the puts (~200k objects) would otherwise stay
    // reachable and make every GC during the gets walk them.
    batches.length = 0;
    singles.length = 0;
    sequential.length = 0;

    // 4. random gets over everything stored.
    let x = 0x9e3779b9;
    const picks: B3Digest[] = [];
    for (let i = 0; i < COUNT; i++) {
      // xorshift32: cheap, deterministic, good enough to scatter the keys.
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      picks.push(stored[(x >>> 0) % stored.length]!);
    }
    // Three passes over the same random picks: the first also pays for
    // faulting the store's pages into this process; the median is the rate.
    const rates: number[] = [];
    for (let pass = 1; pass <= 3; pass++) {
      let found = 0;
      const getMs = await time(async () => {
        for (const d of picks) if ((await service.get(d)) !== undefined) found++;
      });
      if (found !== COUNT) throw new Error(`benchKv: ${COUNT - found} gets found nothing`);
      rates.push((COUNT / getMs.wallMs) * 1000);
      log(
        rate(
          `get, random, pass ${pass} (of ${stored.length.toLocaleString("en-US")})`,
          COUNT,
          getMs,
        ),
      );
    }
    const getRate = rates.sort((a, b) => a - b)[1]!;
    log(
      `  get median ${fmt(getRate)} ops/s, target >= ${GET_TARGET.toLocaleString("en-US")}: ${getRate >= GET_TARGET ? "met" : "NOT met"}`,
    );
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}
