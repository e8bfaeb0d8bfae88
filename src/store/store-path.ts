import { InvalidInputError } from "../errors.js";
import { nixbase32DecodeOrUndefined, nixbase32Encode } from "./nixbase32.js";

export const STORE_DIR = "/nix/store";
export const STORE_PATH_DIGEST_LENGTH = 20;
/** 20 bytes in nixbase32. */
export const STORE_PATH_HASH_CHARS = 32;
export const MAX_STORE_PATH_NAME_LENGTH = 211;

/**
 * A store path: 20-byte digest + name, e.g.
 * `/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top`.
 */
export class StorePath {
  readonly digest: Uint8Array;
  readonly name: string;

  private constructor(digest: Uint8Array, name: string) {
    this.digest = digest;
    this.name = name;
  }

  static fromParts(digest: Uint8Array, name: string): StorePath {
    if (digest.length !== STORE_PATH_DIGEST_LENGTH) {
      throw new InvalidInputError(
        `store path digest has ${digest.length} bytes, expected ${STORE_PATH_DIGEST_LENGTH}`,
      );
    }
    const problem = storePathNameProblem(name);
    if (problem !== undefined) throw new InvalidInputError(`store path name '${name}': ${problem}`);
    return new StorePath(digest, name);
  }

  /** Parses `<32 nixbase32 chars>-<name>` (the basename of a store path). */
  static parseBasename(basename: string): StorePath {
    const digest = parseHashPart(basename.slice(0, STORE_PATH_HASH_CHARS), basename);
    if (basename.charAt(STORE_PATH_HASH_CHARS) !== "-") {
      throw new InvalidInputError(
        `store path basename '${basename}': expected '-' after the ${STORE_PATH_HASH_CHARS}-character hash`,
      );
    }
    return StorePath.fromParts(digest, basename.slice(STORE_PATH_HASH_CHARS + 1));
  }

  /** Parses an absolute store path `/nix/store/<hash>-<name>` (no trailing components). */
  static parseAbsolute(path: string): StorePath {
    const prefix = `${STORE_DIR}/`;
    if (!path.startsWith(prefix)) {
      throw new InvalidInputError(`'${path}' is not in the Nix store (expected '${prefix}...')`);
    }
    const rest = path.slice(prefix.length);
    if (rest.includes("/")) {
      throw new InvalidInputError(`'${path}' is below a store path, not a store path itself`);
    }
    return StorePath.parseBasename(rest);
  }

  /**
   * Splits `/nix/store/<hash>-<name>[/sub/path]` into the store path and the
   * relative sub-path components (empty for the store path itself).
   */
  static parseWithSubpath(path: string): { storePath: StorePath; subpath: string[] } {
    const prefix = `${STORE_DIR}/`;
    if (!path.startsWith(prefix)) {
      throw new InvalidInputError(`'${path}' is not in the Nix store (expected '${prefix}...')`);
    }
    const [base, ...rest] = path.slice(prefix.length).split("/");
    return {
      storePath: StorePath.parseBasename(base ?? ""),
      subpath: rest.filter((c) => c !== ""),
    };
  }

  get hashPart(): string {
    return nixbase32Encode(this.digest);
  }

  get basename(): string {
    return `${this.hashPart}-${this.name}`;
  }

  get absolute(): string {
    return `${STORE_DIR}/${this.basename}`;
  }

  toString(): string {
    return this.absolute;
  }

  equals(other: StorePath): boolean {
    return this.basename === other.basename;
  }
}

function parseHashPart(hash: string, whole: string): Uint8Array {
  if (hash.length !== STORE_PATH_HASH_CHARS) {
    throw new InvalidInputError(`store path basename '${whole}' is too short`);
  }
  const digest = nixbase32DecodeOrUndefined(hash);
  if (digest === undefined) {
    throw new InvalidInputError(
      `store path basename '${whole}': hash part '${hash}' is not valid nixbase32`,
    );
  }
  return digest;
}

/** Parses a bare 32-character hash part (as in `<hash>.narinfo`). */
export function parseStorePathHashPart(hash: string): Uint8Array {
  return parseHashPart(hash, hash);
}

/**
 * Why `name` is not a valid store path name, or undefined. Allowed: 1..211
 * characters of `[A-Za-z0-9+\-._?=]`. A leading `.` is accepted: Snix
 * parses it and Nix 2.8 creates it (`nix-store --add .hidden` works).
 */
export function storePathNameProblem(name: string): string | undefined {
  if (name.length === 0) return "name is empty";
  if (name.length > MAX_STORE_PATH_NAME_LENGTH) {
    return `name is longer than ${MAX_STORE_PATH_NAME_LENGTH} characters`;
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok =
      (c >= 0x30 && c <= 0x39) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x61 && c <= 0x7a) ||
      c === 0x2b ||
      c === 0x2d ||
      c === 0x2e ||
      c === 0x5f ||
      c === 0x3f ||
      c === 0x3d;
    if (!ok)
      return `character '${name[i]}' at position ${i} is not allowed (allowed: A-Z a-z 0-9 + - . _ ? =)`;
  }
  return undefined;
}
