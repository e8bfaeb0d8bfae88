/**
 * The bulk data path of BlobService `Read` and `Put` without protobuf-es:
 * a stream of gRPC length-prefixed messages, each a `BlobChunk { bytes data
 * = 1; }`. Generic message handling costs three copies per byte (encode,
 * concatenate, envelope) and a fresh buffer per message; here a message is a
 * 6..10-byte prefix written in front of the caller's bytes, and received
 * data is handed on as views into the buffers the socket delivered. Used by
 * the server and the Node client; browser-safe.
 *
 * Encoding is canonical protobuf (what every implementation produces):
 * field 1, wire type 2, varint length, the bytes; an empty chunk is an
 * empty message. Decoding accepts any valid encoding of a BlobChunk
 * (unknown fields are skipped) with one exception: a message that carries
 * field 1 twice is rejected instead of keeping the last value, because
 * streaming the bytes on as they arrive cannot take back the first one.
 * No encoder produces that.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** gRPC message size limit on both ends, as in Snix/Tvix (tonic's default decode limit). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The largest `BlobChunk.data` a strata server or client sends (well below the 4 MiB limit). */
export const BLOB_CHUNK_BYTES = 1024 * 1024;

/** Envelope (flags + 4-byte length) and protobuf prefix of a BlobChunk carrying `dataLength` bytes. */
export function blobChunkPrefix(dataLength: number): Uint8Array {
  if (dataLength === 0) return new Uint8Array(5);
  let varintLength = 1;
  for (let v = dataLength; v > 0x7f; v = Math.floor(v / 128)) varintLength++;
  const messageLength = 1 + varintLength + dataLength;
  const out = new Uint8Array(6 + varintLength);
  new DataView(out.buffer).setUint32(1, messageLength);
  out[5] = 0x0a; // field 1, wire type 2 (length-delimited)
  let v = dataLength;
  for (let i = 6; i < out.length; i++) {
    out[i] = i === out.length - 1 ? v : (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  return out;
}

/** A whole length-prefixed message holding `payload` (an encoded protobuf message). */
export function envelope(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** Decoder states. */
const State = { Header: 0, Tag: 1, Length: 2, SkipVarint: 3, Data: 4, Skip: 5 } as const;
type State = (typeof State)[keyof typeof State];

/**
 * Splits a byte stream of length-prefixed BlobChunk messages into the data
 * they carry. Feed it with `push` in arrival order, then call `end`. Errors
 * are ConnectErrors: RESOURCE_EXHAUSTED for a message over the limit (seen
 * in its 5-byte header, before any of it is buffered), `malformedCode` for
 * anything else (INVALID_ARGUMENT when the peer is a client, INTERNAL when
 * it is a server).
 */
export class BlobChunkDecoder {
  readonly #max: number;
  readonly #malformedCode: Code;
  readonly #header = new Uint8Array(5);
  #headerFill = 0;
  #state: State = State.Header;
  /** Bytes of the current message not consumed yet. */
  #remaining = 0;
  /** Bytes of the current data or skipped field not consumed yet. */
  #fieldLeft = 0;
  #varint = 0;
  #shift = 0;
  #isData = false;
  #sawData = false;
  /** Messages completed so far. */
  messages = 0;

  constructor(malformedCode: Code, maxMessageBytes = MAX_MESSAGE_BYTES) {
    this.#malformedCode = malformedCode;
    this.#max = maxMessageBytes;
  }

  #malformed(why: string): ConnectError {
    return new ConnectError(`malformed BlobChunk message: ${why}`, this.#malformedCode);
  }

  /** Appends the data bytes found in `chunk` to `out` (views into `chunk`, no copies). */
  push(chunk: Uint8Array, out: Uint8Array[]): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case State.Header: {
          const take = Math.min(5 - this.#headerFill, n - i);
          this.#header.set(chunk.subarray(i, i + take), this.#headerFill);
          this.#headerFill += take;
          i += take;
          if (this.#headerFill === 5) this.#startMessage();
          break;
        }
        case State.Tag:
        case State.Length:
        case State.SkipVarint: {
          const b = chunk[i++]!;
          this.#remaining--;
          this.#varint += (b & 0x7f) * 2 ** this.#shift;
          this.#shift += 7;
          if (b & 0x80) {
            if (this.#shift > 63) throw this.#malformed("varint longer than 10 bytes");
            if (this.#remaining === 0) throw this.#malformed("truncated varint");
            break;
          }
          const v = this.#varint;
          this.#varint = 0;
          this.#shift = 0;
          if (this.#state === State.Tag) this.#tag(v);
          else if (this.#state === State.Length) this.#length(v);
          else this.#fieldDone();
          break;
        }
        case State.Data:
        case State.Skip: {
          const take = Math.min(this.#fieldLeft, n - i);
          if (this.#state === State.Data) out.push(chunk.subarray(i, i + take));
          i += take;
          this.#fieldLeft -= take;
          this.#remaining -= take;
          if (this.#fieldLeft === 0) this.#fieldDone();
          break;
        }
      }
    }
  }

  /** Checks that the stream did not stop inside a message. */
  end(): void {
    if (this.#state !== State.Header || this.#headerFill !== 0) {
      throw this.#malformed("the stream ended inside a message");
    }
  }

  #startMessage(): void {
    this.#headerFill = 0;
    const flags = this.#header[0]!;
    if (flags !== 0) {
      throw new ConnectError(
        flags === 1
          ? "compressed messages are not supported (no grpc-encoding was negotiated)"
          : `unexpected message flags 0x${flags.toString(16)}`,
        flags === 1 ? Code.Unimplemented : this.#malformedCode,
      );
    }
    const length = new DataView(this.#header.buffer).getUint32(1);
    if (length > this.#max) {
      throw new ConnectError(
        `message of ${length} bytes is larger than the limit of ${this.#max} bytes`,
        Code.ResourceExhausted,
      );
    }
    this.#remaining = length;
    this.#sawData = false;
    this.#state = length === 0 ? State.Header : State.Tag;
    if (length === 0) this.messages++;
  }

  #tag(v: number): void {
    const field = Math.floor(v / 8);
    const wireType = v % 8;
    if (field === 0) throw this.#malformed("field number 0");
    switch (wireType) {
      case 0:
        this.#state = State.SkipVarint;
        if (this.#remaining === 0) throw this.#malformed("truncated varint");
        return;
      case 1:
        this.#skip(8);
        return;
      case 5:
        this.#skip(4);
        return;
      case 2:
        this.#isData = field === 1;
        this.#state = State.Length;
        if (this.#remaining === 0) throw this.#malformed("truncated length");
        return;
      default:
        throw this.#malformed(`unsupported wire type ${wireType}`);
    }
  }

  #length(v: number): void {
    if (v > this.#remaining) throw this.#malformed("a field is longer than its message");
    if (this.#isData) {
      if (this.#sawData) throw this.#malformed("the data field appears twice in one message");
      this.#sawData = true;
    }
    this.#fieldLeft = v;
    this.#state = this.#isData ? State.Data : State.Skip;
    if (v === 0) this.#fieldDone();
  }

  #skip(bytes: number): void {
    if (bytes > this.#remaining) throw this.#malformed("a field is longer than its message");
    this.#fieldLeft = bytes;
    this.#state = State.Skip;
  }

  #fieldDone(): void {
    if (this.#remaining === 0) {
      this.#state = State.Header;
      this.messages++;
    } else {
      this.#state = State.Tag;
    }
  }
}
