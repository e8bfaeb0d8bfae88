/**
 * The one BLAKE3 implementation strata uses, behind a tiny interface so it
 * can be swapped (a browser build uses hash-wasm only).
 *
 * Chosen by measurement (shared/deps-bench.md §1, and again here):
 * `@napi-rs/blake-hash` runs at ~5 GB/s on large inputs, within a few percent
 * of `b3sum`, 6-7x wasm; but each native call costs ~1.4 us, so for inputs
 * under 2 KiB (directory messages, small files) hash-wasm is 2-3x faster
 * (0.5 us vs 1.4 us for 100 bytes).
 */

import { createBLAKE3 } from "hash-wasm";
import {
  Blake3Hasher as NativeHasher,
  blake3Native as nativeBlake3,
} from "./blake3-native-node.js";

export interface Blake3Hasher {
  update(data: Uint8Array): void;
  /** The 32-byte digest; the hasher must not be used afterwards. */
  digest(): Uint8Array;
}

export function createBlake3(): Blake3Hasher {
  const h = new NativeHasher();
  return {
    update(data) {
      h.update(asBuffer(data));
    },
    digest() {
      const buf = h.digestBuffer();
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    },
  };
}

/** Below this many bytes the wasm hasher beats the native call overhead. */
const SMALL_INPUT = 2048;

// One shared wasm instance: hashing is synchronous, so calls never interleave.
// Compiled in the background rather than awaited at load (10-20 ms of every
// CLI start); until it is ready the native hasher serves small inputs too.
let wasm: Awaited<ReturnType<typeof createBLAKE3>> | undefined;
/** Settles once the wasm hasher is in use (or known unavailable); never rejects. */
export const blake3Ready: Promise<void> = createBLAKE3().then(
  (instance) => {
    wasm = instance;
  },
  () => {
    // No WebAssembly here: the native hasher serves every size.
  },
);

/** BLAKE3 of a complete byte string. */
export function blake3(data: Uint8Array): Uint8Array {
  if (data.length < SMALL_INPUT && wasm !== undefined) {
    wasm.init();
    wasm.update(data);
    return wasm.digest("binary");
  }
  const buf = nativeBlake3(asBuffer(data));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A Buffer view of the same memory (no copy): the binding's types ask for Buffers. */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
