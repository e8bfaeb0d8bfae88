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
import { create, fromBinary } from "@bufbuild/protobuf";
import { bytesEqual, fromUtf8, utf8 } from "../castore/bytes.js";
import { entryFromProto, entryToProto } from "../castore/directory-proto.js";
import type { Node } from "../castore/node.js";
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
  if (name.every(isAscii)) {
    // Store path basenames are ASCII: no decoder call for them.
    text = String.fromCharCode.apply(null, name as unknown as number[]);
  } else {
    try {
      text = fromUtf8(name);
    } catch {
      throw new InvalidInputError("is not UTF-8");
    }
  }
  return StorePath.parseBasename(text);
}

const isAscii = (b: number): boolean => b < 0x80;

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

/**
 * Canonical protobuf encoding of a PathInfo (validated first): the bytes
 * `toBinary(PathInfoSchema, pathInfoToProto(info))` gives, written
 * directly. Servers and stores encode a path info on every answer and
 * write; building the protobuf-es message and encoding it reflectively
 * costs several times this.
 */
export function encodePathInfo(info: PathInfo): Uint8Array {
  return encodePathInfoWith(info, 0, (n) => new Uint8Array(n));
}

/**
 * `encodePathInfo` into a buffer from `alloc` (every byte of it is
 * written but the first `reserve`, left for the caller: a gRPC server puts
 * the message's envelope there and writes the buffer out as it is).
 */
export function encodePathInfoWith(
  info: PathInfo,
  reserve: number,
  alloc: (length: number) => Uint8Array,
): Uint8Array {
  validatePathInfo(info);
  // Lengths first (every nested message is length-prefixed), then one buffer.
  const name = text(info.storePath.basename);
  const nodeLen = nodeMessageLength(info.node, name);
  const refNames = info.references.map((r) => text(r.basename));
  const sigs = info.signatures.map((sig) => {
    const n = text(sig.name);
    return { name: n, data: sig.data, length: bytesField(n.length) + bytesField(sig.data.length) };
  });
  let deriverName: string | Uint8Array | undefined;
  let deriverLen = 0;
  if (info.deriver !== undefined) {
    // Tvix stores the deriver's name without the `.drv` suffix.
    deriverName = text(info.deriver.name.slice(0, -DRV_SUFFIX.length));
    deriverLen = bytesField(deriverName.length) + bytesField(info.deriver.digest.length);
  }
  let caType = 0;
  let caLen = 0;
  if (info.ca !== undefined) {
    const ca = info.ca;
    const row = CA_TYPES.find(([m, a]) => m === ca.method && a === ca.algo);
    if (row === undefined) {
      throw new InvalidInputError(`content address ${ca.method}:${ca.algo} has no protobuf form`);
    }
    caType = row[2];
    caLen = (caType === 0 ? 0 : 1 + varintLength(caType)) + bytesField(ca.digest.length);
  }
  let narLen = 1 + varintLength(info.narSize) + bytesField(info.narSha256.length);
  for (const sig of sigs) narLen += messageField(sig.length);
  for (const n of refNames) narLen += 1 + varintLength(n.length) + n.length;
  if (deriverName !== undefined) narLen += messageField(deriverLen);
  if (info.ca !== undefined) narLen += messageField(caLen);
  let total = messageField(nodeLen) + messageField(narLen);
  for (const r of info.references) total += 1 + varintLength(r.digest.length) + r.digest.length;

  const w = new Writer(alloc(reserve + total), reserve);
  // 1: node
  w.header(0x0a, nodeLen);
  writeNode(w, info.node, name);
  // 2: references (repeated: empty ones too)
  for (const r of info.references) w.lengthDelimited(0x12, r.digest);
  // 3: narinfo
  w.header(0x1a, narLen);
  w.tag(0x08);
  w.varint(info.narSize);
  w.bytes(0x12, info.narSha256);
  for (const sig of sigs) {
    w.header(0x1a, sig.length);
    w.bytes(0x0a, sig.name);
    w.bytes(0x12, sig.data);
  }
  for (const n of refNames) w.lengthDelimited(0x22, n);
  if (info.deriver !== undefined && deriverName !== undefined) {
    w.header(0x2a, deriverLen);
    w.bytes(0x0a, deriverName);
    w.bytes(0x12, info.deriver.digest);
  }
  if (info.ca !== undefined) {
    w.header(0x32, caLen);
    if (caType !== 0) {
      w.tag(0x08);
      w.varint(caType);
    }
    w.bytes(0x12, info.ca.digest);
  }
  return w.done();
}

/** A string to encode: itself when ASCII (its length is its UTF-8 length), else its UTF-8 bytes. */
function text(s: string): string | Uint8Array {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return utf8(s);
  return s;
}

function varintLength(v: number): number {
  let n = 1;
  for (; v >= 0x80; v = Math.floor(v / 0x80)) n++;
  return n;
}

/** A proto3 bytes/string field with implicit presence: absent when empty. */
const bytesField = (length: number): number =>
  length === 0 ? 0 : 1 + varintLength(length) + length;

/** A message field that is set (present even when empty). */
const messageField = (length: number): number => 1 + varintLength(length) + length;

/** castore.v1.Node (oneof directory = 1, file = 2, symlink = 3) around the entry message. */
function nodeMessageLength(node: Node, name: string | Uint8Array): number {
  return messageField(entryLength(node, name));
}

function entryLength(node: Node, name: string | Uint8Array): number {
  switch (node.type) {
    case "directory":
    case "file": {
      let n = bytesField(name.length) + bytesField(node.digest.length);
      if (node.size !== 0) n += 1 + varintLength(node.size);
      if (node.type === "file" && node.executable) n += 2;
      return n;
    }
    case "symlink":
      return bytesField(name.length) + bytesField(node.target.length);
  }
}

function writeNode(w: Writer, node: Node, name: string | Uint8Array): void {
  const length = entryLength(node, name);
  switch (node.type) {
    case "directory":
    case "file":
      w.header(node.type === "directory" ? 0x0a : 0x12, length);
      w.bytes(0x0a, name);
      w.bytes(0x12, node.digest);
      if (node.size !== 0) {
        w.tag(0x18);
        w.varint(node.size);
      }
      if (node.type === "file" && node.executable) {
        w.tag(0x20);
        w.tag(1);
      }
      return;
    case "symlink":
      w.header(0x1a, length);
      w.bytes(0x0a, name);
      w.bytes(0x12, node.target);
      return;
  }
}

/** Writes protobuf into a buffer of the exact size computed beforehand. */
class Writer {
  readonly #buf: Uint8Array;
  #pos: number;

  constructor(buf: Uint8Array, start: number) {
    this.#buf = buf;
    this.#pos = start;
  }

  /** A one-byte tag (field numbers below 16). */
  tag(t: number): void {
    this.#buf[this.#pos++] = t;
  }

  /** Unsigned, up to 2^53. */
  varint(v: number): void {
    for (; v >= 0x80; v = Math.floor(v / 0x80)) this.#buf[this.#pos++] = (v % 0x80) | 0x80;
    this.#buf[this.#pos++] = v;
  }

  /** The tag and length of a nested message. */
  header(t: number, length: number): void {
    this.tag(t);
    this.varint(length);
  }

  /** A length-delimited field, written even when empty (repeated elements). */
  lengthDelimited(t: number, data: string | Uint8Array): void {
    this.header(t, data.length);
    if (typeof data === "string") {
      for (let i = 0; i < data.length; i++) this.#buf[this.#pos++] = data.charCodeAt(i);
    } else {
      this.#buf.set(data, this.#pos);
      this.#pos += data.length;
    }
  }

  /** A proto3 bytes/string field: nothing when empty. */
  bytes(t: number, data: string | Uint8Array): void {
    if (data.length > 0) this.lengthDelimited(t, data);
  }

  done(): Uint8Array {
    if (this.#pos !== this.#buf.length) {
      throw new Error(`PathInfo encoder wrote ${this.#pos} of ${this.#buf.length} bytes`);
    }
    return this.#buf;
  }
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
