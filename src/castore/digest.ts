import { InvalidInputError } from "../errors.js";
import { blake3 } from "./blake3.js";
import { fromBase64, toBase64 } from "./bytes.js";

/** A 32-byte BLAKE3 digest. The brand keeps raw bytes from being passed by accident. */
export type B3Digest = Uint8Array & { readonly __brand: "B3Digest" };

export const B3_DIGEST_LENGTH = 32;

/** Validates length and brands the bytes (no copy). */
export function b3Digest(bytes: Uint8Array, what = "digest"): B3Digest {
  if (bytes.length !== B3_DIGEST_LENGTH) {
    throw new InvalidInputError(
      `${what}: a BLAKE3 digest has ${B3_DIGEST_LENGTH} bytes, got ${bytes.length}`,
    );
  }
  return bytes as B3Digest;
}

/** BLAKE3 of `data` as a B3Digest. */
export function hashB3(data: Uint8Array): B3Digest {
  return blake3(data) as B3Digest;
}

/** Human form: `b3:` + standard base64 with padding. */
export function formatB3(d: Uint8Array): string {
  return `b3:${toBase64(d)}`;
}

/** Parses `b3:<base64>`; throws InvalidInputError naming the input. */
export function parseB3(s: string): B3Digest {
  if (!s.startsWith("b3:"))
    throw new InvalidInputError(`'${s}' is not a b3: digest (missing 'b3:' prefix)`);
  const raw = fromBase64(s.slice(3));
  if (raw === undefined) throw new InvalidInputError(`'${s}' is not a b3: digest (bad base64)`);
  return b3Digest(raw, `'${s}'`);
}

/**
 * The canonical string form of a digest for use as a `Map` key (STYLE: one
 * canonical form). Hex-free latin1 packing would be shorter; base64 keeps it readable.
 */
export function digestKey(d: Uint8Array): string {
  return toBase64(d);
}
