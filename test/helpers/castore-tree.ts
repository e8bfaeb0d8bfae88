/**
 * Test-only: builds an in-memory castore (blobs + directories) from a tree
 * on disk, to check NAR rendering from castore roots against Nix.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { type B3Digest, digestKey, hashB3 } from "../../src/castore/digest.js";
import { Directory } from "../../src/castore/directory.js";
import type { Node } from "../../src/castore/node.js";
import type { CastoreReaders } from "../../src/store/nar/castore-source.js";

export interface MemCastore extends CastoreReaders {
  blobs: Map<string, Uint8Array>;
  directories: Map<string, Directory>;
}

export function memCastore(): MemCastore {
  const blobs = new Map<string, Uint8Array>();
  const directories = new Map<string, Directory>();
  return {
    blobs,
    directories,
    getDirectory: async (d: B3Digest) => directories.get(digestKey(d)),
    openBlob: async (d: B3Digest) => {
      const b = blobs.get(digestKey(d));
      if (b === undefined) return undefined;
      // Deliberately odd chunking, to exercise the writer's coalescing.
      return (async function* () {
        for (let i = 0; i < b.length; i += 7777) yield b.subarray(i, i + 7777);
      })();
    },
  };
}

/** Paths are Buffers so that non-UTF-8 names survive. */
export function ingest(path: string | Buffer, store: MemCastore): Node {
  const st = lstatSync(path);
  if (st.isSymbolicLink())
    return { type: "symlink", target: readlinkSync(path, { encoding: "buffer" }) };
  if (st.isFile()) {
    const data = readFileSync(path);
    const digest = hashB3(data);
    store.blobs.set(digestKey(digest), data);
    return { type: "file", digest, size: data.length, executable: (st.mode & 0o100) !== 0 };
  }
  const entries = readdirSync(path, { encoding: "buffer" }).map((name) => ({
    name,
    node: ingest(Buffer.concat([Buffer.from(path), Buffer.from("/"), name]), store),
  }));
  const dir = Directory.fromEntries(entries);
  store.directories.set(digestKey(dir.digest()), dir);
  return { type: "directory", digest: dir.digest(), size: dir.size };
}
