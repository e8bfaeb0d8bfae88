/**
 * A directory tree on disk as a NAR source (what `nix-store --dump PATH`
 * serialises). Node-only.
 *
 * Uses synchronous fs calls on purpose: a tree of 30,000 small files needs
 * ~4 syscalls per file, and each async fs call is a thread-pool round trip
 * (~20-50 us) while a sync one costs ~1-2 us. Each call blocks the event
 * loop only briefly (reads are at most `readChunk` bytes).
 */
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from "node:fs";
import { InvalidInputError, IntegrityError } from "../../errors.js";
import type { NarSourceEntry, NarSourceNode } from "./writer.js";

export interface FsSourceOptions {
  /** Bytes per read of a large file (default 1 MiB). */
  readChunk?: number;
}

const S_IXUSR = 0o100;

/** Path components are kept as Buffers: Linux names are bytes, not necessarily UTF-8. */
function join(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from("/"), name]);
}

export function fsNarSource(path: string | Buffer, options: FsSourceOptions = {}): NarSourceNode {
  const p = typeof path === "string" ? Buffer.from(path) : path;
  return nodeAt(p, lstatSync(p), options.readChunk ?? 1 << 20);
}

function nodeAt(path: Buffer, st: Stats, readChunk: number): NarSourceNode {
  if (st.isFile()) {
    return {
      type: "file",
      executable: (st.mode & S_IXUSR) !== 0,
      size: st.size,
      contents: () => readFile(path, st.size, readChunk),
    };
  }
  if (st.isSymbolicLink()) {
    return { type: "symlink", target: readlinkSync(path, { encoding: "buffer" }) };
  }
  if (st.isDirectory()) {
    return { type: "directory", entries: () => dirEntries(path, readChunk) };
  }
  throw new InvalidInputError(`'${path.toString()}' has an unsupported file type (not a regular file, directory or symlink)`);
}

function* dirEntries(path: Buffer, readChunk: number): Generator<NarSourceEntry> {
  const names = readdirSync(path, { encoding: "buffer" }).sort(Buffer.compare);
  for (const name of names) {
    const child = join(path, name);
    yield { name, node: nodeAt(child, lstatSync(child), readChunk) };
  }
}

async function* readFile(path: Buffer, size: number, readChunk: number): AsyncGenerator<Uint8Array> {
  const fd = openSync(path, "r");
  try {
    if (fstatSync(fd).size !== size) {
      throw new IntegrityError(`'${path.toString()}' changed size while being read`);
    }
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(left, readChunk));
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, null);
        if (n === 0) throw new IntegrityError(`'${path.toString()}' shrank while being read`);
        got += n;
      }
      left -= got;
      yield buf;
    }
  } finally {
    closeSync(fd);
  }
}
