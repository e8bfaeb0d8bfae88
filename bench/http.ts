/**
 * The binary cache against a static file server, in the shape of the public
 * "cache shootout" (nar-bridge, harmonia, nginx): every NAR of a closure of
 * >= 300 MiB fetched sequentially and with 16 concurrent requests, plus all
 * narinfos, from `strata serve` (NARs rendered from the castore on the fly)
 * and from nginx serving the very same NARs and narinfos as flat files, in
 * the same run. The client is curl (one process per pass, connections
 * reused; `--parallel --parallel-max 16` for the concurrent passes).
 *
 * The closure: the bench tree (bench/tree.ts) imported as one store path
 * per top-level package directory and one per large file (46 paths,
 * ~420 MiB). nginx comes from Debian (`nginx-light`, installed by the bench
 * when missing and running as root); without it, a minimal Node static file
 * server in its own process stands in (said so in the output).
 *
 * Targets (issue 7): sequential NAR throughput >= 0.5x nginx, 16 concurrent
 * >= 0.7x, narinfo fetch time <= 1.5x nginx, server RSS < 300 MiB
 * throughout (VmHWM of the server process). RSS also counts the page-cache
 * pages of the mmapped LMDB files (the small blobs: as much as was served),
 * so the peaks of anonymous and file-backed RSS are shown separately.
 *
 * The machine may be shared: wall-clock ratios are given as the median and
 * the range over the passes (each pass of ours paired with the reference
 * pass after it), and the CPU time each server used per MiB (per request for
 * narinfos), which load from other processes disturbs much less.
 *
 * Env: STRATA_BENCH_DIR, STRATA_BENCH_RUNS (passes per measurement, default
 * 3, median reported; narinfo measurements take at least 9 passes, each
 * is only ~0.1 s).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median } from "./measure.js";
import { STRATA_BIN_FOR_BENCH } from "./paths.js";
import { ensureTree } from "./tree.js";

const MiB = 1024 * 1024;
/** Passes for the narinfo measurements (at least; STRATA_BENCH_RUNS when larger). */
const NARINFO_PASSES = 9;

function have(cmd: string): boolean {
  return spawnSync("bash", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const r = spawnSync("curl", ["-sf", "-o", "/dev/null", url]);
    if (r.status === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
}

function statusKiB(pid: number, name: string): number {
  try {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(
      readFileSync(`/proc/${pid}/status`, "utf8"),
    );
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

/** Samples the server's memory while the bench runs. */
class RssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  maxAnonKiB = 0;
  maxFileKiB = 0;

  constructor(pid: number) {
    this.#pid = pid;
    this.#timer = setInterval(() => this.#sample(), 50);
  }

  #sample(): void {
    this.maxAnonKiB = Math.max(this.maxAnonKiB, statusKiB(this.#pid, "RssAnon"));
    this.maxFileKiB = Math.max(this.maxFileKiB, statusKiB(this.#pid, "RssFile"));
  }

  /** Resident pages of mapped LMDB data files (page cache seen through mmap), in KiB. */
  #lmdbKiB(): number {
    try {
      let kib = 0;
      let inMdb = false;
      for (const line of readFileSync(`/proc/${this.#pid}/smaps`, "utf8").split("\n")) {
        if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inMdb = line.endsWith(".mdb");
        else if (inMdb && line.startsWith("Rss:")) kib += Number(/(\d+)/.exec(line)?.[1] ?? 0);
      }
      return kib;
    } catch {
      return 0;
    }
  }

  /**
   * Peak RSS (VmHWM), the peaks of its anonymous and file-backed parts
   * (sampled), and the LMDB maps in the file-backed part (at the end: they
   * only grow), in MiB.
   */
  stop(): { hwmMiB: number; anonMiB: number; fileMiB: number; lmdbMiB: number } {
    clearInterval(this.#timer);
    this.#sample();
    return {
      hwmMiB: statusKiB(this.#pid, "VmHWM") / 1024,
      anonMiB: this.maxAnonKiB / 1024,
      fileMiB: this.maxFileKiB / 1024,
      lmdbMiB: this.#lmdbKiB() / 1024,
    };
  }
}

const CLOCK_TICKS = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU seconds (user + system) used so far by these processes and their children's threads. */
function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the command name (which may hold spaces): state is [0], utime [11], stime [12].
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return ticks / CLOCK_TICKS;
}

/** A process and its direct children (nginx: the master and its workers). */
function processTree(pid: number): number[] {
  const out = [pid];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // exited
    }
  }
  return out;
}

/** Installs nginx-light when missing and possible (root, apt). */
function ensureNginx(log: (line: string) => void): string | undefined {
  const find = (): string | undefined =>
    ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => spawnSync(p, ["-v"]).status === 0);
  let bin = find();
  if (bin === undefined && process.getuid?.() === 0 && have("apt-get")) {
    log("installing nginx-light (apt-get) for the reference server ...");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    spawnSync("apt-get", ["install", "-y", "-q", "nginx-light"], { stdio: "ignore", env });
    bin = find();
    if (bin === undefined) {
      spawnSync("apt-get", ["update", "-q"], { stdio: "ignore", env });
      spawnSync("apt-get", ["install", "-y", "-q", "nginx-light"], { stdio: "ignore", env });
      bin = find();
    }
  }
  return bin;
}

function startNginx(bin: string, root: string, work: string, port: number): ChildProcess {
  mkdirSync(join(work, "tmp"), { recursive: true });
  const conf = join(work, "nginx.conf");
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 2;
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${work}/tmp/body;
  proxy_temp_path ${work}/tmp/proxy;
  fastcgi_temp_path ${work}/tmp/fastcgi;
  uwsgi_temp_path ${work}/tmp/uwsgi;
  scgi_temp_path ${work}/tmp/scgi;
  types { text/x-nix-narinfo narinfo; application/x-nix-nar nar; text/x-nix-cache-info nix-cache-info; }
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { }
  }
}
`,
  );
  return spawn(bin, ["-c", conf, "-p", work], { stdio: ["ignore", "ignore", "inherit"] });
}

/** The stand-in when nginx is unavailable: a static file server in its own Node process. */
function startNodeStatic(root: string, port: number): ChildProcess {
  const script = `
const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
const root = ${JSON.stringify(root)};
http.createServer((req, res) => {
  const p = path.join(root, decodeURIComponent(req.url.split("?")[0]));
  fs.stat(p, (err, st) => {
    if (err || !st.isFile()) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { "Content-Length": st.size });
    if (req.method === "HEAD") return res.end();
    fs.createReadStream(p, { highWaterMark: 1 << 20 }).pipe(res);
  });
}).listen(${port}, "127.0.0.1");`;
  return spawn(process.execPath, ["-e", script], { stdio: "ignore" });
}

/** Seconds for curl to fetch every URL of the list (bodies discarded). */
function curlPass(urlFile: string, parallel: number): number {
  const args = ["-s", "-f", "--no-progress-meter", "-K", urlFile];
  if (parallel > 1) args.unshift("--parallel", "--parallel-max", String(parallel));
  const t0 = process.hrtime.bigint();
  const r = spawnSync("curl", args, { stdio: ["ignore", "ignore", "inherit"] });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`curl failed (${r.status}) on ${urlFile}`);
  return s;
}

function urlList(file: string, base: string, paths: readonly string[], repeat = 1): string {
  const lines: string[] = [];
  for (let i = 0; i < repeat; i++) for (const p of paths) lines.push(`url = "${base}/${p}"`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

export async function benchHttp(log: (line: string) => void): Promise<void> {
  if (!have("curl")) {
    log("SKIPPED: curl is not installed (apt-get install -y curl)");
    return;
  }
  const runs = Number(process.env.STRATA_BENCH_RUNS ?? 3);
  const benchDir = process.env.STRATA_BENCH_DIR ?? join(tmpdir(), "strata-bench");
  log("generating/reusing the benchmark tree ...");
  const tree = ensureTree(join(benchDir, "v3"));
  const scratch = mkdtempSync(join(tmpdir(), "strata-bench-http-"));
  const children: ChildProcess[] = [];
  try {
    // The closure: one store path per package directory and per large file.
    const sources = [
      ...readdirSync(tree)
        .filter((n) => n.startsWith("pkg"))
        .map((n) => join(tree, n)),
      ...readdirSync(join(tree, "large")).map((n) => join(tree, "large", n)),
    ];
    const env = {
      ...process.env,
      XDG_DATA_HOME: join(scratch, "xdg"),
      BLOB_SERVICE_ADDR: "",
      DIRECTORY_SERVICE_ADDR: "",
      PATH_INFO_SERVICE_ADDR: "",
    };
    log(`importing ${sources.length} store paths into a fresh strata store ...`);
    const storePaths = execFileSync(
      process.execPath,
      [STRATA_BIN_FOR_BENCH, "import", "--quiet", ...sources],
      { env, encoding: "utf8", maxBuffer: 1 << 26 },
    )
      .trim()
      .split("\n");

    const strataPort = await freePort();
    const strata = spawn(
      process.execPath,
      [
        STRATA_BIN_FOR_BENCH,
        "serve",
        "--listen-address",
        `127.0.0.1:${strataPort}`,
        "--grpc-listen-address",
        "none",
      ],
      { env, stdio: ["ignore", "ignore", "inherit"] },
    );
    children.push(strata);
    const strataUrl = `http://127.0.0.1:${strataPort}`;
    await waitForHttp(`${strataUrl}/nix-cache-info`, strata);
    const rss = new RssSampler(strata.pid!);

    // The same narinfos and NARs as flat files for the reference server.
    const root = join(scratch, "root");
    mkdirSync(join(root, "nar"), { recursive: true });
    writeFileSync(
      join(root, "nix-cache-info"),
      "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n",
    );
    const narinfos: string[] = [];
    const nars: string[] = [];
    let totalBytes = 0;
    for (const p of storePaths) {
      const hash = p.slice("/nix/store/".length, "/nix/store/".length + 32);
      const text = execFileSync("curl", ["-sf", `${strataUrl}/${hash}.narinfo`], {
        encoding: "utf8",
      });
      writeFileSync(join(root, `${hash}.narinfo`), text);
      const url = /^URL: (.*)$/m.exec(text)![1]!;
      execFileSync("curl", ["-sf", "-o", join(root, url), `${strataUrl}/${url}`]);
      narinfos.push(`${hash}.narinfo`);
      nars.push(url);
      totalBytes += Number(/^NarSize: (\d+)$/m.exec(text)![1]);
    }
    log(
      `closure: ${storePaths.length} paths, ${(totalBytes / MiB).toFixed(0)} MiB of NARs; ${runs} passes per measurement, page cache warm`,
    );

    const refPort = await freePort();
    const nginxBin = ensureNginx(log);
    const refName = nginxBin === undefined ? "node static server" : "nginx";
    if (nginxBin === undefined) {
      log(
        "nginx is not available (not root, or apt failed): comparing against a minimal Node static file server instead",
      );
    }
    const ref =
      nginxBin === undefined
        ? startNodeStatic(root, refPort)
        : startNginx(nginxBin, root, join(scratch, "nginx"), refPort);
    children.push(ref);
    const refUrl = `http://127.0.0.1:${refPort}`;
    await waitForHttp(`${refUrl}/nix-cache-info`, ref);

    const lists = (base: string, tag: string) => ({
      nars: urlList(join(scratch, `${tag}-nars`), base, nars),
      narinfos: urlList(join(scratch, `${tag}-narinfos`), base, narinfos, 20),
    });
    const ours = lists(strataUrl, "strata");
    const theirs = lists(refUrl, "ref");
    const refPids = processTree(ref.pid!);
    /** Wall seconds and server CPU seconds of each pass, ours and the reference's, interleaved. */
    const measure = (parallel: number, which: "nars" | "narinfos") => {
      const pass = (list: string, pids: readonly number[]) => {
        const c0 = cpuSeconds(pids);
        const s = curlPass(list, parallel);
        return { s, cpu: cpuSeconds(pids) - c0 };
      };
      // Warm-up: page cache, and the JIT of a server that would run for days.
      for (let i = 0; i < 2; i++) {
        pass(ours[which], [strata.pid!]);
        pass(theirs[which], refPids);
      }
      const a: { s: number; cpu: number }[] = [];
      const b: { s: number; cpu: number }[] = [];
      // A narinfo pass is ~0.1 s of latency-bound requests: more of them
      // keep one burst of VM noise from deciding the median.
      const passes = which === "narinfos" ? Math.max(runs, NARINFO_PASSES) : runs;
      for (let i = 0; i < passes; i++) {
        a.push(pass(ours[which], [strata.pid!]));
        b.push(pass(theirs[which], refPids));
      }
      return {
        ours: median(a.map((x) => x.s)),
        ref: median(b.map((x) => x.s)),
        oursCpu: median(a.map((x) => x.cpu)),
        refCpu: median(b.map((x) => x.cpu)),
        // Ours as a multiple of the reference, pass by pass: throughput for NARs, time for narinfos.
        ratios: a.map((x, i) => (which === "nars" ? b[i]!.s / x.s : x.s / b[i]!.s)),
      };
    };
    const range = (xs: readonly number[]): string =>
      `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
    const rate = (s: number): string => `${(totalBytes / MiB / s).toFixed(0)} MiB/s`;
    const perMiB = (cpu: number): string => `${((cpu / (totalBytes / MiB)) * 1e3).toFixed(2)} ms`;
    const lines: string[] = [];
    for (const parallel of [1, 16]) {
      const m = measure(parallel, "nars");
      const target = parallel === 1 ? 0.5 : 0.7;
      const ratio = median(m.ratios);
      lines.push(
        `NARs, ${parallel === 1 ? "sequential" : "16 concurrent"}: strata ${rate(m.ours)} (${m.ours.toFixed(2)} s), ${refName} ${rate(m.ref)} (${m.ref.toFixed(2)} s)` +
          `  -> ${ratio.toFixed(2)}x ${refName}, passes ${range(m.ratios)} (target >= ${target}x) ${ratio >= target ? "OK" : "MISSED"}` +
          `; server CPU per MiB: strata ${perMiB(m.oursCpu)}, ${refName} ${perMiB(m.refCpu)}`,
      );
    }
    for (const parallel of [1, 16]) {
      const m = measure(parallel, "narinfos");
      const n = narinfos.length * 20;
      const ratio = median(m.ratios);
      const us = (s: number): string => `${((s / n) * 1e6).toFixed(0)} us`;
      lines.push(
        `narinfos (${n} x ${m.ratios.length} passes, ${parallel === 1 ? "sequential" : "16 concurrent"}): strata ${us(m.ours)} each, ${refName} ${us(m.ref)} each` +
          `  -> ${ratio.toFixed(2)}x the time, passes ${range(m.ratios)} (target <= 1.5x) ${ratio <= 1.5 ? "OK" : "MISSED"}` +
          `; server CPU per request: strata ${us(m.oursCpu)}, ${refName} ${us(m.refCpu)}`,
      );
    }
    const mem = rss.stop();
    const own = mem.hwmMiB - mem.lmdbMiB;
    lines.push(
      `strata serve memory: peak RSS ${mem.hwmMiB.toFixed(0)} MiB (target < 300 MiB) ${mem.hwmMiB < 300 ? "OK" : "MISSED"}; ` +
        `peak anonymous ${mem.anonMiB.toFixed(0)} MiB, peak file-backed ${mem.fileMiB.toFixed(0)} MiB ` +
        `of which ${mem.lmdbMiB.toFixed(0)} MiB are LMDB files mapped in (page cache, as much as was read); ` +
        `without those ${own.toFixed(0)} MiB ${own < 300 ? "OK" : "MISSED"}`,
    );
    for (const l of lines) log(l);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    rmSync(scratch, { recursive: true, force: true });
  }
}
