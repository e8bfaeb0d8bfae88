/**
 * A streaming, strict NAR parser (ARCHITECTURE §2 "NAR"; browser-safe).
 *
 * Only the canonical serialisation that `nix-store --dump` produces is
 * accepted, so a NAR that parses re-encodes to exactly the same bytes (its
 * hash is meaningful). Every deviation is a `NarParseError` naming the byte
 * offset. Lengths are checked against what their role allows before anything
 * is allocated; file contents are streamed, never collected. Nesting is kept
 * on an explicit stack, so depth costs heap, not call stack.
 */

import { bytesEqual, compareBytes, utf8 } from "../../castore/bytes.js";
import { MAX_SYMLINK_TARGET_LENGTH, symlinkTargetProblem } from "../../castore/node.js";
import { MAX_NAME_LENGTH, pathComponentProblem, showName } from "../../castore/path-component.js";
import { InvalidInputError, throwIfAborted } from "../../errors.js";
import { ByteReader } from "./byte-reader.js";

export type NarEvent =
  /** A directory starts; `path` holds the components from the root (`[]` is the root). */
  | { type: "directory"; path: readonly Uint8Array[] }
  /** The directory at `path` ends: all its entries were emitted. */
  | { type: "end"; path: readonly Uint8Array[] }
  /**
   * A regular file. Consume `contents` (or not) before asking for the next
   * event: the parser skips whatever was left unread, and the iterable stops
   * working once the parser moved on. Chunks are views of the source's chunks.
   */
  | {
      type: "file";
      path: readonly Uint8Array[];
      executable: boolean;
      size: number;
      contents: AsyncIterable<Uint8Array>;
    }
  | { type: "symlink"; path: readonly Uint8Array[]; target: Uint8Array };

export interface ReadNarOptions {
  signal?: AbortSignal | undefined;
  /**
   * The most path components a node may have (default `DEFAULT_MAX_NAR_DEPTH`).
   * Every event carries its full path, so parsing costs O(depth) per entry;
   * the limit keeps a small hostile NAR from costing quadratic time.
   */
  maxDepth?: number | undefined;
}

/**
 * Far deeper than any NAR Nix can produce or restore (paths are limited to
 * 4096 bytes, so at most 2048 components), cheap enough to parse.
 */
export const DEFAULT_MAX_NAR_DEPTH = 10_000;

/** Malformed NAR input; `offset` is the byte where the problem starts (or where the input ended). */
export class NarParseError extends InvalidInputError {
  readonly offset: number;

  constructor(what: string, offset: number, options?: { cause?: unknown }) {
    super(`NAR: ${what} at byte ${offset}`, options);
    this.offset = offset;
  }
}

interface Keyword {
  readonly bytes: Uint8Array;
  /** The whole token as it must appear: length, bytes, zero padding. */
  readonly encoded: Uint8Array;
  readonly show: string;
}

function keyword(s: string): Keyword {
  const bytes = utf8(s);
  const encoded = new Uint8Array(8 + ((bytes.length + 7) & ~7));
  encoded[0] = bytes.length;
  encoded.set(bytes, 8);
  return { bytes, encoded, show: `'${s}'` };
}

const MAGIC = keyword("nix-archive-1");
const OPEN = keyword("(");
const CLOSE = keyword(")");
const TYPE = keyword("type");
const REGULAR = keyword("regular");
const SYMLINK = keyword("symlink");
const DIRECTORY = keyword("directory");
const EXECUTABLE = keyword("executable");
const EMPTY_STRING = keyword("");
const CONTENTS = keyword("contents");
const TARGET = keyword("target");
const ENTRY = keyword("entry");
const NAME = keyword("name");
const NODE = keyword("node");

/** A set of keywords allowed at one place, with what the error messages show. */
interface Choice {
  readonly kws: readonly Keyword[];
  readonly max: number;
  readonly show: string;
}

function choice(...kws: Keyword[]): Choice {
  const max = Math.max(...kws.map((k) => k.bytes.length));
  return { kws, max, show: kws.map((k) => k.show).join(" or ") };
}

const NODE_TYPES = choice(REGULAR, SYMLINK, DIRECTORY);
const FILE_START = choice(EXECUTABLE, CONTENTS);
const ENTRY_OR_CLOSE = choice(ENTRY, CLOSE);
const NAME_TOO_LONG = `entry name is longer than ${MAX_NAME_LENGTH} bytes`;

/** 2^53 as the high 32 bits of a u64: lengths at or above it are not safe integers. */
const HIGH_LIMIT = 0x200000;

function truncated(offset: number, what: string): Error {
  return new NarParseError(`unexpected end of input in ${what}`, offset);
}

/**
 * The token-level grammar on top of a `ByteReader`.
 *
 * Each read has a synchronous fast path (`match*`, `*Here`) that only
 * succeeds on well-formed input already in the current chunk and otherwise
 * consumes nothing, and an async path that does all the checking. Errors
 * therefore never depend on how the source is chunked.
 */
class Tokens {
  constructor(readonly r: ByteReader) {}

  /** Consumes `kw` if it is entirely available and matches exactly. */
  match(kw: Keyword): boolean {
    const r = this.r;
    const e = kw.encoded;
    if (r.available < e.length) return false;
    const b = r.buf;
    const p = r.pos;
    for (let i = 0; i < e.length; i++) if (b[p + i] !== e[i]) return false;
    r.advance(e.length);
    return true;
  }

  /** The keyword of `c` that `match` consumed, if any. */
  matchChoice(c: Choice): Keyword | undefined {
    for (const kw of c.kws) if (this.match(kw)) return kw;
    return undefined;
  }

  async expect(kw: Keyword): Promise<void> {
    const start = this.r.offset;
    const what = `expected ${kw.show}`;
    const got = await this.string(kw.bytes.length, what, kw.show);
    if (!bytesEqual(got, kw.bytes)) throw new NarParseError(`${what}, got ${showName(got)}`, start);
  }

  /** Reads one of the keywords of `c`. */
  async choice(c: Choice): Promise<Keyword> {
    const start = this.r.offset;
    const got = await this.string(c.max, `expected ${c.show}`, c.show);
    for (const kw of c.kws) if (bytesEqual(got, kw.bytes)) return kw;
    throw new NarParseError(`expected ${c.show}, got ${showName(got)}`, start);
  }

  /** Reads a u64 length (8 bytes must be available at `pos`). */
  private lengthHere(): number {
    const b = this.r.buf;
    const p = this.r.pos;
    const lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    const hi = (b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24)) >>> 0;
    if (hi >= HIGH_LIMIT) {
      const n = (BigInt(hi) << 32n) | BigInt(lo);
      throw new NarParseError(`length ${n} exceeds 2^53-1`, this.r.offset);
    }
    return hi * 0x1_0000_0000 + lo;
  }

  /** Reads a u64 if it is in the current chunk. */
  u64Here(): number | undefined {
    if (this.r.available < 8) return undefined;
    const n = this.lengthHere();
    this.r.advance(8);
    return n;
  }

  /** Reads a u64 (a file size). */
  async u64(what: string): Promise<number> {
    const r = this.r;
    if (r.available < 8) await r.ensure(8, what);
    const n = this.lengthHere();
    r.advance(8);
    return n;
  }

  /**
   * Reads a string token of at most `max` bytes (checked before anything is
   * allocated) and returns a copy, or undefined (consuming nothing) when the
   * token is not entirely in the current chunk.
   */
  stringHere(max: number, tooLong: string): Uint8Array | undefined {
    const r = this.r;
    if (r.available < 8) return undefined;
    const len = this.lengthHere();
    if (len > max) throw new NarParseError(tooLong, r.offset);
    const padded = (len + 7) & ~7;
    if (r.available < 8 + padded) return undefined;
    const b = r.buf;
    const p = r.pos + 8;
    for (let i = p + len; i < p + padded; i++) {
      if (b[i] !== 0) throw new NarParseError("non-zero padding", r.offset + 8 + (i - p));
    }
    r.advance(8 + padded);
    return b.slice(p, p + len);
  }

  /** `stringHere`, waiting for more input as needed. */
  async string(max: number, tooLong: string, what: string): Promise<Uint8Array> {
    const r = this.r;
    if (r.available < 8) await r.ensure(8, what);
    const len = this.lengthHere();
    if (len > max) throw new NarParseError(tooLong, r.offset);
    const padded = (len + 7) & ~7;
    if (r.available < 8 + padded) await r.ensure(8 + padded, what);
    return this.stringHere(max, tooLong)!;
  }

  /** Checks the zero padding after `size` content bytes. */
  async contentPadding(size: number): Promise<void> {
    const pad = (8 - (size % 8)) % 8;
    if (pad === 0) return;
    const r = this.r;
    if (r.available < pad) await r.ensure(pad, "file contents padding");
    const b = r.buf;
    const p = r.pos;
    for (let i = 0; i < pad; i++) {
      if (b[p + i] !== 0) throw new NarParseError("non-zero padding", r.offset + i);
    }
    r.advance(pad);
  }
}

/** A file's contents as handed to the consumer; dead once the parser moves on. */
class FileContents implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  private expired = false;

  constructor(
    private readonly r: ByteReader,
    private remaining: number,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.expired) {
      throw new InvalidInputError("NAR: file contents read after the next event was requested");
    }
    if (this.remaining === 0) return { done: true, value: undefined };
    if (this.r.available === 0) await this.r.refill("file contents");
    const chunk = this.r.take(this.remaining);
    this.remaining -= chunk.length;
    return { done: false, value: chunk };
  }

  /** Ends the consumer's access and returns how many bytes it left unread. */
  expire(): number {
    this.expired = true;
    return this.remaining;
  }
}

/**
 * Parses a NAR into events in NAR order (depth first, entries bytewise
 * sorted). Stops with `NarParseError` on malformed input, `AbortedError` when
 * the signal fires; errors from the source pass through unchanged. The source
 * is released (its `return()` called) when the generator finishes.
 */
export async function* readNar(
  source: AsyncIterable<Uint8Array>,
  options: ReadNarOptions = {},
): AsyncGenerator<NarEvent, void, undefined> {
  const { signal, maxDepth = DEFAULT_MAX_NAR_DEPTH } = options;
  throwIfAborted(signal);
  const r = new ByteReader(source, truncated, signal);
  const t = new Tokens(r);
  try {
    if (!t.match(MAGIC)) {
      const magic = await t.string(MAGIC.bytes.length, "not a NAR (bad magic)", MAGIC.show);
      if (!bytesEqual(magic, MAGIC.bytes)) throw new NarParseError("not a NAR (bad magic)", 0);
    }

    // Per open directory, the previous entry's name (for the ordering check).
    // Only names are kept, never a path per level: memory stays O(depth).
    const lastNames: (Uint8Array | undefined)[] = [];
    /** The path of the innermost open directory. */
    const names: Uint8Array[] = [];
    let path: readonly Uint8Array[] = [];
    for (;;) {
      // One node at `path`. The `if (!t.match(...))` pairs are the fast path
      // for input already in memory; the awaited calls do the full checking.
      throwIfAborted(signal);
      if (!t.match(OPEN)) await t.expect(OPEN);
      if (!t.match(TYPE)) await t.expect(TYPE);
      const kind = t.matchChoice(NODE_TYPES) ?? (await t.choice(NODE_TYPES));
      // Whether this node's closing ")" is still to come (a directory's is read with its entries).
      let opened = false;
      if (kind === REGULAR) {
        const first = t.matchChoice(FILE_START) ?? (await t.choice(FILE_START));
        const executable = first === EXECUTABLE;
        if (executable) {
          if (!t.match(EMPTY_STRING)) await t.expect(EMPTY_STRING);
          if (!t.match(CONTENTS)) await t.expect(CONTENTS);
        }
        const size = t.u64Here() ?? (await t.u64("file size"));
        const contents = new FileContents(r, size);
        yield { type: "file", path, executable, size, contents };
        const unread = contents.expire();
        if (unread > 0) await r.skip(unread, "file contents");
        await t.contentPadding(size);
        if (!t.match(CLOSE)) await t.expect(CLOSE);
      } else if (kind === SYMLINK) {
        if (!t.match(TARGET)) await t.expect(TARGET);
        const start = r.offset;
        const tooLong = `symlink target is longer than ${MAX_SYMLINK_TARGET_LENGTH} bytes`;
        const target =
          t.stringHere(MAX_SYMLINK_TARGET_LENGTH, tooLong) ??
          (await t.string(MAX_SYMLINK_TARGET_LENGTH, tooLong, "symlink target"));
        const problem = symlinkTargetProblem(target);
        if (problem !== undefined) throw new NarParseError(problem, start);
        if (!t.match(CLOSE)) await t.expect(CLOSE);
        yield { type: "symlink", path, target };
      } else {
        yield { type: "directory", path };
        if (path.length > 0) names.push(path[path.length - 1]!);
        lastNames.push(undefined);
        opened = true;
      }

      // Close finished nodes until the next entry to descend into.
      for (;;) {
        const depth = lastNames.length;
        if (depth === 0) {
          if (!(await r.atEnd())) {
            throw new NarParseError("trailing bytes after the root node", r.offset);
          }
          return;
        }
        // The ")" of the entry around the node just finished.
        if (!opened && !t.match(CLOSE)) await t.expect(CLOSE);
        opened = false;
        const entryStart = r.offset;
        const next = t.matchChoice(ENTRY_OR_CLOSE) ?? (await t.choice(ENTRY_OR_CLOSE));
        if (next === CLOSE) {
          lastNames.pop();
          const ended = names.slice();
          names.pop();
          yield { type: "end", path: ended };
          continue;
        }
        if (names.length >= maxDepth) {
          throw new NarParseError(`entries nested deeper than ${maxDepth} levels`, entryStart);
        }
        if (!t.match(OPEN)) await t.expect(OPEN);
        if (!t.match(NAME)) await t.expect(NAME);
        const start = r.offset;
        const name =
          t.stringHere(MAX_NAME_LENGTH, NAME_TOO_LONG) ??
          (await t.string(MAX_NAME_LENGTH, NAME_TOO_LONG, "entry name"));
        const problem = pathComponentProblem(name);
        if (problem !== undefined) {
          throw new NarParseError(`invalid entry name ${showName(name)}: ${problem}`, start);
        }
        const last = lastNames[depth - 1];
        if (last !== undefined) {
          const order = compareBytes(last, name);
          if (order === 0) throw new NarParseError(`duplicate entry ${showName(name)}`, start);
          if (order > 0) {
            throw new NarParseError(
              `entry ${showName(name)} is not sorted after ${showName(last)}`,
              start,
            );
          }
        }
        lastNames[depth - 1] = name;
        if (!t.match(NODE)) await t.expect(NODE);
        const child = names.slice();
        child.push(name);
        path = child;
        break;
      }
    }
  } finally {
    await r.close();
  }
}
