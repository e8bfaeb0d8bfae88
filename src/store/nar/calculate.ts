/**
 * NAR calculation (size + SHA-256 of the NAR of a castore root) without
 * one-blob-at-a-time round trips: the directory closure is fetched in one
 * recursive call, then blobs are fetched ahead of the hasher through a
 * sliding window of bytes while the NAR is hashed strictly in order.
 * Results are cached per root node.
 */
import type { BlobService } from "../../castore/blob/service.js";
import type { CallOptions } from "../../castore/call-options.js";
import { type B3Digest, digestKey, formatB3 } from "../../castore/digest.js";
import type { DirectoryService } from "../../castore/directory/service.js";
import type { Directory } from "../../castore/directory.js";
import type { Node } from "../../castore/node.js";
import { IntegrityError } from "../../errors.js";
import { type CastoreReaders, castoreNarSource } from "./castore-source.js";
import { hashNarStream, type NarHashResult } from "./hash.js";
import { writeNar } from "./writer.js";

export interface NarCalculatorInit {
  /** Bytes of blob contents fetched ahead of the hasher (default 64 MiB; 0 = no read-ahead). */
  windowBytes?: number;
  /** How many results to remember (default 10,000 root nodes). */
  cacheEntries?: number;
}

export class NarCalculator {
  readonly #blobs: BlobService;
  readonly #directories: DirectoryService;
  readonly #window: number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, NarHashResult>();

  constructor(blobs: BlobService, directories: DirectoryService, init: NarCalculatorInit = {}) {
    this.#blobs = blobs;
    this.#directories = directories;
    this.#window = init.windowBytes ?? 64 * 1024 * 1024;
    this.#cacheSize = init.cacheEntries ?? 10_000;
  }

  async calculate(node: Node, options: CallOptions = {}): Promise<NarHashResult> {
    const key = nodeKey(node);
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      // Refresh its position: the Map's insertion order is the LRU order.
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      return hit;
    }
    const dirs = new Map<string, Directory>();
    if (node.type === "directory") {
      for await (const d of this.#directories.getRecursive(node.digest, options))
        dirs.set(digestKey(d.digest()), d);
    }
    const files = filesInNarOrder(node, dirs);
    const prefetcher = new Prefetcher(this.#blobs, files, this.#window, options);
    const readers: CastoreReaders = {
      getDirectory: async (digest) => dirs.get(digestKey(digest)),
      openBlob: async (digest, size) => prefetcher.next(digest, size),
    };
    try {
      const result = await hashNarStream(
        writeNar(castoreNarSource(node, readers), options.signal ? { signal: options.signal } : {}),
      );
      this.#cache.set(key, result);
      if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
      return result;
    } finally {
      prefetcher.cancel();
    }
  }
}

function nodeKey(node: Node): string {
  switch (node.type) {
    case "directory":
      return `d:${digestKey(node.digest)}:${node.size}`;
    case "file":
      return `f:${digestKey(node.digest)}:${node.size}:${node.executable ? 1 : 0}`;
    case "symlink":
      return `s:${Buffer.from(node.target).toString("base64")}`;
  }
}

interface FileRef {
  readonly digest: B3Digest;
  readonly size: number;
}

/** The blobs in the order the NAR writer will ask for them (depth-first, entries in name order). */
function filesInNarOrder(root: Node, dirs: Map<string, Directory>): FileRef[] {
  const out: FileRef[] = [];
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.type === "file") out.push({ digest: n.digest, size: n.size });
    else if (n.type === "directory") {
      const d = dirs.get(digestKey(n.digest));
      if (d === undefined)
        throw new IntegrityError(`directory ${formatB3(n.digest)} is missing from the closure`);
      for (let i = d.entries.length - 1; i >= 0; i--) stack.push(d.entries[i]!.node);
    }
  }
  return out;
}

/**
 * One blob being fetched ahead: its chunks so far, and who waits. The
 * fetcher pauses while more than `cap` bytes wait for the hasher, so one
 * huge blob cannot fill memory either.
 */
class Fetch {
  readonly chunks: Uint8Array[] = [];
  queued = 0;
  done = false;
  error: unknown;
  #wakeReader: (() => void) | undefined;
  #wakeWriter: (() => void) | undefined;

  push(c: Uint8Array): void {
    this.chunks.push(c);
    this.queued += c.length;
    this.#wakeReader?.();
    this.#wakeReader = undefined;
  }

  shift(): Uint8Array | undefined {
    const c = this.chunks.shift();
    if (c !== undefined) {
      this.queued -= c.length;
      this.#wakeWriter?.();
      this.#wakeWriter = undefined;
    }
    return c;
  }

  finish(error?: unknown): void {
    this.error = error;
    this.done = true;
    this.#wakeReader?.();
    this.#wakeReader = undefined;
  }

  /** Releases whoever waits (on cancellation). */
  wakeAll(): void {
    this.#wakeReader?.();
    this.#wakeWriter?.();
    this.#wakeReader = undefined;
    this.#wakeWriter = undefined;
  }

  /** Resolves when a chunk arrived or the fetch finished. */
  arrived(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeReader = resolve;
    });
  }

  /** Resolves when the hasher took a chunk. */
  taken(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeWriter = resolve;
    });
  }
}

class Prefetcher {
  readonly #blobs: BlobService;
  readonly #files: readonly FileRef[];
  readonly #window: number;
  readonly #abort = new AbortController();
  readonly #fetches: (Fetch | undefined)[] = [];
  /** Bytes one fetch may queue ahead of the hasher. */
  readonly #cap: number;
  /** Index of the next blob to start fetching / to hand to the writer. */
  #started = 0;
  #consumed = 0;
  /** Bytes fetched ahead and not yet handed to the hasher, plus bytes still to come for started fetches. */
  #buffered = 0;

  constructor(blobs: BlobService, files: readonly FileRef[], window: number, options: CallOptions) {
    this.#blobs = blobs;
    this.#files = files;
    this.#window = window;
    this.#cap = Math.max(window, 4 * 1024 * 1024);
    options.signal?.addEventListener("abort", () => this.#abort.abort(options.signal?.reason), {
      once: true,
    });
  }

  cancel(): void {
    this.#abort.abort();
    for (const f of this.#fetches) f?.wakeAll();
  }

  /** The stream of the next blob in NAR order; must be asked for in that order. */
  next(digest: B3Digest, size: number): AsyncIterable<Uint8Array> {
    const i = this.#consumed++;
    const ref = this.#files[i];
    if (ref === undefined || digestKey(ref.digest) !== digestKey(digest)) {
      throw new IntegrityError(`NAR calculation asked for blob ${formatB3(digest)} out of order`);
    }
    // Without read-ahead, the blob being asked for is still fetched (window 0 = one at a time).
    while (this.#started <= i) this.#start();
    this.#fill();
    return this.#drain(this.#fetches[i]!, size, i);
  }

  #fill(): void {
    while (
      this.#started < this.#files.length &&
      this.#buffered + this.#files[this.#started]!.size <= this.#window
    ) {
      this.#start();
    }
  }

  #start(): void {
    const ref = this.#files[this.#started++]!;
    const f = new Fetch();
    this.#fetches.push(f);
    this.#buffered += ref.size;
    void this.#run(f, ref);
  }

  async #run(f: Fetch, ref: FileRef): Promise<void> {
    try {
      const reader = await this.#blobs.openRead(ref.digest, { signal: this.#abort.signal });
      if (reader === undefined)
        throw new IntegrityError(`blob ${formatB3(ref.digest)} referenced by the tree is missing`);
      try {
        for await (const c of reader.stream(0, { signal: this.#abort.signal })) {
          f.push(c);
          while (f.queued > this.#cap && !this.#abort.signal.aborted) await f.taken();
        }
      } finally {
        await reader.close();
      }
      f.finish();
    } catch (err) {
      f.finish(err);
    }
  }

  async *#drain(f: Fetch, size: number, index: number): AsyncGenerator<Uint8Array> {
    let handed = 0;
    try {
      while (true) {
        const c = f.shift();
        if (c !== undefined) {
          handed += c.length;
          yield c;
          continue;
        }
        if (f.error !== undefined) throw f.error;
        if (f.done) break;
        await f.arrived();
      }
    } finally {
      this.#buffered -= size;
      this.#fetches[index] = undefined; // release memory
      this.#fill();
    }
    if (handed !== size) {
      throw new IntegrityError(`blob of the tree has ${handed} bytes, expected ${size}`);
    }
  }
}
