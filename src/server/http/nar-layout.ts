/**
 * What the binary cache renders from a NAR's geometry (src/store/nar/geometry.ts):
 * byte ranges of a NAR without rendering its prefix (HTTP Range requests),
 * and `.ls` listings with their `narOffset`s.
 */
import type { BlobService } from "../../castore/blob/service.js";
import type { CallOptions } from "../../castore/call-options.js";
import { type B3Digest, formatB3 } from "../../castore/digest.js";
import type { FileNode, Node } from "../../castore/node.js";
import { IntegrityError } from "../../errors.js";
import {
  CLOSE_SIZE,
  DIRECTORY_HEAD_SIZE,
  ENTRY_HEAD_FIXED,
  EXECUTABLE_HEAD_SIZE,
  MAGIC_SIZE,
  type NarGeometry,
  padded,
  REGULAR_HEAD_SIZE,
  strSize,
} from "../../store/nar/geometry.js";
import {
  NAR_CLOSE,
  NAR_DIRECTORY,
  NAR_ENTRY,
  NAR_EXECUTABLE,
  NAR_MAGIC,
  NAR_NODE,
  NAR_REGULAR,
  NAR_SYMLINK,
  narString,
  narU64,
} from "../../store/nar/tokens.js";

const ZEROS = new Uint8Array(8);

/** Opens blob contents at an offset (a range read). */
export interface BlobRangeSource {
  /** `length` bytes of the blob from `offset`, in chunks; the blob must have `size` bytes. */
  read(digest: B3Digest, size: number, offset: number, length: number): AsyncIterable<Uint8Array>;
}

/**
 * Range reads through a BlobService: one reader per file, streamed from the
 * offset. With `transient`, chunks are recycled buffers (the consumer must
 * not keep them past the next one).
 */
export function blobRangeSource(
  blobs: Pick<BlobService, "openRead">,
  options: CallOptions = {},
  transient = false,
): BlobRangeSource {
  return {
    async *read(digest, size, offset, length) {
      const reader = await blobs.openRead(digest, options);
      if (reader === undefined) {
        throw new IntegrityError(`blob ${formatB3(digest)} referenced by the tree is missing`);
      }
      try {
        if (reader.size !== size) {
          throw new IntegrityError(
            `blob ${formatB3(digest)} has ${reader.size} bytes, the tree says ${size}`,
          );
        }
        let left = length;
        for await (const chunk of reader.stream(offset, { ...options, transient })) {
          if (chunk.length >= left) {
            yield chunk.subarray(0, left);
            return;
          }
          left -= chunk.length;
          yield chunk;
        }
        if (left > 0) throw new IntegrityError(`blob ${formatB3(digest)} ended early`);
      } finally {
        await reader.close();
      }
    },
  };
}

/**
 * Streams bytes [start, end) of the NAR of `root`. Whole subtrees and token
 * runs before `start` are skipped by their computed sizes; the file the range
 * starts in is read from the offset inside its blob. Nothing before `start`
 * is rendered or read.
 */
export async function* renderNarRange(
  root: Node,
  geometry: NarGeometry,
  start: number,
  end: number,
  blobs: BlobRangeSource,
): AsyncGenerator<Uint8Array> {
  // The walk is synchronous (cheap even through deep trees); only file
  // contents are read asynchronously.
  for (const piece of new RangeWalker(geometry, start, end).archive(root)) {
    if (piece instanceof Uint8Array) yield piece;
    else yield* blobs.read(piece.node.digest, piece.node.size, piece.offset, piece.length);
  }
}

/** File contents to read: `length` bytes from `offset` of the node's blob. */
interface ContentPiece {
  readonly node: FileNode;
  readonly offset: number;
  readonly length: number;
}

class RangeWalker {
  readonly #geometry: NarGeometry;
  readonly #start: number;
  readonly #end: number;
  /** Offset in the NAR of the next byte the walk reaches. */
  #pos = 0;

  constructor(geometry: NarGeometry, start: number, end: number) {
    this.#geometry = geometry;
    this.#start = start;
    this.#end = end;
  }

  *archive(root: Node): Generator<Uint8Array | ContentPiece> {
    yield* this.#bytes(NAR_MAGIC);
    yield* this.#node(root);
  }

  /** The part of `b` (at the current position) that lies in the range. */
  *#bytes(b: Uint8Array): Generator<Uint8Array> {
    const from = this.#pos;
    const to = from + b.length;
    this.#pos = to;
    if (to <= this.#start || from >= this.#end) return;
    yield b.subarray(Math.max(this.#start - from, 0), Math.min(this.#end, to) - from);
  }

  /** Whether `size` bytes from here lie entirely outside the range (then they are skipped). */
  #skip(size: number): boolean {
    if (this.#pos + size <= this.#start || this.#pos >= this.#end) {
      this.#pos += size;
      return true;
    }
    return false;
  }

  *#node(node: Node): Generator<Uint8Array | ContentPiece> {
    if (this.#skip(this.#geometry.nodeSize(node))) return;
    switch (node.type) {
      case "file": {
        yield* this.#bytes(node.executable ? NAR_EXECUTABLE : NAR_REGULAR);
        yield* this.#bytes(narU64(node.size));
        const from = this.#pos;
        const to = from + node.size;
        this.#pos = to;
        if (to > this.#start && from < this.#end) {
          const offset = Math.max(this.#start - from, 0);
          yield { node, offset, length: Math.min(this.#end, to) - from - offset };
        }
        yield* this.#bytes(ZEROS.subarray(0, padded(node.size) - node.size));
        yield* this.#bytes(NAR_CLOSE);
        return;
      }
      case "symlink":
        yield* this.#bytes(NAR_SYMLINK);
        yield* this.#bytes(narString(node.target));
        yield* this.#bytes(NAR_CLOSE);
        return;
      case "directory":
        yield* this.#bytes(NAR_DIRECTORY);
        for (const { name, node: child } of this.#geometry.directory(node.digest).entries) {
          if (this.#skip(this.#geometry.entrySize(name, child))) continue;
          yield* this.#bytes(NAR_ENTRY);
          yield* this.#bytes(narString(name));
          yield* this.#bytes(NAR_NODE);
          yield* this.#node(child);
          yield* this.#bytes(NAR_CLOSE);
        }
        yield* this.#bytes(NAR_CLOSE);
        return;
    }
  }
}

/** A JSON string as nlohmann::json (Nix) writes it: UTF-8 kept, control characters escaped. */
function jsonString(bytes: Uint8Array): string {
  // Names that are not UTF-8 cannot be represented in JSON (Nix fails on
  // them); they are shown with replacement characters.
  return JSON.stringify(new TextDecoder().decode(bytes));
}

/**
 * The `.ls` listing of a NAR as Nix writes it with `write-nar-listing=true`:
 * `{"version":1,"root":...}` with, per node, `type`, then `entries` (a
 * directory, entries in bytewise name order), `size`, `executable` (only
 * when true) and `narOffset` (offset of the contents in the NAR) for a
 * regular file, `target` for a symlink. Keys in Nix's order, no spaces.
 */
export function renderListing(root: Node, geometry: NarGeometry): string {
  const parts: string[] = ['{"version":1,"root":'];
  let pos = MAGIC_SIZE;
  const walk = (node: Node): void => {
    switch (node.type) {
      case "file": {
        const head = node.executable ? EXECUTABLE_HEAD_SIZE : REGULAR_HEAD_SIZE;
        parts.push(
          `{"type":"regular","size":${node.size}${node.executable ? ',"executable":true' : ""},"narOffset":${pos + head}}`,
        );
        pos += geometry.nodeSize(node);
        return;
      }
      case "symlink":
        parts.push(`{"type":"symlink","target":${jsonString(node.target)}}`);
        pos += geometry.nodeSize(node);
        return;
      case "directory": {
        parts.push('{"type":"directory","entries":{');
        pos += DIRECTORY_HEAD_SIZE;
        let first = true;
        for (const { name, node: child } of geometry.directory(node.digest).entries) {
          parts.push(`${first ? "" : ","}${jsonString(name)}:`);
          first = false;
          pos += ENTRY_HEAD_FIXED + strSize(name.length);
          walk(child);
          pos += CLOSE_SIZE;
        }
        parts.push("}}");
        pos += CLOSE_SIZE;
        return;
      }
    }
  };
  walk(root);
  parts.push("}");
  return parts.join("");
}
