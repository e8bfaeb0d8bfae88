/**
 * A compact binary form of TreeEvents (fs-nar-ring.ts) for the worker ->
 * consumer messages: structured-cloning 20,000 event objects with their
 * byte arrays cost the worker more than reading the files did, while one
 * transferred ArrayBuffer costs nothing to send.
 *
 * Layout per event: a tag byte, then for dir/symlink/file an optional name
 * (u32 length, 0xffffffff = none, bytes); symlink: target; file: executable
 * byte, size (f64), digest (32 bytes), slot offset (f64, -1 = not in the
 * slot), then the path when it is not in the slot. Little-endian.
 */
import type { TreeEvent } from "./fs-nar-ring.js";

const DIR = 1;
const END = 2;
const SYMLINK = 3;
const FILE = 4;
const NONE = 0xffffffff;

export class TreeEventEncoder {
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  #u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
  }

  #f64(v: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.#len, v, true);
    this.#len += 8;
  }

  #bytes(b: Uint8Array | undefined): void {
    this.#reserve(4 + (b?.length ?? 0));
    this.#view.setUint32(this.#len, b === undefined ? NONE : b.length, true);
    this.#len += 4;
    if (b !== undefined) {
      this.#buf.set(b, this.#len);
      this.#len += b.length;
    }
  }

  dir(name: Uint8Array | undefined): void {
    this.#u8(DIR);
    this.#bytes(name);
  }

  end(): void {
    this.#u8(END);
  }

  symlink(name: Uint8Array | undefined, target: Uint8Array): void {
    this.#u8(SYMLINK);
    this.#bytes(name);
    this.#bytes(target);
  }

  file(
    name: Uint8Array | undefined,
    executable: boolean,
    size: number,
    digest: Uint8Array,
    at: number | undefined,
    path: Uint8Array | undefined,
  ): void {
    this.#u8(FILE);
    this.#bytes(name);
    this.#u8(executable ? 1 : 0);
    this.#f64(size);
    this.#reserve(32);
    this.#buf.set(digest, this.#len);
    this.#len += 32;
    this.#f64(at ?? -1);
    if (at === undefined) this.#bytes(path);
  }

  /** The events so far in a buffer of their own (to transfer); the encoder starts over. */
  take(): ArrayBuffer {
    const out = this.#buf.slice(0, this.#len).buffer;
    this.#len = 0;
    return out;
  }
}

/**
 * Decodes what TreeEventEncoder.take produced. Names, targets and digests
 * are copies: consumers keep them (in Directory entries), and a view would
 * pin the whole message buffer.
 */
export function decodeTreeEvents(buf: ArrayBuffer): TreeEvent[] {
  const bytes = new Uint8Array(buf);
  const view = new DataView(buf);
  const out: TreeEvent[] = [];
  let at = 0;
  const field = (): Uint8Array | undefined => {
    const n = view.getUint32(at, true);
    at += 4;
    if (n === NONE) return undefined;
    const b = bytes.slice(at, at + n);
    at += n;
    return b;
  };
  const f64 = (): number => {
    const v = view.getFloat64(at, true);
    at += 8;
    return v;
  };
  while (at < bytes.length) {
    const tag = bytes[at++];
    switch (tag) {
      case DIR: {
        const name = field();
        out.push(name === undefined ? { t: "dir" } : { t: "dir", name });
        break;
      }
      case END:
        out.push({ t: "end" });
        break;
      case SYMLINK: {
        const name = field();
        const target = field()!;
        out.push(name === undefined ? { t: "symlink", target } : { t: "symlink", name, target });
        break;
      }
      case FILE: {
        const name = field();
        const executable = bytes[at++] === 1;
        const size = f64();
        const digest = bytes.slice(at, at + 32);
        at += 32;
        const slotAt = f64();
        const where = slotAt >= 0 ? { at: slotAt } : { path: field()! };
        out.push({
          t: "file",
          ...(name === undefined ? {} : { name }),
          executable,
          size,
          digest,
          ...where,
        });
        break;
      }
      default:
        throw new Error(`internal: bad tree event tag ${tag} at ${at - 1}`);
    }
  }
  return out;
}
