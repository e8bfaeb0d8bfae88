/**
 * A tiny protobuf writer for expected bytes, independent of the production
 * code and of @bufbuild/protobuf: field numbers and wire types come straight
 * from the .proto files in the tests that use it.
 */

/** The base-128 varint of a non-negative integer up to 2^53. */
export function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** A length-delimited field (wire type 2): bytes, strings and embedded messages. */
export const lenField = (field: number, body: ArrayLike<number>): Uint8Array =>
  Uint8Array.from([...varint((field << 3) | 2), ...varint(body.length), ...Array.from(body)]);

/** A varint field (wire type 0); left out when `v` is 0, as proto3 does with defaults. */
export const varintField = (field: number, v: number): Uint8Array =>
  v === 0 ? new Uint8Array(0) : Uint8Array.from([...varint(field << 3), ...varint(v)]);

/** The fields (or any byte sequences) one after the other. */
export const fields = (...parts: ArrayLike<number>[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => Array.from(p)));
