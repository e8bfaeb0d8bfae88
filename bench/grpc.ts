/**
 * The gRPC daemon and clients (issue 6), against a plain socket transfer of
 * the same bytes measured in the same run, over loopback TCP and a unix
 * socket. A `strata daemon` (objectstore+file blobs in a temp dir, memory
 * directories and path infos) runs as a child process; so does the raw
 * reference, a node `net` server that pipes the file into the socket (read)
 * or the socket into a file it then fsyncs (put), as the daemon does.
 *
 * - blob Read: `openRead` + `stream()` of a 1 GiB blob (the client verifies
 *   BLAKE3 as it reads) vs the raw server sending the file;
 * - blob Put: a 1 GiB file into `openWrite` (client and server hash; the
 *   server writes, fsyncs and answers the digest) vs sending the file to the
 *   raw server, which writes and fsyncs it;
 * - small requests: BlobService `Stat` (has) and PathInfoService `Get`, 16
 *   concurrent callers on one client, requests per second;
 * - the daemon's RSS before and at its peak during each streaming run.
 * Targets: Read >= 0.5 x raw, Put >= 0.4 x raw, >= 10,000 small requests/s,
 * RSS flat while streaming.
 *
 * Env: STRATA_BENCH_GRPC_MIB (blob size, default 1024; 0 skips the
 * streaming runs), STRATA_BENCH_RUNS (default 3 here; the median is
 * reported), STRATA_BENCH_GRPC_SECONDS (per small-request measurement,
 * default 2).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BlobService } from "../src/castore/blob/service.js";
import { utf8 } from "../src/castore/bytes.js";
import type { B3Digest } from "../src/castore/digest.js";
import { symlinkNode } from "../src/castore/node.js";
import { defaultRegistry } from "../src/composition/default-registry.js";
import type { PathInfoService } from "../src/store/pathinfo/service.js";
import { StorePath } from "../src/store/store-path.js";
import { STRATA_BIN_FOR_BENCH } from "./paths.js";

const MiB = 1024 * 1024;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const mbps = (bytes: number, seconds: number): number => bytes / seconds / 1e6;

async function generate(path: string, bytes: number): Promise<void> {
  const fh = await open(path, "w");
  try {
    for (let off = 0; off < bytes; off += MiB)
      await fh.write(randomBytes(Math.min(MiB, bytes - off)));
  } finally {
    await fh.close();
  }
}

/** Starts a child process and waits until its stderr matched `ready` `count` times. */
function startChild(
  argv: string[],
  ready: RegExp,
  count: number,
): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      err += d;
      const lines = [...err.matchAll(new RegExp(ready.source, "g"))].map((m) => m[1]!);
      if (lines.length >= count) resolve({ child, lines });
    });
    child.once("exit", (code) => reject(new Error(`${argv.join(" ")} exited (${code}):\n${err}`)));
  });
}

/** The raw reference: per connection, `send` pipes FILE out, `recv` writes what comes to a temp file and fsyncs. */
const RAW_SERVER = `
import { createServer } from "node:net";
import { createReadStream, createWriteStream, fsyncSync, openSync, closeSync, rmSync } from "node:fs";
const [file, sock, tmp] = process.argv.slice(1);
let n = 0;
const handler = (socket) => {
  socket.once("data", (first) => {
    const mode = first.subarray(0, 4).toString();
    const rest = first.subarray(4);
    if (mode === "send") {
      createReadStream(file, { highWaterMark: 1 << 20 }).pipe(socket);
      return;
    }
    const path = tmp + "." + n++;
    const fd = openSync(path, "w");
    const out = createWriteStream(null, { fd, autoClose: false });
    if (rest.length) out.write(rest);
    socket.pipe(out);
    out.on("finish", () => { fsyncSync(fd); closeSync(fd); rmSync(path); socket.end("done"); });
  });
};
for (const addr of [{ port: 0, host: "127.0.0.1" }, { path: sock }]) {
  const s = createServer({ allowHalfOpen: true }, handler);
  s.listen(addr, () => process.stderr.write("raw listening on " + (addr.path ?? "127.0.0.1:" + s.address().port) + "\\n"));
}
`;

type Target = { kind: "tcp"; port: number } | { kind: "unix"; path: string };

function rawConnect(t: Target) {
  return t.kind === "tcp" ? netConnect(t.port, "127.0.0.1") : netConnect(t.path);
}

async function rawRead(t: Target): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    const s = rawConnect(t);
    s.on("connect", () => s.write("send"));
    s.on("data", (d: Buffer) => {
      n += d.length;
    });
    s.on("end", () => resolve());
    s.on("error", reject);
  });
  return mbps(n, (performance.now() - t0) / 1000);
}

async function rawPut(t: Target, file: string, size: number): Promise<number> {
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const s = rawConnect(t);
    s.on("connect", () => {
      s.write("recv");
      const input = createReadStream(file, { highWaterMark: MiB });
      input.pipe(s, { end: false });
      input.on("end", () => s.end());
    });
    s.on("data", () => resolve()); // "done": written and fsynced
    s.on("error", reject);
  });
  return mbps(size, (performance.now() - t0) / 1000);
}

async function grpcPut(
  blobs: BlobService,
  file: string,
  size: number,
): Promise<{ rate: number; digest: B3Digest }> {
  const t0 = performance.now();
  const fh = await open(file, "r");
  const buf = Buffer.allocUnsafe(MiB);
  const w = blobs.openWrite();
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, MiB, null);
      if (bytesRead === 0) break;
      await w.write(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  const digest = await w.close();
  return { rate: mbps(size, (performance.now() - t0) / 1000), digest };
}

async function grpcRead(blobs: BlobService, digest: B3Digest): Promise<number> {
  const t0 = performance.now();
  const r = await blobs.openRead(digest);
  if (r === undefined) throw new Error("blob vanished");
  let n = 0;
  for await (const c of r.stream()) n += c.length;
  await r.close();
  return mbps(n, (performance.now() - t0) / 1000);
}

/** Samples a process's RSS every 50 ms while `body` runs; resolves to the peak (MiB). */
async function peakRss<T>(
  pid: number,
  body: () => Promise<T>,
): Promise<{ value: T; peakMiB: number }> {
  const rss = (): number => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  };
  let peak = rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 50);
  try {
    const value = await body();
    peak = Math.max(peak, rss());
    return { value, peakMiB: peak };
  } finally {
    clearInterval(timer);
  }
}

/** CPU time (user + system) a process used so far, in microseconds, from /proc. */
function processCpuUs(pid: number): number {
  // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerS = 100; // USER_HZ on Linux
  return ((Number(f[11]) + Number(f[12])) * 1e6) / ticksPerS;
}

interface RateResult {
  /** Requests per second (wall clock). */
  perS: number;
  /** CPU microseconds per call in this (client) process and in the daemon. */
  clientUs: number;
  daemonUs: number;
}

/**
 * Requests per second of `call` with `callers` concurrent loops for
 * `seconds`, and the CPU each side spent per call: on a machine shared with
 * other jobs, CPU per call is the figure that compares across runs.
 */
async function rate(
  callers: number,
  seconds: number,
  daemonPid: number,
  call: () => Promise<unknown>,
): Promise<RateResult> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const cpu0 = process.cpuUsage();
  const daemon0 = processCpuUs(daemonPid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await call();
        n++;
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    perS: n / wall,
    clientUs: (cpu.user + cpu.system) / n,
    daemonUs: (processCpuUs(daemonPid) - daemon0) / n,
  };
}

const showRate = (r: RateResult): string =>
  `${r.perS.toFixed(0)} req/s (CPU/call: client ${r.clientUs.toFixed(1)} us, daemon ${r.daemonUs.toFixed(1)} us)`;

export async function benchGrpc(log: (line: string) => void): Promise<void> {
  const size = Number(process.env.STRATA_BENCH_GRPC_MIB ?? 1024) * MiB;
  const runs = Math.max(1, Math.min(Number(process.env.STRATA_BENCH_RUNS ?? 3), 3));
  const dir = await mkdtemp(join(tmpdir(), "strata-bench-grpc-"));
  const children: ChildProcess[] = [];
  try {
    const file = join(dir, "blob");
    await generate(file, size);
    const smallSeconds = Number(process.env.STRATA_BENCH_GRPC_SECONDS ?? 2);
    const daemon = await startChild(
      [
        process.execPath,
        STRATA_BIN_FOR_BENCH,
        "daemon",
        "--blob-service-addr",
        `objectstore+file://${join(dir, "blobs")}`,
        "--directory-service-addr",
        "memory://",
        "--path-info-service-addr",
        "memory://",
        "-l",
        "127.0.0.1:0",
        "-l",
        `unix://${join(dir, "d.sock")}`,
      ],
      /listening on (\S+)\n/,
      2,
    );
    children.push(daemon.child);
    const raw = await startChild(
      [
        process.execPath,
        "--input-type=module",
        "-e",
        RAW_SERVER,
        file,
        join(dir, "raw.sock"),
        join(dir, "raw-recv"),
      ],
      /raw listening on (\S+)\n/,
      2,
    );
    children.push(raw.child);
    const tcpPort = Number(daemon.lines.find((l) => l.startsWith("127.0.0.1:"))!.split(":")[1]);
    const rawTcp = Number(raw.lines.find((l) => l.startsWith("127.0.0.1:"))!.split(":")[1]);
    const transports = [
      {
        name: "loopback TCP",
        url: `grpc+http://127.0.0.1:${tcpPort}`,
        raw: { kind: "tcp", port: rawTcp } as Target,
      },
      {
        name: "unix socket",
        url: `grpc+unix://${join(dir, "d.sock")}`,
        raw: { kind: "unix", path: join(dir, "raw.sock") } as Target,
      },
    ];
    const pid = daemon.child.pid!;
    const idleRss = (await peakRss(pid, async () => undefined)).peakMiB;
    log(
      `blob of ${size / MiB} MiB, ${runs} runs (median), daemon: objectstore+file in ${tmpdir()}; daemon RSS idle ${idleRss.toFixed(0)} MiB`,
    );
    for (const t of size > 0 ? transports : []) {
      const blobs = await defaultRegistry().build("blob", t.url);
      const rows: Record<string, number[]> = { rawPut: [], grpcPut: [], rawRead: [], grpcRead: [] };
      let digest: B3Digest | undefined;
      let peak = 0;
      for (let i = 0; i < runs; i++) {
        rows.rawPut!.push(await rawPut(t.raw, file, size));
        const put = await peakRss(pid, () => grpcPut(blobs, file, size));
        rows.grpcPut!.push(put.value.rate);
        digest = put.value.digest;
        peak = Math.max(peak, put.peakMiB);
        rows.rawRead!.push(await rawRead(t.raw));
        const read = await peakRss(pid, () => grpcRead(blobs, digest!));
        rows.grpcRead!.push(read.value);
        peak = Math.max(peak, read.peakMiB);
      }
      const [rp, gp, rr, gr] = [rows.rawPut!, rows.grpcPut!, rows.rawRead!, rows.grpcRead!].map(
        median,
      ) as [number, number, number, number];
      log(`${t.name}:`);
      log(
        `  blob Read  gRPC ${gr.toFixed(0).padStart(5)} MB/s   raw socket ${rr.toFixed(0).padStart(5)} MB/s   ratio ${(gr / rr).toFixed(2)} (target >= 0.5)`,
      );
      log(
        `  blob Put   gRPC ${gp.toFixed(0).padStart(5)} MB/s   raw socket ${rp.toFixed(0).padStart(5)} MB/s   ratio ${(gp / rp).toFixed(2)} (target >= 0.4)`,
      );
      log(
        `  daemon RSS peak while streaming: ${peak.toFixed(0)} MiB (idle ${idleRss.toFixed(0)} MiB)`,
      );
      await blobs.close();
    }
    // Small requests, 16 concurrent callers on one client (one connection).
    for (const t of transports) {
      const blobs = await defaultRegistry().build("blob", t.url);
      const infos: PathInfoService = await defaultRegistry().build("pathinfo", t.url);
      const info = {
        storePath: StorePath.fromParts(new Uint8Array(20).fill(7), "bench"),
        node: symlinkNode(utf8("/nix/store/x")),
        references: [],
        narSize: 120,
        narSha256: new Uint8Array(32),
        signatures: [],
      };
      await infos.put(info);
      const w = blobs.openWrite();
      await w.write(utf8("small"));
      const small = await w.close();
      await rate(16, 0.5, pid, () => blobs.has(small)); // warm-up
      await rate(16, 0.5, pid, () => infos.get(info.storePath.digest));
      const stat = await rate(16, smallSeconds, pid, () => blobs.has(small));
      const get = await rate(16, smallSeconds, pid, () => infos.get(info.storePath.digest));
      log(`${t.name}, 16 concurrent callers (target >= 10,000 req/s):`);
      log(`  Stat         ${showRate(stat)}`);
      log(`  PathInfo Get ${showRate(get)}`);
      await Promise.all([blobs.close(), infos.close()]);
    }
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await rm(dir, { recursive: true, force: true });
  }
}
