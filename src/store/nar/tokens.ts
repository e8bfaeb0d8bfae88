/** The fixed byte sequences of the NAR format, pre-encoded (u64 length, bytes, zero padding to 8). */
import { utf8 } from "../../castore/bytes.js";

/** One NAR string: little-endian u64 length, the bytes, zeros up to a multiple of 8. */
export function narString(s: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + ((s.length + 7) & ~7));
  const view = new DataView(out.buffer);
  view.setUint32(0, s.length >>> 0, true);
  view.setUint32(4, Math.floor(s.length / 2 ** 32), true);
  out.set(s, 8);
  return out;
}

/** A little-endian u64 (values up to 2^53). */
export function narU64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, n >>> 0, true);
  view.setUint32(4, Math.floor(n / 2 ** 32), true);
  return out;
}

function tokens(...parts: string[]): Uint8Array {
  const encoded = parts.map((p) => narString(utf8(p)));
  const out = new Uint8Array(encoded.reduce((n, e) => n + e.length, 0));
  let at = 0;
  for (const e of encoded) {
    out.set(e, at);
    at += e.length;
  }
  return out;
}

export const NAR_MAGIC = tokens("nix-archive-1");
/** Up to the file size (a u64 follows, then the contents). */
export const NAR_REGULAR = tokens("(", "type", "regular", "contents");
export const NAR_EXECUTABLE = tokens("(", "type", "regular", "executable", "", "contents");
/** Up to the target (a NAR string follows). */
export const NAR_SYMLINK = tokens("(", "type", "symlink", "target");
export const NAR_DIRECTORY = tokens("(", "type", "directory");
/** Up to the entry name (a NAR string follows, then NAR_NODE). */
export const NAR_ENTRY = tokens("entry", "(", "name");
export const NAR_NODE = tokens("node");
export const NAR_CLOSE = tokens(")");
