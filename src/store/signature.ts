/**
 * Nix signing keys and narinfo signatures (`Sig:` lines).
 *
 * Formats, as written by `nix key generate-secret` / `convert-secret-to-public`
 * and by Nix when it signs a path:
 * - secret key `<name>:<base64 of 64 bytes>`: the 32-byte Ed25519 seed
 *   followed by the 32-byte public key (libsodium's secret key layout);
 * - public key `<name>:<base64 of 32 bytes>`;
 * - signature `<name>:<base64 of 64 bytes>`, where `<name>` is the name of the
 *   key that made it (verifiers pick the trusted key by that name).
 *
 * What is signed is the path's fingerprint (see `fingerprint`). This module is
 * browser-safe itself; the Ed25519 primitive comes from `ed25519-node.ts`.
 */
import { bytesEqual, compareBytes, fromBase64, toBase64, utf8 } from "../castore/bytes.js";
import { InvalidInputError } from "../errors.js";
import {
  ED25519_PUBLIC_KEY_LENGTH,
  ED25519_SEED_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
} from "./ed25519-node.js";
import { nixbase32Encode } from "./nixbase32.js";
import type { StorePath } from "./store-path.js";

/** A signature made by the key called `name`; `data` is the 64-byte Ed25519 signature. */
export interface Signature {
  readonly name: string;
  readonly data: Uint8Array;
}

/** An Ed25519 public key with its Nix key name. */
export interface PublicKey {
  readonly name: string;
  /** 32 bytes. */
  readonly key: Uint8Array;
}

/** An Ed25519 secret key with its Nix key name. */
export interface SecretKey {
  readonly name: string;
  /** The 32-byte seed (first half of the Nix secret key). */
  readonly seed: Uint8Array;
  /** The 32-byte public key (second half of the Nix secret key), checked against the seed. */
  readonly publicKey: Uint8Array;
}

export const SECRET_KEY_LENGTH = ED25519_SEED_LENGTH + ED25519_PUBLIC_KEY_LENGTH;
export const SIGNATURE_LENGTH = ED25519_SIGNATURE_LENGTH;

/**
 * Why `name` cannot be a key name, or undefined. Nix splits `name:base64` at
 * the first colon, so a name cannot contain one; `trusted-public-keys` is a
 * whitespace-separated list, so a name with whitespace could never be trusted.
 */
export function keyNameProblem(name: string): string | undefined {
  if (name.length === 0) return "key name is empty";
  if (name.includes(":")) return "key name contains ':'";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[\s\x00-\x1f\x7f]/.test(name)) return "key name contains whitespace or a control character";
  return undefined;
}

function checkKeyName(name: string, what: string): void {
  const problem = keyNameProblem(name);
  if (problem !== undefined) throw new InvalidInputError(`${what}: ${problem}`);
}

/** Splits `<name>:<base64>` and decodes the base64 part, checking its length. */
function splitNamed(
  text: string,
  what: string,
  expectedLength: number,
): { name: string; bytes: Uint8Array } {
  const colon = text.indexOf(":");
  if (colon < 0) throw new InvalidInputError(`${what}: expected '<name>:<base64>', found no ':'`);
  const name = text.slice(0, colon);
  checkKeyName(name, what);
  const b64 = text.slice(colon + 1);
  const bytes = fromBase64(b64);
  if (bytes === undefined) {
    throw new InvalidInputError(`${what} '${name}': the part after ':' is not valid base64`);
  }
  if (bytes.length !== expectedLength) {
    throw new InvalidInputError(
      `${what} '${name}': expected ${expectedLength} bytes after ':', got ${bytes.length}`,
    );
  }
  return { name, bytes };
}

/**
 * Key files are text files: `nix key generate-secret` writes no trailing
 * newline, but editors and `echo` add one, and Nix ignores it too.
 */
function trimKeyText(text: string): string {
  return text.replace(/\s+$/, "").replace(/^\s+/, "");
}

/** Parses a Nix secret key (`<name>:<base64 of seed ‖ public key>`, as in a key file). */
export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = splitNamed(trimKeyText(text), "secret key", SECRET_KEY_LENGTH);
  const seed = bytes.slice(0, ED25519_SEED_LENGTH);
  const publicKey = bytes.slice(ED25519_SEED_LENGTH);
  // Nix signs with the stored public half as is, so a mismatched half would
  // silently produce signatures nobody can verify; refuse such keys up front.
  if (!bytesEqual(ed25519PublicKey(seed), publicKey)) {
    throw new InvalidInputError(
      `secret key '${name}': the public key half does not belong to the seed (corrupted key?)`,
    );
  }
  return { name, seed, publicKey };
}

/** Parses a Nix public key (`<name>:<base64 of 32 bytes>`, as in `trusted-public-keys`). */
export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = splitNamed(trimKeyText(text), "public key", ED25519_PUBLIC_KEY_LENGTH);
  return { name, key: bytes };
}

/** `<name>:<base64>`, the form `nix key generate-secret` writes (no newline). */
export function formatSecretKey(key: SecretKey): string {
  const bytes = new Uint8Array(SECRET_KEY_LENGTH);
  bytes.set(key.seed, 0);
  bytes.set(key.publicKey, ED25519_SEED_LENGTH);
  return `${key.name}:${toBase64(bytes)}`;
}

/** `<name>:<base64>`, the form `nix key convert-secret-to-public` writes (no newline). */
export function formatPublicKey(key: PublicKey): string {
  return `${key.name}:${toBase64(key.key)}`;
}

/** The public half of a secret key, under the same name. */
export function publicKeyOf(secret: SecretKey): PublicKey {
  return { name: secret.name, key: secret.publicKey };
}

/** A new secret key from a 32-byte seed (the caller supplies the randomness). */
export function secretKeyFromSeed(name: string, seed: Uint8Array): SecretKey {
  checkKeyName(name, "secret key");
  if (seed.length !== ED25519_SEED_LENGTH) {
    throw new InvalidInputError(
      `secret key '${name}': seed has ${seed.length} bytes, expected ${ED25519_SEED_LENGTH}`,
    );
  }
  return { name, seed: seed.slice(), publicKey: ed25519PublicKey(seed) };
}

/** Parses a `Sig:` value `<key name>:<base64 of 64 bytes>`. */
export function parseSignature(text: string): Signature {
  const { name, bytes } = splitNamed(text, "signature", SIGNATURE_LENGTH);
  return { name, data: bytes };
}

export function formatSignature(sig: Signature): string {
  return `${sig.name}:${toBase64(sig.data)}`;
}

/** Checks a signature's name and length (for signatures not parsed from text). */
export function validateSignature(sig: Signature, what = "signature"): Signature {
  checkKeyName(sig.name, what);
  if (sig.data.length !== SIGNATURE_LENGTH) {
    throw new InvalidInputError(
      `${what} '${sig.name}': has ${sig.data.length} bytes, expected ${SIGNATURE_LENGTH}`,
    );
  }
  return sig;
}

export function signaturesEqual(a: Signature, b: Signature): boolean {
  return a.name === b.name && bytesEqual(a.data, b.data);
}

/**
 * Sorts and de-duplicates signatures the way Nix keeps them (a `std::set` of
 * the `name:base64` strings, compared bytewise), which is the order in which
 * Nix writes `Sig:` lines.
 */
export function sortSignatures(sigs: readonly Signature[]): Signature[] {
  const byText = new Map<string, Signature>();
  for (const s of sigs) byText.set(formatSignature(s), s);
  return [...byText.entries()].sort(([a], [b]) => compareBytes(utf8(a), utf8(b))).map(([, s]) => s);
}

/**
 * The message a narinfo signature signs:
 * `1;<store path>;sha256:<nix32 NAR hash>;<NAR size>;<references>` where the
 * references are absolute store paths, sorted and comma-joined. Nix holds
 * references in a set, so duplicates collapse; the same is done here. Nix
 * refuses to fingerprint a path of NAR size 0 (size unknown), and so do we.
 */
export function fingerprint(
  storePath: StorePath,
  narSha256: Uint8Array,
  narSize: number,
  references: readonly StorePath[],
): string {
  if (narSha256.length !== 32) {
    throw new InvalidInputError(
      `fingerprint of ${storePath.absolute}: NAR hash has ${narSha256.length} bytes, expected 32`,
    );
  }
  if (!Number.isSafeInteger(narSize) || narSize <= 0) {
    throw new InvalidInputError(
      `fingerprint of ${storePath.absolute}: NAR size ${narSize} is not a positive safe integer`,
    );
  }
  // Absolute paths share the store dir prefix and are ASCII, so JS string
  // order equals the bytewise order of Nix's std::set<StorePath>.
  const refs = [...new Set(references.map((r) => r.absolute))].sort();
  return `1;${storePath.absolute};sha256:${nixbase32Encode(narSha256)};${narSize};${refs.join(",")}`;
}

/** Signs a fingerprint; the signature carries the key's name. */
export function sign(fingerprintText: string, key: SecretKey): Signature {
  return { name: key.name, data: ed25519Sign(key.seed, utf8(fingerprintText)) };
}

/**
 * Whether `sig` is a valid signature of the fingerprint by one of `publicKeys`.
 * Only keys whose name equals the signature's name are tried (as Nix does);
 * a signature by an unknown key is not valid.
 */
export function verify(
  fingerprintText: string,
  sig: Signature,
  publicKeys: readonly PublicKey[],
): boolean {
  const message = utf8(fingerprintText);
  for (const pk of publicKeys) {
    if (pk.name === sig.name && ed25519Verify(pk.key, message, sig.data)) return true;
  }
  return false;
}
