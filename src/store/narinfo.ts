/**
 * `.narinfo` files: the text form of a path's metadata in a Nix binary cache.
 *
 * Rendering writes exactly what Nix 2.8 writes (`NarInfo::to_string`): one
 * `Key: value\n` line per field in the fixed order StorePath, URL,
 * Compression, FileHash, FileSize, NarHash, NarSize, References, Deriver,
 * Sig..., CA; `References: ` is written even when empty; Deriver, Sig and CA
 * only when present. So a narinfo written by Nix parses and re-renders to the
 * same bytes.
 *
 * Parsing is stricter than Nix 2.8 where a lax reading could make two readers
 * disagree about signed or addressing data, and otherwise accepts what Nix
 * accepts (behaviours checked against `nix path-info --store file://...`):
 * - every line is `Key: value` ending in `\n` (Nix also requires the final
 *   newline; it does not check the space and silently drops the character
 *   after the colon, we reject a missing space). Keys are `[A-Za-z0-9_.-]+`:
 *   Nix would silently ignore e.g. ` Sig: ...` (key with a leading space);
 * - required: StorePath, URL (non-empty), NarHash, NarSize (> 0, as in Nix);
 * - a repeated field is an error. Nix 2.8 lets the last StorePath/URL/NarHash/
 *   NarSize/... win (so a second StorePath line silently re-targets the
 *   narinfo), errors on a second CA and on a second References after a
 *   non-empty one; Snix errors on every duplicate. Only `Sig` repeats;
 * - NarHash and FileHash are SHA-256 as `sha256:<nix32|hex|base64>` or SRI
 *   `sha256-<base64>` (what Nix's `Hash::parseAnyPrefixed` accepts; other
 *   algorithms Nix parses but cannot fingerprint or render, so we reject
 *   them); they are rendered as `sha256:<nix32>`;
 * - numbers are plain decimal safe integers (no sign, no leading zeros);
 * - References are space-separated store path basenames, no duplicates (Nix
 *   keeps them in a set; a duplicate would make the signed fingerprint depend
 *   on who de-duplicates). A missing References line means none (as in Nix);
 * - Deriver is a basename ending in `.drv` (as Snix requires);
 *   `Deriver: unknown-deriver` (old tools) means no deriver, as in Nix;
 * - Sig values must be well-formed `<name>:<base64 of 64 bytes>` (Nix keeps
 *   malformed ones and ignores them when verifying);
 * - a missing Compression is kept missing (Nix reads it as `bzip2`);
 * - unknown keys (e.g. `System:` from old Hydra) are kept in `extraFields`,
 *   in order, and rendered after the known fields. Nix ignores them; keeping
 *   them lets a cache serve back what it was given. They are not signed.
 *
 * Re-rendering is byte-identical for anything Nix writes; non-canonical input
 * comes back canonical (hashes as nix32, no `unknown-deriver`, unknown fields
 * moved to the end).
 *
 * Not checked here: that StorePath matches the `<hash>.narinfo` it was fetched
 * as (Nix 2.8 does not check that either); callers fetching by hash must.
 */
import { fromBase64, fromHex } from "../castore/bytes.js";
import { InvalidInputError } from "../errors.js";
import {
  type ContentAddress,
  formatContentAddress,
  parseContentAddress,
} from "./content-address.js";
import { nixbase32DecodeOrUndefined, nixbase32Encode } from "./nixbase32.js";
import { formatSignature, parseSignature, type Signature, validateSignature } from "./signature.js";
import { StorePath } from "./store-path.js";

/** A field the parser did not know, kept verbatim. */
export interface NarInfoField {
  readonly key: string;
  readonly value: string;
}

export interface NarInfo {
  readonly storePath: StorePath;
  /** Location of the (compressed) NAR, relative to the cache root, e.g. `nar/<filehash>.nar.xz`. */
  readonly url: string;
  /** `none`, `xz`, `zstd`, `bzip2`, `br`, `gzip`...; absent means Nix assumes `bzip2`. */
  readonly compression?: string;
  /** SHA-256 of the file at `url` (32 bytes). */
  readonly fileHash?: Uint8Array;
  /** Size of the file at `url`. */
  readonly fileSize?: number;
  /** SHA-256 of the uncompressed NAR (32 bytes). */
  readonly narHash: Uint8Array;
  readonly narSize: number;
  /** In file order (Nix writes them sorted by basename). */
  readonly references: StorePath[];
  /** The `.drv` that built the path. */
  readonly deriver?: StorePath;
  /** In file order (Nix writes them sorted). */
  readonly signatures: Signature[];
  readonly ca?: ContentAddress;
  /** Unknown fields, in file order; rendered after the known ones. */
  readonly extraFields?: NarInfoField[];
}

const KNOWN_KEYS = new Set([
  "StorePath",
  "URL",
  "Compression",
  "FileHash",
  "FileSize",
  "NarHash",
  "NarSize",
  "References",
  "Deriver",
  "Sig",
  "CA",
]);

const SHA256_LENGTH = 32;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Parses a SHA-256 narinfo hash field (see the module comment for the accepted forms). */
function parseSha256(value: string): Uint8Array {
  let bytes: Uint8Array | undefined;
  if (value.startsWith("sha256:")) {
    const rest = value.slice(7);
    // Nix tells the encodings apart by length, so do we.
    if (rest.length === 52) bytes = nixbase32DecodeOrUndefined(rest);
    else if (rest.length === 64) bytes = fromHex(rest);
    else if (rest.length === 44) bytes = fromBase64(rest);
    else {
      throw new InvalidInputError(
        `'${rest}' has ${rest.length} characters, not a nix32 (52), hex (64) or base64 (44) SHA-256`,
      );
    }
  } else if (value.startsWith("sha256-")) {
    bytes = fromBase64(value.slice(7));
  } else {
    const algo = /^(md5|sha1|sha512)[:-]/.exec(value);
    if (algo !== null) {
      throw new InvalidInputError(`${algo[1]} hashes are not supported here, only sha256`);
    }
    throw new InvalidInputError(
      `'${value}' is not a hash (expected 'sha256:<nix32>' or 'sha256-<base64>')`,
    );
  }
  if (bytes === undefined || bytes.length !== SHA256_LENGTH) {
    throw new InvalidInputError(`'${value}' is not a valid SHA-256 hash`);
  }
  return bytes;
}

function parseSize(value: string): number {
  if (!DECIMAL.test(value)) throw new InvalidInputError(`'${value}' is not a plain decimal number`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new InvalidInputError(`${value} is larger than the largest safe integer`);
  }
  return n;
}

/** A line's error: `narinfo line N (Key): problem`. */
function lineError(
  lineNo: number,
  key: string,
  problem: string,
  cause?: unknown,
): InvalidInputError {
  return new InvalidInputError(
    `narinfo line ${lineNo} (${key}): ${problem}`,
    cause === undefined ? undefined : { cause },
  );
}

/** Keys are words; anything else (e.g. ` Sig`, which Nix would silently ignore) is rejected. */
const KEY = /^[A-Za-z0-9_.-]+$/;

/** Parses narinfo text (see the module comment for what is accepted). */
export function parseNarInfo(text: string): NarInfo {
  if (text.length > 0 && !text.endsWith("\n")) {
    const lineNo = text.split("\n").length;
    throw new InvalidInputError(`narinfo line ${lineNo}: missing final newline`);
  }
  const lines = text.length === 0 ? [] : text.slice(0, -1).split("\n");

  let storePath: StorePath | undefined;
  let url: string | undefined;
  let compression: string | undefined;
  let fileHash: Uint8Array | undefined;
  let fileSize: number | undefined;
  let narHash: Uint8Array | undefined;
  let narSize: number | undefined;
  let references: StorePath[] = [];
  let deriver: StorePath | undefined;
  let ca: ContentAddress | undefined;
  const signatures: Signature[] = [];
  const extraFields: NarInfoField[] = [];
  const seenAt = new Map<string, number>();

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const key = colon < 0 ? "" : line.slice(0, colon);
    if (!KEY.test(key)) {
      throw new InvalidInputError(
        `narinfo line ${lineNo}: expected 'Key: value', got ${JSON.stringify(line)}`,
      );
    }
    if (line.charAt(colon + 1) !== " ") throw lineError(lineNo, key, "expected a space after ':'");
    const value = line.slice(colon + 2);
    if (value.includes("\r")) {
      throw lineError(lineNo, key, "value contains a carriage return (CRLF line endings?)");
    }

    if (KNOWN_KEYS.has(key) && key !== "Sig") {
      const first = seenAt.get(key);
      if (first !== undefined)
        throw lineError(lineNo, key, `repeated field (first on line ${first})`);
      seenAt.set(key, lineNo);
    }

    try {
      switch (key) {
        case "StorePath":
          storePath = StorePath.parseAbsolute(value);
          break;
        case "URL":
          if (value === "") throw new InvalidInputError("URL is empty");
          url = value;
          break;
        case "Compression":
          if (value === "") throw new InvalidInputError("Compression is empty");
          compression = value;
          break;
        case "FileHash":
          fileHash = parseSha256(value);
          break;
        case "FileSize":
          fileSize = parseSize(value);
          break;
        case "NarHash":
          narHash = parseSha256(value);
          break;
        case "NarSize":
          narSize = parseSize(value);
          if (narSize === 0)
            throw new InvalidInputError("NAR size is 0 (Nix treats that as missing)");
          break;
        case "References":
          references = parseReferences(value);
          break;
        case "Deriver":
          deriver = value === "unknown-deriver" ? undefined : parseDeriver(value);
          break;
        case "Sig":
          signatures.push(parseSignature(value));
          break;
        case "CA":
          ca = parseContentAddress(value);
          break;
        default:
          extraFields.push({ key, value });
      }
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      // The message is carried over, so only the deeper cause is kept (no repeated line in the chain).
      throw lineError(lineNo, key, err.message, err.cause);
    }
  }

  const missing = (field: string): InvalidInputError =>
    new InvalidInputError(`narinfo: required field ${field} is missing`);
  if (storePath === undefined) throw missing("StorePath");
  if (url === undefined) throw missing("URL");
  if (narHash === undefined) throw missing("NarHash");
  if (narSize === undefined) throw missing("NarSize");

  return {
    storePath,
    url,
    ...(compression !== undefined && { compression }),
    ...(fileHash !== undefined && { fileHash }),
    ...(fileSize !== undefined && { fileSize }),
    narHash,
    narSize,
    references,
    ...(deriver !== undefined && { deriver }),
    signatures,
    ...(ca !== undefined && { ca }),
    ...(extraFields.length > 0 && { extraFields }),
  };
}

function parseReferences(value: string): StorePath[] {
  if (value === "") return [];
  const out: StorePath[] = [];
  const seen = new Set<string>();
  for (const [i, token] of value.split(" ").entries()) {
    if (token === "") throw new InvalidInputError(`reference #${i + 1} is empty (stray space?)`);
    if (seen.has(token)) throw new InvalidInputError(`reference ${token} is listed twice`);
    seen.add(token);
    out.push(StorePath.parseBasename(token));
  }
  return out;
}

function parseDeriver(value: string): StorePath {
  const deriver = StorePath.parseBasename(value);
  if (!deriver.name.endsWith(".drv")) {
    throw new InvalidInputError(`deriver '${value}' does not end in '.drv'`);
  }
  return deriver;
}

function checkLineValue(key: string, value: string): void {
  if (/[\r\n]/.test(value)) {
    throw new InvalidInputError(`narinfo ${key}: value contains a line break`);
  }
}

function checkSize(key: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new InvalidInputError(`narinfo ${key}: ${n} is not a safe integer >= ${min}`);
  }
}

function checkSha256(key: string, h: Uint8Array): void {
  if (h.length !== SHA256_LENGTH) {
    throw new InvalidInputError(`narinfo ${key}: SHA-256 has ${h.length} bytes, expected 32`);
  }
}

/**
 * Renders a narinfo as Nix 2.8 does. Values are checked so that the output
 * always parses again: no line breaks (they would inject fields), URL and
 * Compression non-empty, sizes safe integers, hashes 32 bytes, references
 * unique, deriver ending in `.drv`.
 */
export function renderNarInfo(info: NarInfo): string {
  if (info.url === "") throw new InvalidInputError("narinfo URL: is empty");
  checkLineValue("URL", info.url);
  checkSha256("NarHash", info.narHash);
  checkSize("NarSize", info.narSize, 1);

  let out = `StorePath: ${info.storePath.absolute}\n`;
  out += `URL: ${info.url}\n`;
  if (info.compression !== undefined) {
    if (info.compression === "") throw new InvalidInputError("narinfo Compression: is empty");
    checkLineValue("Compression", info.compression);
    out += `Compression: ${info.compression}\n`;
  }
  if (info.fileHash !== undefined) {
    checkSha256("FileHash", info.fileHash);
    out += `FileHash: sha256:${nixbase32Encode(info.fileHash)}\n`;
  }
  if (info.fileSize !== undefined) {
    checkSize("FileSize", info.fileSize, 0);
    out += `FileSize: ${info.fileSize}\n`;
  }
  out += `NarHash: sha256:${nixbase32Encode(info.narHash)}\n`;
  out += `NarSize: ${info.narSize}\n`;
  const refs = info.references.map((r) => r.basename);
  const dup = refs.find((r, i) => refs.indexOf(r) !== i);
  if (dup !== undefined) throw new InvalidInputError(`narinfo References: ${dup} is listed twice`);
  out += `References: ${refs.join(" ")}\n`;
  if (info.deriver !== undefined) {
    if (!info.deriver.name.endsWith(".drv")) {
      throw new InvalidInputError(
        `narinfo Deriver: ${info.deriver.basename} does not end in '.drv'`,
      );
    }
    out += `Deriver: ${info.deriver.basename}\n`;
  }
  for (const sig of info.signatures) {
    out += `Sig: ${formatSignature(validateSignature(sig, "narinfo Sig"))}\n`;
  }
  if (info.ca !== undefined) out += `CA: ${formatContentAddress(info.ca)}\n`;
  for (const { key, value } of info.extraFields ?? []) {
    if (KNOWN_KEYS.has(key)) {
      throw new InvalidInputError(`narinfo extra field '${key}' is a known field`);
    }
    if (!KEY.test(key)) {
      throw new InvalidInputError(`narinfo extra field key ${JSON.stringify(key)} is malformed`);
    }
    checkLineValue(key, value);
    out += `${key}: ${value}\n`;
  }
  return out;
}
