/**
 * Ed25519 behind three functions. This file is the only place in store/ that
 * uses `node:crypto` for Ed25519 (OpenSSL); a browser build swaps it for
 * WebCrypto or a pure-JS implementation, the way `sha256-node.ts` is swapped.
 *
 * Keys are raw bytes as Nix stores them: a 32-byte seed (the first half of a
 * Nix secret key) and a 32-byte public key. node:crypto only imports keys in
 * container formats, so the raw bytes are wrapped in the fixed DER prefixes of
 * PKCS#8 / SubjectPublicKeyInfo for the Ed25519 OID (RFC 8410).
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";

export const ED25519_SEED_LENGTH = 32;
export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;

// PKCS#8 PrivateKeyInfo { version 0, AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
// SubjectPublicKeyInfo { AlgorithmIdentifier { 1.3.101.112 }, BIT STRING (0 unused bits) key }
const SPKI_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);

function withPrefix(prefix: Uint8Array, raw: Uint8Array): Buffer {
  const out = Buffer.alloc(prefix.length + raw.length);
  out.set(prefix, 0);
  out.set(raw, prefix.length);
  return out;
}

function privateKeyObject(seed: Uint8Array): KeyObject {
  if (seed.length !== ED25519_SEED_LENGTH) {
    throw new RangeError(`Ed25519 seed has ${seed.length} bytes, expected ${ED25519_SEED_LENGTH}`);
  }
  return createPrivateKey({ key: withPrefix(PKCS8_PREFIX, seed), format: "der", type: "pkcs8" });
}

function toUint8Array(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The 32-byte public key belonging to a 32-byte seed. */
export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: "der", type: "spki" });
  return toUint8Array(spki).slice(SPKI_PREFIX.length);
}

/** The 64-byte signature of `message` (Ed25519 is deterministic: same key + message = same bytes). */
export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return toUint8Array(sign(null, message, privateKeyObject(seed)));
}

/**
 * Whether `signature` is a valid signature of `message` by `publicKey`.
 * Malformed input (wrong lengths, a public key that is not a curve point) is
 * simply "not valid": a verifier must never throw on attacker-controlled bytes.
 */
export function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) return false;
  if (signature.length !== ED25519_SIGNATURE_LENGTH) return false;
  try {
    const key = createPublicKey({
      key: withPrefix(SPKI_PREFIX, publicKey),
      format: "der",
      type: "spki",
    });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
