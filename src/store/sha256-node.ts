/**
 * SHA-256 behind a tiny interface. This file is the only place in store/ that
 * uses `node:crypto` for SHA-256 (OpenSSL with SHA-NI, ~1.1 GB/s here; see
 * shared/deps-bench.md §2); a browser build swaps it for WebCrypto/hash-wasm.
 */
import { createHash } from "node:crypto";

export interface Sha256Hasher {
  update(data: Uint8Array): void;
  /** The 32-byte digest; the hasher must not be used afterwards. */
  digest(): Uint8Array;
}

export function createSha256(): Sha256Hasher {
  const h = createHash("sha256");
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      const b = h.digest();
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
  };
}

export function sha256(data: Uint8Array | string): Uint8Array {
  const h = createHash("sha256");
  h.update(data);
  const b = h.digest();
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
