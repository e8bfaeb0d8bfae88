/**
 * The direct encoder of small flat messages (castore/grpc/flat-message.ts)
 * against protobuf-es: the same bytes for every message it takes, and
 * `undefined` (the generic path) for everything else.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { envelope } from "../../src/castore/grpc/blob-frames.js";
import { encodeFlatEnveloped } from "../../src/castore/grpc/flat-message.js";
import {
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
  StatBlobRequestSchema,
  StatBlobResponseSchema,
} from "../../src/proto/gen/tvix/castore/v1/rpc_blobstore_pb.js";
import { GetDirectoryRequestSchema } from "../../src/proto/gen/tvix/castore/v1/rpc_directory_pb.js";
import { PathInfoSchema } from "../../src/proto/gen/tvix/store/v1/pathinfo_pb.js";
import {
  CalculateNARResponseSchema,
  GetPathInfoRequestSchema,
} from "../../src/proto/gen/tvix/store/v1/rpc_pathinfo_pb.js";

const bytes = (n: number, b = 7): Uint8Array => new Uint8Array(n).fill(b);

function same<D extends DescMessage>(schema: D, init: MessageInitShape<D>): void {
  const expected = envelope(toBinary(schema, create(schema, init)));
  assert.deepEqual(
    encodeFlatEnveloped(schema, init),
    expected,
    JSON.stringify(init, (_, v) => (typeof v === "bigint" ? `${v}n` : v)),
  );
}

describe("flat message encoder", () => {
  test("writes what protobuf-es writes", () => {
    for (const digest of [bytes(0), bytes(32), bytes(200)]) {
      for (const sendChunks of [undefined, false, true]) {
        for (const sendBao of [false, true]) {
          same(StatBlobRequestSchema, {
            digest,
            sendBao,
            ...(sendChunks !== undefined && { sendChunks }),
          });
        }
      }
      same(ReadBlobRequestSchema, { digest });
      same(PutBlobResponseSchema, { digest });
      // A oneof member is written even when empty.
      same(GetPathInfoRequestSchema, { byWhat: { case: "byOutputHash", value: digest } });
      for (const recursive of [false, true]) {
        same(GetDirectoryRequestSchema, { byWhat: { case: "digest", value: digest }, recursive });
        same(GetDirectoryRequestSchema, { recursive });
      }
    }
    same(GetPathInfoRequestSchema, {});
    for (const narSize of [0n, 1n, 127n, 128n, 2n ** 32n, 2n ** 53n - 1n]) {
      same(CalculateNARResponseSchema, { narSize, narSha256: bytes(32) });
    }
    // Message instances as well as init objects.
    same(StatBlobRequestSchema, create(StatBlobRequestSchema, { digest: bytes(32) }));
  });

  test("leaves other messages and values to the generic encoder", () => {
    assert.equal(encodeFlatEnveloped(StatBlobResponseSchema, {}), undefined); // a list field
    assert.equal(encodeFlatEnveloped(PathInfoSchema, {}), undefined); // nested messages
    // uint64 beyond 2^53: protobuf-es encodes it exactly.
    assert.equal(
      encodeFlatEnveloped(CalculateNARResponseSchema, { narSize: 2n ** 60n }),
      undefined,
    );
    const unknown = create(StatBlobRequestSchema, { digest: bytes(32) });
    unknown.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([1]) }];
    assert.equal(encodeFlatEnveloped(StatBlobRequestSchema, unknown), undefined);
  });
});
