import { toHex, utf8 } from "../castore/bytes.js";
import { InvalidInputError } from "../errors.js";
import { nixbase32DecodeOrUndefined, nixbase32Encode } from "./nixbase32.js";
import { sha256 } from "./sha256-node.js";
import { STORE_DIR, STORE_PATH_DIGEST_LENGTH, StorePath } from "./store-path.js";

/** XOR-folds a hash into `size` bytes (Nix's `compressHash`). */
export function compressHash(hash: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < hash.length; i++) out[i % size]! ^= hash[i]!;
  return out;
}

/**
 * `makeStorePath`: the store path whose digest is the compressed SHA-256 of
 * `<type>:sha256:<hex inner digest>:/nix/store:<name>`.
 */
export function makeStorePath(type: string, innerSha256: Uint8Array, name: string): StorePath {
  const fingerprint = `${type}:sha256:${toHex(innerSha256)}:${STORE_DIR}:${name}`;
  return StorePath.fromParts(
    compressHash(sha256(utf8(fingerprint)), STORE_PATH_DIGEST_LENGTH),
    name,
  );
}

function typeWithReferences(type: string, references: readonly StorePath[], self: boolean): string {
  const refs = references.map((r) => r.absolute).sort();
  let t = type;
  for (const r of refs) t += `:${r}`;
  if (self) t += ":self";
  return t;
}

export type HashAlgo = "md5" | "sha1" | "sha256" | "sha512";

export const HASH_LENGTHS: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/**
 * How a store path's content is addressed (the narinfo/PathInfo `CA` field):
 * - `nar`: fixed-output, recursive (NAR) hash — what `nix-store --add` makes;
 * - `flat`: fixed-output, flat file hash — what `nix store add-file` makes;
 * - `text`: text hashing (derivations, `builtins.toFile`), sha256 only.
 */
export interface ContentAddress {
  readonly method: "nar" | "flat" | "text";
  readonly algo: HashAlgo;
  readonly digest: Uint8Array;
}

/** `fixed:r:sha256:<nix32>`, `fixed:sha256:<nix32>` or `text:sha256:<nix32>`. */
export function formatContentAddress(ca: ContentAddress): string {
  const h = `${ca.algo}:${nixbase32Encode(ca.digest)}`;
  switch (ca.method) {
    case "nar":
      return `fixed:r:${h}`;
    case "flat":
      return `fixed:${h}`;
    case "text":
      return `text:${h}`;
  }
}

export function parseContentAddress(s: string): ContentAddress {
  let method: ContentAddress["method"];
  let rest: string;
  if (s.startsWith("fixed:r:")) {
    method = "nar";
    rest = s.slice(8);
  } else if (s.startsWith("fixed:")) {
    method = "flat";
    rest = s.slice(6);
  } else if (s.startsWith("text:")) {
    method = "text";
    rest = s.slice(5);
  } else {
    throw new InvalidInputError(`content address '${s}': expected 'fixed:r:', 'fixed:' or 'text:'`);
  }
  const colon = rest.indexOf(":");
  const algo = rest.slice(0, colon) as HashAlgo;
  if (colon < 0 || !(algo in HASH_LENGTHS)) {
    throw new InvalidInputError(
      `content address '${s}': unknown hash algorithm '${rest.slice(0, colon)}'`,
    );
  }
  if (method === "text" && algo !== "sha256") {
    throw new InvalidInputError(`content address '${s}': text hashing is sha256 only`);
  }
  const digest = nixbase32DecodeOrUndefined(rest.slice(colon + 1));
  if (digest === undefined || digest.length !== HASH_LENGTHS[algo]) {
    throw new InvalidInputError(`content address '${s}': digest is not a nixbase32 ${algo} hash`);
  }
  return { method, algo, digest };
}

/**
 * The store path of a content-addressed object, as Nix computes it
 * (`makeFixedOutputPath` / `makeTextPath` in libstore/store-api.cc).
 * `references` may not include the path itself; set `self` for a self-reference.
 */
export function contentAddressedStorePath(
  name: string,
  ca: ContentAddress,
  references: readonly StorePath[] = [],
  self = false,
): StorePath {
  if (ca.method === "text") {
    if (self) throw new InvalidInputError("text-addressed paths cannot refer to themselves");
    return makeStorePath(typeWithReferences("text", references, false), ca.digest, name);
  }
  if (ca.method === "nar" && ca.algo === "sha256") {
    return makeStorePath(typeWithReferences("source", references, self), ca.digest, name);
  }
  if (references.length > 0 || self) {
    throw new InvalidInputError(
      "fixed-output paths other than recursive sha256 cannot have references",
    );
  }
  const inner = sha256(
    utf8(`fixed:out:${ca.method === "nar" ? "r:" : ""}${ca.algo}:${toHex(ca.digest)}:`),
  );
  return makeStorePath("output:out", inner, name);
}
