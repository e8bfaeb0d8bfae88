/**
 * Small "flat" messages (proto3 scalars and oneofs of scalars: every
 * request of the store services' small calls, e.g. `StatBlobRequest`,
 * `GetPathInfoRequest`) encoded straight from their init object into an
 * enveloped gRPC message, one allocation. `create()` + `toBinary()` +
 * `envelope()` cost several times as much, on every call. The bytes are the
 * canonical encoding protobuf-es writes (fields by number, implicit-presence
 * fields only when not zero, a set oneof member always). Any other message
 * (nested messages, lists, maps, explicit presence, unknown fields) gets
 * `undefined`: the caller encodes it the generic way. Browser-safe.
 */
import {
  type DescField,
  type DescMessage,
  type MessageInitShape,
  ScalarType,
} from "@bufbuild/protobuf";

/** How one field is written. */
interface FlatField {
  /** The tag byte(s) as a varint value (field number << 3 | wire type). */
  readonly tag: number;
  readonly localName: string;
  /** The oneof's local name when the field is a member of one. */
  readonly oneof: string | undefined;
  readonly kind: "bytes" | "string" | "bool" | "varint";
}

/** Fields by number, or null when the message is not flat. */
const PLANS = new WeakMap<DescMessage, readonly FlatField[] | null>();

const IMPLICIT = 2; // FeatureSet.FieldPresence.IMPLICIT

function planField(f: DescField): FlatField | null {
  if (f.fieldKind !== "scalar") return null;
  // Only proto3 fields without presence tracking, or members of a real oneof.
  if (f.oneof === undefined && f.presence !== IMPLICIT) return null;
  let kind: FlatField["kind"];
  switch (f.scalar) {
    case ScalarType.BYTES:
      kind = "bytes";
      break;
    case ScalarType.STRING:
      kind = "string";
      break;
    case ScalarType.BOOL:
      kind = "bool";
      break;
    case ScalarType.UINT32:
    case ScalarType.UINT64:
      kind = "varint";
      break;
    default:
      return null;
  }
  const wireType = kind === "bytes" || kind === "string" ? 2 : 0;
  return {
    tag: (f.number << 3) | wireType,
    localName: f.localName,
    oneof: f.oneof?.localName,
    kind,
  };
}

function plan(schema: DescMessage): readonly FlatField[] | null {
  let p = PLANS.get(schema);
  if (p === undefined) {
    const fields = [...schema.fields].sort((a, b) => a.number - b.number).map(planField);
    p = fields.every((f) => f !== null) ? (fields as FlatField[]) : null;
    PLANS.set(schema, p);
  }
  return p;
}

function varintLength(v: number): number {
  let n = 1;
  for (; v >= 0x80; v = Math.floor(v / 0x80)) n++;
  return n;
}

const encoder = new TextEncoder();

/** A value present but not of the field's type: left to the generic encoder. */
const OTHER = Symbol("other");

/** A field's value to write, undefined when the field is absent (or zero), or OTHER. */
function fieldValue(
  f: FlatField,
  init: Record<string, unknown>,
): Uint8Array | boolean | number | undefined | typeof OTHER {
  let v: unknown;
  if (f.oneof !== undefined) {
    const o = init[f.oneof] as { case?: unknown; value?: unknown } | undefined;
    if (o === undefined || o === null || o.case !== f.localName) return undefined;
    v = o.value;
  } else {
    v = init[f.localName];
    if (v === undefined || v === null) return undefined;
  }
  // A oneof member is written whatever its value; other fields only when not zero.
  const always = f.oneof !== undefined;
  switch (f.kind) {
    case "bytes":
      if (!(v instanceof Uint8Array)) return OTHER;
      return always || v.length > 0 ? v : undefined;
    case "string":
      if (typeof v !== "string") return OTHER;
      return always || v.length > 0 ? encoder.encode(v) : undefined;
    case "bool":
      if (typeof v !== "boolean") return OTHER;
      return always || v ? v : undefined;
    case "varint": {
      const n = typeof v === "bigint" ? Number(v) : v;
      if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) return OTHER;
      return always || n !== 0 ? n : undefined;
    }
  }
}

/**
 * The enveloped (5-byte prefixed, uncompressed) encoding of `init`, or
 * undefined when it is not a flat message this can encode (or a value is
 * out of range or of another type than the field's, which the generic
 * encoder reports).
 */
export function encodeFlatEnveloped<D extends DescMessage>(
  schema: D,
  init: MessageInitShape<D>,
  /** Where the bytes go (e.g. Node's pooled `Buffer.allocUnsafe`); every byte is written. */
  alloc: (length: number) => Uint8Array = (n) => new Uint8Array(n),
): Uint8Array | undefined {
  const fields = plan(schema);
  if (fields === null) return undefined;
  const msg = init as Record<string, unknown>;
  const unknown = msg.$unknown as unknown[] | undefined;
  if (unknown !== undefined && unknown.length > 0) return undefined;
  // At most a handful of fields: their values first, then one buffer.
  const values: (Uint8Array | boolean | number | undefined)[] = [];
  let length = 0;
  for (const f of fields) {
    const v = fieldValue(f, msg);
    if (v === OTHER) return undefined;
    values.push(v);
    if (v === undefined) continue;
    length += varintLength(f.tag);
    if (typeof v === "boolean") length += 1;
    else if (typeof v === "number") length += varintLength(v);
    else length += varintLength(v.length) + v.length;
  }
  const out = alloc(5 + length);
  out[0] = 0;
  out[1] = length >>> 24;
  out[2] = (length >>> 16) & 0xff;
  out[3] = (length >>> 8) & 0xff;
  out[4] = length & 0xff;
  let pos = 5;
  const varint = (n: number): void => {
    for (; n >= 0x80; n = Math.floor(n / 0x80)) out[pos++] = (n % 0x80) | 0x80;
    out[pos++] = n;
  };
  for (let i = 0; i < fields.length; i++) {
    const v = values[i];
    if (v === undefined) continue;
    varint(fields[i]!.tag);
    if (typeof v === "boolean") out[pos++] = v ? 1 : 0;
    else if (typeof v === "number") varint(v);
    else {
      varint(v.length);
      out.set(v, pos);
      pos += v.length;
    }
  }
  return out;
}
