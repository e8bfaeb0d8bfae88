/**
 * Compression filters for NAR bodies: decompressing uploads (`.nar.xz`,
 * `.nar.zst`, `.nar.bz2`, `.nar.br`, gzip under `.nar`) and compressing
 * downloads on the fly (`Content-Encoding: zstd`, `.nar.zst`, `.nar.xz`,
 * `.nar.bz2` URLs). xz, zstd and bzip2 run as child processes (the Debian
 * `xz-utils`, `zstd` and `bzip2` tools; Node 20's zlib has none of them),
 * which also puts the CPU work on another core; brotli and gzip use
 * node:zlib. Memory is bounded by the pipes' buffers either way.
 */
import { spawn, spawnSync } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { createBrotliDecompress, createGunzip } from "node:zlib";
import { InvalidInputError, StorageError, UnavailableError } from "../../errors.js";

export type Codec = "xz" | "zstd" | "bzip2" | "br" | "gzip";

/** The URL suffix after `.nar` for each codec Nix knows (gzip NARs have none: `.nar`). */
export const CODEC_BY_SUFFIX: Readonly<Record<string, Codec>> = {
  ".xz": "xz",
  ".zst": "zstd",
  ".bz2": "bzip2",
  ".br": "br",
};

const DECOMPRESS: Partial<Record<Codec, readonly string[]>> = {
  xz: ["xz", "-d", "-c", "-q"],
  zstd: ["zstd", "-d", "-c", "-q"],
  bzip2: ["bzip2", "-d", "-c", "-q"],
};

/** Fast settings: this runs while a client waits. */
const COMPRESS: Partial<Record<Codec, readonly string[]>> = {
  xz: ["xz", "-c", "-q", "-1", "-T1"],
  zstd: ["zstd", "-c", "-q", "-1"],
  bzip2: ["bzip2", "-c", "-q", "-1"],
};

const available = new Map<string, boolean>();

/** Whether the tool behind `codec` is installed (checked once per process). */
function toolAvailable(cmd: string): boolean {
  let ok = available.get(cmd);
  if (ok === undefined) {
    ok = spawnSync(cmd, ["--version"], { stdio: "ignore" }).status === 0;
    available.set(cmd, ok);
  }
  return ok;
}

/** Whether downloads can be compressed with `codec` on this machine. */
export function canCompress(codec: Codec): boolean {
  const argv = COMPRESS[codec];
  return argv !== undefined && toolAvailable(argv[0]!);
}

/**
 * Writes `source` into `input` with backpressure. With `transient`, the
 * next chunk is only pulled once the previous one left the stream's buffer
 * (its memory may be recycled by the producer).
 */
async function pump(
  source: AsyncIterable<Uint8Array>,
  input: Writable,
  transient: boolean,
): Promise<void> {
  for await (const chunk of source) {
    if (input.destroyed || input.writableEnded) return;
    let flushed: (() => void) | undefined;
    const written = new Promise<void>((resolve) => {
      flushed = resolve;
    });
    const ok = input.write(chunk, () => flushed?.());
    if (transient ? input.writableLength > 0 : !ok) {
      // The write callback also runs (with an error) when the stream is destroyed.
      await (transient ? written : Promise.race([written, drainedOrClosed(input)]));
    }
  }
  if (!input.destroyed) input.end();
}

/** Resolves when `w` can take more data, or it closed or failed. */
function drainedOrClosed(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off("drain", done);
      w.off("close", done);
      w.off("error", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
    w.on("error", done);
  });
}

interface Filter {
  readonly input: Writable;
  readonly output: Readable;
  /** Rejects when the filter failed (after its output ended). */
  check(): Promise<void>;
  kill(): void;
}

function processFilter(argv: readonly string[], fail: (msg: string) => Error): Filter {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  let spawnError: Error | undefined;
  child.on("error", (err) => {
    spawnError = err;
  });
  child.stderr.on("data", (b: Buffer) => {
    if (stderr.length < 4096) stderr += b.toString("utf8");
  });
  // A child that stops reading (bad input) makes our writes fail with EPIPE:
  // the exit status tells what happened.
  child.stdin.on("error", () => undefined);
  const closed = new Promise<number | null>((resolve) =>
    child.on("close", (code) => resolve(code)),
  );
  return {
    input: child.stdin,
    output: child.stdout,
    async check() {
      const code = await closed;
      if (spawnError !== undefined) {
        throw new UnavailableError(`cannot run ${argv[0]}`, { cause: spawnError });
      }
      if (code !== 0) {
        throw fail(`${argv[0]} exited with ${code}: ${stderr.trim() || "no message"}`);
      }
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

function zlibFilter(codec: "br" | "gzip", fail: (msg: string) => Error): Filter {
  const t = codec === "br" ? createBrotliDecompress() : createGunzip();
  let error: Error | undefined;
  t.on("error", (err) => {
    error = err;
  });
  return {
    input: t,
    output: t,
    async check() {
      if (error !== undefined) throw fail(`${codec}: ${error.message}`);
    },
    kill() {
      t.destroy();
    },
  };
}

async function* through(
  source: AsyncIterable<Uint8Array>,
  filter: Filter,
  transientInput: boolean,
): AsyncGenerator<Uint8Array> {
  let pumpError: unknown;
  const pumping = pump(source, filter.input, transientInput).catch((err: unknown) => {
    pumpError = err;
    filter.kill();
  });
  try {
    try {
      for await (const chunk of filter.output) yield chunk as Uint8Array;
    } catch (err) {
      // The output failing is the filter's error (reported by check), unless the source failed.
      await pumping;
      if (pumpError !== undefined) throw pumpError;
      await filter.check();
      throw err;
    }
    await pumping;
    if (pumpError !== undefined) throw pumpError;
    await filter.check();
  } finally {
    filter.kill();
  }
}

/**
 * Decompresses an upload. Corrupt input is an InvalidInputError (the
 * client's fault); a missing tool is an UnavailableError.
 */
export function decompress(
  source: AsyncIterable<Uint8Array>,
  codec: Codec,
): AsyncGenerator<Uint8Array> {
  const fail = (msg: string): Error => new InvalidInputError(`decompressing the upload: ${msg}`);
  if (codec === "br" || codec === "gzip") return through(source, zlibFilter(codec, fail), false);
  const argv = DECOMPRESS[codec]!;
  if (!toolAvailable(argv[0]!)) {
    throw new UnavailableError(
      `${codec} uploads need the '${argv[0]}' tool, which is not installed`,
    );
  }
  return through(source, processFilter(argv, fail), false);
}

/** Compresses a download on the fly (`source` may be transient). */
export function compress(
  source: AsyncIterable<Uint8Array>,
  codec: Codec,
  transientInput: boolean,
): AsyncGenerator<Uint8Array> {
  const argv = COMPRESS[codec];
  if (argv === undefined) throw new InvalidInputError(`cannot compress with ${codec}`);
  const fail = (msg: string): Error => new StorageError(`compressing the NAR: ${msg}`);
  return through(source, processFilter(argv, fail), transientInput);
}

/**
 * Looks at the first bytes of an upload named `.nar`: Nix's gzip NARs are
 * named like uncompressed ones, so gzip is told by its magic bytes.
 */
export async function sniffGzip(
  source: AsyncIterable<Uint8Array>,
): Promise<{ gzip: boolean; stream: AsyncIterable<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  const head = first.done === true ? undefined : first.value;
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (head !== undefined) yield head;
    else return;
    while (true) {
      const n = await it.next();
      if (n.done === true) return;
      yield n.value;
    }
  }
  const gzip = head !== undefined && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  return { gzip, stream: rest() };
}
