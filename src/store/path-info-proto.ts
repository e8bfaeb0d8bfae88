/**
 * The edge between the domain PathInfo and `tvix.store.v1.PathInfo`
 * (ARCHITECTURE §2 "PathInfo"): `node` (1, root Entry named after the store
 * path basename), `references` (2, 20-byte digests), `narinfo` (3).
 *
 * Decoding validates everything Snix validates (narinfo present, node name
 * is a store path basename, nar_sha256 32 bytes, references 20 bytes and in
 * agreement with reference_names, signatures 64 bytes, deriver, ca) plus
 * what our domain model requires (no unknown fields, sizes within safe
 * integers, no duplicate references, NAR size > 0). Errors are
 * InvalidInputError naming the field.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { bytesEqual, fromUtf8, utf8 } from "../castore/bytes.js";
import { entryFromProto, entryToProto } from "../castore/directory-proto.js";
import { showName } from "../castore/path-component.js";
import { InvalidInputError } from "../errors.js";
import {
  type NARInfo_CA as CaPb,
  NARInfo_CA_Hash as CaType,
  NARInfo_CASchema,
  NARInfo_SignatureSchema,
  NARInfoSchema,
  type PathInfo as PathInfoPb,
  PathInfoSchema,
  StorePathSchema,
} from "../proto/gen/tvix/store/v1/pathinfo_pb.js";
import type { ContentAddress, HashAlgo } from "./content-address.js";
import { type PathInfo, validatePathInfo } from "./path-info.js";
import { type Signature, validateSignature } from "./signature.js";
import { STORE_PATH_DIGEST_LENGTH, StorePath } from "./store-path.js";

const DRV_SUFFIX = ".drv";

/** (method, algo) <-> NARInfo.CA.Hash, as in Snix's `CAHash` conversion. */
const CA_TYPES: readonly [ContentAddress["method"], HashAlgo, CaType][] = [
  ["nar", "sha256", CaType.NAR_SHA256],
  ["nar", "sha1", CaType.NAR_SHA1],
  ["nar", "sha512", CaType.NAR_SHA512],
  ["nar", "md5", CaType.NAR_MD5],
  ["text", "sha256", CaType.TEXT_SHA256],
  ["flat", "sha1", CaType.FLAT_SHA1],
  ["flat", "md5", CaType.FLAT_MD5],
  ["flat", "sha256", CaType.FLAT_SHA256],
  ["flat", "sha512", CaType.FLAT_SHA512],
];

function caToProto(ca: ContentAddress): CaPb {
  const row = CA_TYPES.find(([m, a]) => m === ca.method && a === ca.algo);
  if (row === undefined) {
    throw new InvalidInputError(`content address ${ca.method}:${ca.algo} has no protobuf form`);
  }
  return create(NARInfo_CASchema, { type: row[2], digest: ca.digest });
}

/** Converts a PathInfo (validated first) to the protobuf message. */
export function pathInfoToProto(info: PathInfo): PathInfoPb {
  validatePathInfo(info);
  return create(PathInfoSchema, {
    node: entryToProto(utf8(info.storePath.basename), info.node),
    references: info.references.map((r) => r.digest),
    narinfo: create(NARInfoSchema, {
      narSize: BigInt(info.narSize),
      narSha256: info.narSha256,
      signatures: info.signatures.map((s) =>
        create(NARInfo_SignatureSchema, { name: s.name, data: s.data }),
      ),
      referenceNames: info.references.map((r) => r.basename),
      // Tvix stores the deriver's name without the `.drv` suffix.
      ...(info.deriver !== undefined && {
        deriver: create(StorePathSchema, {
          name: info.deriver.name.slice(0, -DRV_SUFFIX.length),
          digest: info.deriver.digest,
        }),
      }),
      ...(info.ca !== undefined && { ca: caToProto(info.ca) }),
    }),
  });
}

function rejectUnknown(msg: { $unknown?: unknown[] | undefined }, what: string): void {
  if (msg.$unknown !== undefined && msg.$unknown.length > 0) {
    throw new InvalidInputError(`${what}: unknown protobuf fields are not allowed`);
  }
}

/**
 * A lower-level InvalidInputError with the field it came from prefixed;
 * anything else unchanged. Callers build `what` only when something failed
 * (labels cost more than the checks on every decode).
 */
function inField(what: string, err: unknown): unknown {
  return err instanceof InvalidInputError
    ? new InvalidInputError(`${what}: ${err.message}`, { cause: err.cause })
    : err;
}

function parseNodeName(name: Uint8Array): StorePath {
  let text: string;
  try {
    text = fromUtf8(name);
  } catch {
    throw new InvalidInputError("is not UTF-8");
  }
  return StorePath.parseBasename(text);
}

/** Converts and validates a decoded protobuf PathInfo. */
export function pathInfoFromProto(msg: PathInfoPb): PathInfo {
  rejectUnknown(msg, "path info");
  if (msg.node === undefined) throw new InvalidInputError("path info: node is missing");
  const { name, node } = entryFromProto(msg.node, "path info: node");
  let storePath: StorePath;
  try {
    storePath = parseNodeName(name);
  } catch (err) {
    throw inField(`path info: node name ${showName(name)}`, err);
  }

  const narinfo = msg.narinfo;
  if (narinfo === undefined) throw new InvalidInputError("path info: narinfo is missing");
  rejectUnknown(narinfo, "path info: narinfo");

  if (narinfo.narSize > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidInputError(
      `path info: narinfo.nar_size ${narinfo.narSize} is larger than the largest safe integer`,
    );
  }
  if (narinfo.narSize === 0n) {
    throw new InvalidInputError("path info: narinfo.nar_size is 0 (a NAR is never empty)");
  }
  if (narinfo.narSha256.length !== 32) {
    throw new InvalidInputError(
      `path info: narinfo.nar_sha256 has ${narinfo.narSha256.length} bytes, expected 32`,
    );
  }

  if (msg.references.length !== narinfo.referenceNames.length) {
    throw new InvalidInputError(
      `path info: ${msg.references.length} references but ${narinfo.referenceNames.length} narinfo.reference_names`,
    );
  }
  const references = msg.references.map((digest, i) => {
    if (digest.length !== STORE_PATH_DIGEST_LENGTH) {
      throw new InvalidInputError(
        `path info: references[${i}] has ${digest.length} bytes, expected ${STORE_PATH_DIGEST_LENGTH}`,
      );
    }
    const refName = narinfo.referenceNames[i]!;
    let ref: StorePath;
    try {
      ref = StorePath.parseBasename(refName);
    } catch (err) {
      throw inField(`path info: narinfo.reference_names[${i}]`, err);
    }
    if (!bytesEqual(ref.digest, digest)) {
      throw new InvalidInputError(
        `path info: narinfo.reference_names[${i}] (${refName}) does not match the digest in references[${i}]`,
      );
    }
    return ref;
  });

  const signatures = narinfo.signatures.map((s, i): Signature => {
    const what = `path info: narinfo.signatures[${i}]`;
    rejectUnknown(s, what);
    return validateSignature({ name: s.name, data: s.data }, what);
  });

  let deriver: StorePath | undefined;
  if (narinfo.deriver !== undefined) {
    const d = narinfo.deriver;
    rejectUnknown(d, "path info: narinfo.deriver");
    try {
      if (d.name === "") throw new InvalidInputError("name is empty");
      deriver = StorePath.fromParts(d.digest, `${d.name}${DRV_SUFFIX}`);
    } catch (err) {
      throw inField("path info: narinfo.deriver", err);
    }
  }

  let ca: ContentAddress | undefined;
  if (narinfo.ca !== undefined) {
    const c = narinfo.ca;
    rejectUnknown(c, "path info: narinfo.ca");
    const row = CA_TYPES.find(([, , t]) => t === c.type);
    if (row === undefined) {
      throw new InvalidInputError(`path info: narinfo.ca.type ${c.type} is not a known hash type`);
    }
    ca = { method: row[0], algo: row[1], digest: c.digest };
  }

  return validatePathInfo({
    storePath,
    node,
    references,
    narSize: Number(narinfo.narSize),
    narSha256: narinfo.narSha256,
    signatures,
    ...(deriver !== undefined && { deriver }),
    ...(ca !== undefined && { ca }),
  });
}

/** Canonical protobuf encoding of a PathInfo. */
export function encodePathInfo(info: PathInfo): Uint8Array {
  return toBinary(PathInfoSchema, pathInfoToProto(info));
}

/** Decodes and validates protobuf bytes. */
export function decodePathInfo(bytes: Uint8Array): PathInfo {
  let msg: PathInfoPb;
  try {
    msg = fromBinary(PathInfoSchema, bytes);
  } catch (cause) {
    throw new InvalidInputError("path info: malformed protobuf", { cause });
  }
  return pathInfoFromProto(msg);
}
