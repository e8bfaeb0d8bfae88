/**
 * The domain PathInfo: everything strata knows about one store path — its
 * castore root node plus the Nix metadata a narinfo carries (NAR hash and
 * size, references, signatures, deriver, content address).
 *
 * Wire forms live elsewhere: `path-info-proto.ts` (tvix.store.v1.PathInfo)
 * and `narinfo.ts` (text); the conversions to and from a narinfo are here
 * because they decide which fields are cache-specific (URL, compression,
 * file hash/size) and which belong to the path.
 */
import { bytesEqual, compareBytes, utf8 } from "../castore/bytes.js";
import { type Node, validateNode } from "../castore/node.js";
import { InvalidInputError } from "../errors.js";
import { type ContentAddress, HASH_LENGTHS } from "./content-address.js";
import type { NarInfo } from "./narinfo.js";
import {
  fingerprint,
  type PublicKey,
  type SecretKey,
  type Signature,
  sign,
  signaturesEqual,
  sortSignatures,
  validateSignature,
  verify,
} from "./signature.js";
import type { StorePath } from "./store-path.js";

export interface PathInfo {
  readonly storePath: StorePath;
  /** The castore root node; its name (not stored here) is `storePath.basename`. */
  readonly node: Node;
  /** Referenced store paths (may include the path itself). No duplicates. */
  readonly references: StorePath[];
  /** Size of the NAR serialization of `node`, > 0. */
  readonly narSize: number;
  /** SHA-256 of the NAR serialization (32 bytes). */
  readonly narSha256: Uint8Array;
  readonly signatures: Signature[];
  /** The `.drv` that built the path (its name ends in `.drv`). */
  readonly deriver?: StorePath;
  readonly ca?: ContentAddress;
}

/**
 * Checks the invariants of a PathInfo and returns it (no copy). Throws
 * InvalidInputError naming the path and the field.
 */
export function validatePathInfo(info: PathInfo): PathInfo {
  const ctx = `path info ${info.storePath.absolute}`;
  validateNode(info.node, `${ctx}: node`);
  if (info.narSha256.length !== 32) {
    throw new InvalidInputError(
      `${ctx}: narSha256 has ${info.narSha256.length} bytes, expected 32`,
    );
  }
  // A NAR is never empty, and Nix treats NAR size 0 as "unknown" (it cannot
  // fingerprint such a path), so 0 is rejected as well.
  if (!Number.isSafeInteger(info.narSize) || info.narSize <= 0) {
    throw new InvalidInputError(`${ctx}: narSize ${info.narSize} is not a positive safe integer`);
  }
  const seen = new Set<string>();
  for (const r of info.references) {
    if (seen.has(r.basename)) {
      throw new InvalidInputError(`${ctx}: reference ${r.basename} is listed twice`);
    }
    seen.add(r.basename);
  }
  for (const [i, sig] of info.signatures.entries()) {
    validateSignature(sig, `${ctx}: signature #${i + 1}`);
  }
  if (info.deriver !== undefined && !info.deriver.name.endsWith(".drv")) {
    // The protobuf form stores the deriver name without `.drv`, so a deriver
    // without it could not be represented there.
    throw new InvalidInputError(`${ctx}: deriver ${info.deriver.basename} does not end in '.drv'`);
  }
  if (info.ca !== undefined) {
    const { method, algo, digest } = info.ca;
    if (digest.length !== HASH_LENGTHS[algo]) {
      throw new InvalidInputError(
        `${ctx}: content address digest has ${digest.length} bytes, expected ${HASH_LENGTHS[algo]} for ${algo}`,
      );
    }
    if (method === "text" && algo !== "sha256") {
      throw new InvalidInputError(`${ctx}: text content addresses are sha256 only`);
    }
  }
  return info;
}

/** The message its signatures sign (see `fingerprint` in signature.ts). */
export function pathInfoFingerprint(info: PathInfo): string {
  return fingerprint(info.storePath, info.narSha256, info.narSize, info.references);
}

/**
 * Returns a copy with a signature by `key` added. Ed25519 is deterministic, so
 * re-signing unchanged metadata yields the same signature, which is not added
 * twice; signatures by other keys (or older ones by this key) are kept, as
 * Nix's `nix store sign` does.
 */
export function signPathInfo(info: PathInfo, key: SecretKey): PathInfo {
  const sig = sign(pathInfoFingerprint(info), key);
  if (info.signatures.some((s) => signaturesEqual(s, sig))) return info;
  return { ...info, signatures: [...info.signatures, sig] };
}

/**
 * Whether at least one signature is valid under one of the trusted keys (the
 * test `nix store verify` / substitution applies). Signatures by untrusted
 * keys are ignored, not errors.
 */
export function verifyPathInfo(info: PathInfo, trusted: readonly PublicKey[]): boolean {
  const fp = pathInfoFingerprint(info);
  return info.signatures.some((sig) => verify(fp, sig, trusted));
}

/** Cache-specific narinfo fields: where the (compressed) NAR is and what it looks like. */
export interface NarLocation {
  readonly url: string;
  readonly compression: string;
  /** SHA-256 of the file at `url`. */
  readonly fileHash?: Uint8Array;
  readonly fileSize?: number;
}

/**
 * The narinfo Nix would write for this path: references sorted by basename
 * and signatures sorted and de-duplicated, because Nix keeps both in sets.
 */
export function pathInfoToNarInfo(info: PathInfo, location: NarLocation): NarInfo {
  validatePathInfo(info);
  return {
    storePath: info.storePath,
    url: location.url,
    compression: location.compression,
    ...(location.fileHash !== undefined && { fileHash: location.fileHash }),
    ...(location.fileSize !== undefined && { fileSize: location.fileSize }),
    narHash: info.narSha256,
    narSize: info.narSize,
    references: [...info.references].sort((a, b) =>
      compareBytes(utf8(a.basename), utf8(b.basename)),
    ),
    ...(info.deriver !== undefined && { deriver: info.deriver }),
    signatures: sortSignatures(info.signatures),
    ...(info.ca !== undefined && { ca: info.ca }),
  };
}

/**
 * A PathInfo from a narinfo and the root node its NAR was ingested into.
 * Cache-specific fields (URL, compression, file hash/size) and unknown fields
 * are dropped; the order of references and signatures is kept.
 */
export function pathInfoFromNarInfo(narinfo: NarInfo, node: Node): PathInfo {
  return validatePathInfo({
    storePath: narinfo.storePath,
    node,
    references: [...narinfo.references],
    narSize: narinfo.narSize,
    narSha256: narinfo.narHash,
    signatures: [...narinfo.signatures],
    ...(narinfo.deriver !== undefined && { deriver: narinfo.deriver }),
    ...(narinfo.ca !== undefined && { ca: narinfo.ca }),
  });
}

function nodesEqual(x: Node, y: Node): boolean {
  switch (x.type) {
    case "symlink":
      return y.type === "symlink" && bytesEqual(x.target, y.target);
    case "directory":
      return y.type === "directory" && bytesEqual(x.digest, y.digest) && x.size === y.size;
    case "file":
      return (
        y.type === "file" &&
        bytesEqual(x.digest, y.digest) &&
        x.size === y.size &&
        x.executable === y.executable
      );
  }
}

function optionalEqual<T>(
  x: T | undefined,
  y: T | undefined,
  eq: (a: T, b: T) => boolean,
): boolean {
  return x === undefined || y === undefined ? x === y : eq(x, y);
}

/** Field-by-field equality, order-sensitive (for tests and idempotent puts). */
export function pathInfosEqual(a: PathInfo, b: PathInfo): boolean {
  return (
    a.storePath.equals(b.storePath) &&
    nodesEqual(a.node, b.node) &&
    a.references.length === b.references.length &&
    a.references.every((r, i) => r.equals(b.references[i]!)) &&
    a.narSize === b.narSize &&
    bytesEqual(a.narSha256, b.narSha256) &&
    a.signatures.length === b.signatures.length &&
    a.signatures.every((s, i) => signaturesEqual(s, b.signatures[i]!)) &&
    optionalEqual(a.deriver, b.deriver, (x, y) => x.equals(y)) &&
    optionalEqual(
      a.ca,
      b.ca,
      (x, y) => x.method === y.method && x.algo === y.algo && bytesEqual(x.digest, y.digest),
    )
  );
}
