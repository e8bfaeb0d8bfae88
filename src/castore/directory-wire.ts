/**
 * A direct decoder of the `castore.v1.Directory` wire format into validated
 * entries, for the hot path: every directory read from a store (LMDB gets,
 * NAR rendering, the binary cache, gRPC) decodes one. protobuf-es's
 * reflective `fromBinary` plus the conversion cost ~2/3 of an LMDB get and
 * most of its garbage; this reads the three lists straight into entries.
 *
 * Same acceptance as protobuf-es followed by `directoryFromProto`
 * (test/castore/directory-wire.test.ts compares them): fields in any order,
 * a repeated singular field keeps its last value, any unknown field or
 * wrong wire type is rejected. Byte fields are copies, so the input may be
 * a buffer that is reused afterwards (lmdb-js `getBinaryFast`).
 */
import { InvalidInputError } from "../errors.js";
import { compareBytes, copyBytes } from "./bytes.js";
import type { B3Digest } from "./digest.js";
import { type Entry, symlinkTargetProblem } from "./node.js";
import { pathComponent, showName } from "./path-component.js";

const VARINT = 0;
const LEN = 2;

class Malformed extends Error {}

/** A cursor over protobuf wire data; throws Malformed on anything truncated. */
class Wire {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint as a number; values above 2^53 come back as Infinity (sizes reject them). */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Malformed("truncated varint");
      const b = this.buf[this.pos++]!;
      // A 64-bit varint's 10th byte holds one bit (prost rejects more; protobuf-es wraps).
      if (i === 9 && b > 1) throw new Malformed("varint larger than 64 bits");
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result > Number.MAX_SAFE_INTEGER ? Number.POSITIVE_INFINITY : result;
      scale *= 128;
    }
    throw new Malformed("varint longer than 10 bytes");
  }

  /** The extent of a length-delimited field. */
  len(): [number, number] {
    const n = this.varint();
    if (n > this.end - this.pos) throw new Malformed("length beyond the message");
    const start = this.pos;
    this.pos += n;
    return [start, this.pos];
  }

  /** A copy (copyBytes: a Buffer's own slice() would share memory). */
  bytes(): Uint8Array {
    const [s, e] = this.len();
    return copyBytes(this.buf.subarray(s, e));
  }
}

const EMPTY = new Uint8Array(0);

interface Raw {
  name: Uint8Array;
  digest: Uint8Array;
  size: number;
  executable: boolean;
  target: Uint8Array;
}

/** One DirectoryNode (kind 1), FileNode (2) or SymlinkNode (3). */
function readNode(w: Wire, kind: number): Raw {
  const [start, end] = w.len();
  const r = new Wire(w.buf, start, end);
  const out: Raw = { name: EMPTY, digest: EMPTY, size: 0, executable: false, target: EMPTY };
  // Reported once the node is read, so the message can name the entry.
  let unknown = false;
  while (r.pos < end) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const type = key & 7;
    if (field === 1 && type === LEN) out.name = r.bytes();
    else if (field === 2 && type === LEN) {
      if (kind === 3) out.target = r.bytes();
      else out.digest = r.bytes();
    } else if (field === 3 && type === VARINT && kind !== 3) out.size = r.varint();
    else if (field === 4 && type === VARINT && kind === 2) out.executable = r.varint() !== 0;
    else if (known(kind, field)) throw new Malformed(`field ${field} has wire type ${type}`);
    else {
      unknown = true;
      skipField(r, type);
    }
  }
  if (unknown) {
    throw new InvalidInputError(
      `directory: ${KIND[kind]} entry ${showName(out.name)}: unknown protobuf fields are not allowed`,
    );
  }
  w.pos = end;
  return out;
}

const KIND = ["", "directory", "file", "symlink"] as const;

/** Steps over a field of an unknown number (to read the entry's name before reporting it). */
function skipField(r: Wire, type: number): void {
  if (type === VARINT) r.varint();
  else if (type === LEN) r.len();
  else if (type === 1 || type === 5) {
    const n = type === 1 ? 8 : 4;
    if (r.end - r.pos < n) throw new Malformed("truncated fixed-width field");
    r.pos += n;
  } else throw new Malformed(`wire type ${type} is not supported`);
}

function known(kind: number, field: number): boolean {
  return field >= 1 && field <= (kind === 2 ? 4 : kind === 1 ? 3 : 2);
}

function checkOrder(list: readonly Raw[], kind: string): void {
  for (let i = 1; i < list.length; i++) {
    const c = compareBytes(list[i - 1]!.name, list[i]!.name);
    if (c >= 0) {
      throw new InvalidInputError(
        `directory: ${kind} entry ${showName(list[i]!.name)} is ${c === 0 ? "duplicate" : "out of order"} (each list must be sorted bytewise by name)`,
      );
    }
  }
}

function checkDigestAndSize(r: Raw, kind: string, name: Uint8Array): void {
  if (r.digest.length !== 32) {
    throw new InvalidInputError(
      `directory: ${kind} entry ${showName(name)}: a BLAKE3 digest has 32 bytes, got ${r.digest.length}`,
    );
  }
  if (r.size > Number.MAX_SAFE_INTEGER) {
    throw new InvalidInputError(
      `directory: ${kind} entry ${showName(name)}: size is larger than the largest safe integer`,
    );
  }
}

/** Decodes and validates a `castore.v1.Directory` (entries not yet merged/sorted). */
export function decodeDirectoryWire(bytes: Uint8Array): Entry[] {
  const lists: Raw[][] = [[], [], [], []];
  try {
    const w = new Wire(bytes, 0, bytes.length);
    while (w.pos < bytes.length) {
      const key = w.varint();
      const field = Math.floor(key / 8);
      const type = key & 7;
      if (field >= 1 && field <= 3) {
        if (type !== LEN) throw new Malformed(`field ${field} has wire type ${type}`);
        lists[field]!.push(readNode(w, field));
      } else {
        throw new InvalidInputError("directory: unknown protobuf fields are not allowed");
      }
    }
  } catch (cause) {
    if (cause instanceof Malformed) {
      throw new InvalidInputError("directory: malformed protobuf", { cause });
    }
    throw cause;
  }
  const [, dirs, files, links] = lists as [Raw[], Raw[], Raw[], Raw[]];
  checkOrder(dirs, "directory");
  checkOrder(files, "file");
  checkOrder(links, "symlink");
  const out: Entry[] = [];
  for (const d of dirs) {
    const name = pathComponent(d.name, "directory: directory entry");
    checkDigestAndSize(d, "directory", name);
    out.push({ name, node: { type: "directory", digest: d.digest as B3Digest, size: d.size } });
  }
  for (const f of files) {
    const name = pathComponent(f.name, "directory: file entry");
    checkDigestAndSize(f, "file", name);
    out.push({
      name,
      node: { type: "file", digest: f.digest as B3Digest, size: f.size, executable: f.executable },
    });
  }
  for (const s of links) {
    const name = pathComponent(s.name, "directory: symlink entry");
    const problem = symlinkTargetProblem(s.target);
    if (problem !== undefined) {
      throw new InvalidInputError(`directory: symlink entry ${showName(name)}: ${problem}`);
    }
    out.push({ name, node: { type: "symlink", target: s.target } });
  }
  return out;
}

/** Bytes of a varint. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function putVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 128) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/** Size of a LEN field (key byte, length, bytes); 0 for empty bytes (proto3 omits defaults). */
function bytesFieldSize(b: Uint8Array): number {
  return b.length === 0 ? 0 : 1 + varintSize(b.length) + b.length;
}

function putBytesField(out: Uint8Array, at: number, key: number, b: Uint8Array): number {
  if (b.length === 0) return at;
  out[at++] = key;
  at = putVarint(out, at, b.length);
  out.set(b, at);
  return at + b.length;
}

function nodeBodySize(e: Entry): number {
  const n = e.node;
  let size = bytesFieldSize(e.name);
  if (n.type === "symlink") return size + bytesFieldSize(n.target);
  size += bytesFieldSize(n.digest);
  if (n.size !== 0) size += 1 + varintSize(n.size);
  if (n.type === "file" && n.executable) size += 2;
  return size;
}

const FIELD_OF = { directory: 1, file: 2, symlink: 3 } as const;

/**
 * The canonical encoding of a Directory (what protobuf-es's `toBinary`
 * writes: the three lists in field order, each in name order, defaults
 * omitted), without building protobuf messages. `entries` are sorted by name.
 */
export function encodeDirectoryWire(entries: readonly Entry[]): Uint8Array {
  const bodies = entries.map(nodeBodySize);
  let total = 0;
  for (const b of bodies) total += 1 + varintSize(b) + b;
  const out = new Uint8Array(total);
  let at = 0;
  for (const field of [1, 2, 3]) {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (FIELD_OF[e.node.type] !== field) continue;
      out[at++] = (field << 3) | LEN;
      at = putVarint(out, at, bodies[i]!);
      at = putBytesField(out, at, 0x0a, e.name);
      const n = e.node;
      if (n.type === "symlink") {
        at = putBytesField(out, at, 0x12, n.target);
        continue;
      }
      at = putBytesField(out, at, 0x12, n.digest);
      if (n.size !== 0) {
        out[at++] = 0x18;
        at = putVarint(out, at, n.size);
      }
      if (n.type === "file" && n.executable) {
        out[at++] = 0x20;
        out[at++] = 1;
      }
    }
  }
  return out;
}
