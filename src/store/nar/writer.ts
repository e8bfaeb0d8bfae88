/**
 * The NAR serialiser: turns a tree (any source: a directory on disk, a
 * castore root, a test fixture) into the NAR byte stream, byte-identical to
 * `nix-store --dump`. Memory stays constant whatever the file sizes: file
 * contents are streamed, directories are walked lazily.
 */

import { compareBytes } from "../../castore/bytes.js";
import { showName } from "../../castore/path-component.js";
import { IntegrityError, InvalidInputError, throwIfAborted } from "../../errors.js";
import { ChunkBuilder } from "./chunk-builder.js";
import {
  NAR_CLOSE,
  NAR_DIRECTORY,
  NAR_ENTRY,
  NAR_EXECUTABLE,
  NAR_MAGIC,
  NAR_NODE,
  NAR_REGULAR,
  NAR_SYMLINK,
} from "./tokens.js";

/** A node as the NAR writer sees it. */
export type NarSourceNode =
  | {
      readonly type: "file";
      readonly executable: boolean;
      readonly size: number;
      /** The contents; must yield exactly `size` bytes. */
      contents(): AsyncIterable<Uint8Array>;
    }
  | { readonly type: "symlink"; readonly target: Uint8Array }
  | {
      readonly type: "directory";
      /** Entries in strictly increasing bytewise name order. */
      entries(): AsyncIterable<NarSourceEntry> | Iterable<NarSourceEntry>;
    };

export interface NarSourceEntry {
  readonly name: Uint8Array;
  readonly node: NarSourceNode;
}

export interface NarWriteOptions {
  signal?: AbortSignal;
  /**
   * The consumer promises not to keep a chunk once it asked for the next one
   * (hashing, synchronous writes). Lets the writer recycle its buffers.
   * Default false: every chunk may be kept.
   */
  transient?: boolean;
}

interface Frame {
  readonly iter: AsyncIterator<NarSourceEntry> | Iterator<NarSourceEntry>;
  /** The previous entry name, to check the order. */
  prev: Uint8Array | undefined;
}

/** The path of the current node, for error messages only. */
function showPath(stack: readonly Frame[], name: Uint8Array | undefined): string {
  const parts = stack.map((f) => f.prev).filter((n): n is Uint8Array => n !== undefined);
  if (name !== undefined) parts.push(name);
  return `/${parts.map((p) => new TextDecoder().decode(p)).join("/")}`;
}

function iterate(x: AsyncIterable<NarSourceEntry> | Iterable<NarSourceEntry>): Frame["iter"] {
  return Symbol.asyncIterator in x
    ? (x as AsyncIterable<NarSourceEntry>)[Symbol.asyncIterator]()
    : (x as Iterable<NarSourceEntry>)[Symbol.iterator]();
}

/** Streams the NAR serialisation of `root`. */
export async function* writeNar(
  root: NarSourceNode,
  options: NarWriteOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const { signal } = options;
  const out = new ChunkBuilder(256 * 1024, 64 * 1024, options.transient ?? false);
  out.bytes(NAR_MAGIC);
  const stack: Frame[] = [];
  let node: NarSourceNode | undefined = root;
  while (true) {
    throwIfAborted(signal);
    if (node !== undefined) {
      switch (node.type) {
        case "file": {
          out.bytes(node.executable ? NAR_EXECUTABLE : NAR_REGULAR);
          out.u64(node.size);
          let written = 0;
          for await (const chunk of node.contents()) {
            written += chunk.length;
            if (written > node.size) break;
            out.bytes(chunk);
            const ready = out.take();
            if (ready.length > 0) {
              yield* ready;
              throwIfAborted(signal);
            }
          }
          if (written !== node.size) {
            throw new IntegrityError(
              `NAR: file '${showPath(stack, undefined)}' has ${written > node.size ? "more" : "fewer"} bytes than its declared size ${node.size}`,
            );
          }
          out.padding(node.size);
          out.bytes(NAR_CLOSE);
          break;
        }
        case "symlink":
          out.bytes(NAR_SYMLINK);
          out.str(node.target);
          out.bytes(NAR_CLOSE);
          break;
        case "directory":
          out.bytes(NAR_DIRECTORY);
          stack.push({ iter: iterate(node.entries()), prev: undefined });
          break;
      }
      // A finished file or symlink inside a directory closes its entry too.
      if (node.type !== "directory" && stack.length > 0) out.bytes(NAR_CLOSE);
      node = undefined;
    }
    const top = stack[stack.length - 1];
    if (top === undefined) break;
    const next = await top.iter.next();
    if (next.done) {
      stack.pop();
      out.bytes(NAR_CLOSE); // the directory
      if (stack.length > 0) out.bytes(NAR_CLOSE); // its entry in the parent
    } else {
      const { name } = next.value;
      if (top.prev !== undefined && compareBytes(top.prev, name) >= 0) {
        throw new InvalidInputError(
          `NAR: directory '${showPath(stack.slice(0, -1), undefined)}': entry ${showName(name)} is not in strictly increasing bytewise order`,
        );
      }
      top.prev = name;
      out.bytes(NAR_ENTRY);
      out.str(name);
      out.bytes(NAR_NODE);
      node = next.value.node;
    }
    const ready = out.take();
    if (ready.length > 0) yield* ready;
  }
  yield* out.finish();
}
