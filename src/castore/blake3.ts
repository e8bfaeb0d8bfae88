/**
 * The one BLAKE3 implementation strata uses, behind a tiny interface so it
 * can be swapped (hash-wasm in the browser).
 *
 * Chosen by measurement (shared/deps-bench.md §1): `@napi-rs/blake-hash` runs
 * at ~5 GB/s on large inputs, within a few percent of `b3sum`, 6-7x wasm.
 */
import { Blake3Hasher as NativeHasher, blake3 as nativeBlake3 } from "@napi-rs/blake-hash";

export interface Blake3Hasher {
  update(data: Uint8Array): void;
  /** The 32-byte digest; the hasher must not be used afterwards. */
  digest(): Uint8Array;
}

export function createBlake3(): Blake3Hasher {
  const h = new NativeHasher();
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      const buf = h.digestBuffer();
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    },
  };
}

/** BLAKE3 of a complete byte string. */
export function blake3(data: Uint8Array): Uint8Array {
  const buf = nativeBlake3(data);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
