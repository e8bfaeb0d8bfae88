/**
 * An independent NAR encoder, tree builders and stream helpers for the NAR
 * tests. Nothing here uses the production NAR code: it is the oracle the
 * reader, writer and restorer are checked against.
 */
import assert from "node:assert/strict";
import type { NarEvent } from "../../src/store/nar/reader.js";

/** A file system tree as a NAR holds it; names and targets are raw bytes. */
export type Tree =
  | { type: "file"; executable: boolean; contents: Uint8Array }
  | { type: "symlink"; target: Uint8Array }
  | { type: "directory"; entries: [Uint8Array, Tree][] };

export type DirectoryTree = Extract<Tree, { type: "directory" }>;

const te = new TextEncoder();
/** The UTF-8 bytes of `s`. */
export const b = (s: string): Uint8Array => te.encode(s);

/** Bytewise comparison: negative, zero or positive like `Array#sort` wants. */
export function compareBytes(a: Uint8Array, c: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, c.length); i++) if (a[i] !== c[i]) return a[i]! - c[i]!;
  return a.length - c.length;
}

/**
 * Writes NAR tokens. `length` is the output so far, to compute expected
 * offsets; `tokens` holds the offset where each `str` token starts.
 */
export class NarWriter {
  private readonly parts: Uint8Array[] = [];
  readonly tokens: number[] = [];
  length = 0;

  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  u64(n: number | bigint): this {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
    return this.raw(out);
  }

  str(s: string | Uint8Array): this {
    const bytes = typeof s === "string" ? b(s) : s;
    this.tokens.push(this.length);
    this.u64(bytes.length).raw(bytes);
    return this.raw(new Uint8Array((8 - (bytes.length % 8)) % 8));
  }

  strs(...ss: (string | Uint8Array)[]): this {
    for (const s of ss) this.str(s);
    return this;
  }

  node(tree: Tree): this {
    this.strs("(", "type");
    switch (tree.type) {
      case "file":
        this.str("regular");
        if (tree.executable) this.strs("executable", "");
        this.str("contents").str(tree.contents);
        break;
      case "symlink":
        this.strs("symlink", "target").str(tree.target);
        break;
      case "directory":
        this.str("directory");
        for (const [name, child] of tree.entries) {
          this.strs("entry", "(", "name").str(name).str("node").node(child).str(")");
        }
        break;
    }
    return this.str(")");
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** The NAR of `tree`, entries in the order given (so it may be invalid). */
export const nar = (tree: Tree): Uint8Array =>
  new NarWriter().str("nix-archive-1").node(tree).bytes();

/**
 * The NAR of `depth` directories nested in a root directory, each entry
 * named "d", with `leaf` (a name and a node) in the deepest one. Written
 * without recursion, so any depth works.
 */
export function deepNar(depth: number, leaf?: [string, Tree]): Uint8Array {
  const w = new NarWriter().strs("nix-archive-1", "(", "type", "directory");
  for (let i = 0; i < depth; i++)
    w.strs("entry", "(", "name", "d", "node", "(", "type", "directory");
  if (leaf !== undefined) w.strs("entry", "(", "name", leaf[0], "node").node(leaf[1]).str(")");
  for (let i = 0; i < depth; i++) w.strs(")", ")");
  return w.str(")").bytes();
}

export const file = (contents: string | Uint8Array, executable = false): Tree => ({
  type: "file",
  executable,
  contents: typeof contents === "string" ? b(contents) : contents,
});

export const symlink = (target: string | Uint8Array): Tree => ({
  type: "symlink",
  target: typeof target === "string" ? b(target) : target,
});

type Entries = Record<string, Tree> | [Uint8Array, Tree][];

const entryList = (entries: Entries): [Uint8Array, Tree][] =>
  Array.isArray(entries) ? entries : Object.entries(entries).map(([k, v]) => [b(k), v]);

/** A directory with its entries in the order given: NOT sorted, to build invalid NARs too. */
export const dir = (entries: Entries = {}): Tree => ({
  type: "directory",
  entries: entryList(entries),
});

/** A directory with its entries sorted bytewise, as a valid NAR has them. */
export const sortedDir = (entries: Entries = {}): Tree => ({
  type: "directory",
  entries: [...entryList(entries)].sort((x, y) => compareBytes(x[0], y[0])),
});

/** `bytes` in chunks of `size` bytes (views, not copies); nothing for empty input. */
export async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/** All chunks of a byte stream, each copied as it comes (so recycled buffers are fine). */
export async function collectBytes(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

export interface CollectTreeOptions {
  /**
   * Assert that each event's path matches the nesting, that each file's
   * contents have its size, and that there was a root. Default true.
   */
  readonly check?: boolean;
  /**
   * Called at each file event: how many content chunks to read before
   * leaving the rest to the parser to skip. Default: all of them.
   */
  readonly chunksToRead?: () => number;
}

/** Rebuilds the tree from `readNar` events, copying file contents. */
export async function collectTree(
  events: AsyncIterable<NarEvent>,
  options: CollectTreeOptions = {},
): Promise<Tree> {
  const check = options.check ?? true;
  const stack: DirectoryTree[] = [];
  let root: Tree | undefined;
  const place = (path: readonly Uint8Array[], node: Tree): void => {
    if (check) assert.equal(path.length, stack.length, "event path depth matches nesting");
    const parent = stack.at(-1);
    if (parent === undefined) root = node;
    else parent.entries.push([path.at(-1)!, node]);
  };
  for await (const ev of events) {
    switch (ev.type) {
      case "directory": {
        const d: DirectoryTree = { type: "directory", entries: [] };
        place(ev.path, d);
        stack.push(d);
        break;
      }
      case "end":
        stack.pop();
        if (check) assert.equal(ev.path.length, stack.length);
        break;
      case "symlink":
        place(ev.path, { type: "symlink", target: ev.target });
        break;
      case "file": {
        const limit = options.chunksToRead?.() ?? Number.POSITIVE_INFINITY;
        const contents = new NarWriter();
        let read = 0;
        for await (const c of ev.contents) {
          contents.raw(c.slice());
          if (++read >= limit) break;
        }
        if (check) assert.equal(contents.length, ev.size);
        place(ev.path, { type: "file", executable: ev.executable, contents: contents.bytes() });
        break;
      }
    }
  }
  if (check) assert.ok(root !== undefined);
  return root!;
}
