import { InvalidInputError } from "../errors.js";

/**
 * Nix's base-32: alphabet without e, o, u, t; encodes from the last 5-bit
 * group of the byte string to the first (so it is not RFC 4648 base32).
 */
export const NIXBASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

const INDEX = new Int8Array(128).fill(-1);
for (let i = 0; i < NIXBASE32_ALPHABET.length; i++) INDEX[NIXBASE32_ALPHABET.charCodeAt(i)] = i;

export function nixbase32EncodedLength(byteLength: number): number {
  return Math.ceil((byteLength * 8) / 5);
}

export function nixbase32Encode(bytes: Uint8Array): string {
  const len = nixbase32EncodedLength(bytes.length);
  let out = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const lo = bytes[i]! >> j;
    const hi = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += NIXBASE32_ALPHABET[(lo | hi) & 0x1f];
  }
  return out;
}

/** Returns undefined when `s` is not valid nixbase32 (bad char, bad length, stray high bits). */
export function nixbase32DecodeOrUndefined(s: string): Uint8Array | undefined {
  const byteLength = Math.floor((s.length * 5) / 8);
  if (nixbase32EncodedLength(byteLength) !== s.length) return undefined;
  const out = new Uint8Array(byteLength);
  for (let n = 0; n < s.length; n++) {
    const code = s.charCodeAt(s.length - n - 1);
    const digit = code < 128 ? INDEX[code]! : -1;
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) out[i + 1]! |= carry;
    else if (carry !== 0) return undefined;
  }
  return out;
}

export function nixbase32Decode(s: string, what = "nixbase32 string"): Uint8Array {
  const out = nixbase32DecodeOrUndefined(s);
  if (out === undefined) throw new InvalidInputError(`${what} '${s}' is not valid nixbase32`);
  return out;
}
