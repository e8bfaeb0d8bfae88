/** The direct Directory decoder against protobuf-es + directoryFromProto (the reference). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { hashB3 } from "../../src/castore/digest.js";
import { Directory } from "../../src/castore/directory.js";
import { directoryFromProto, directoryToProto } from "../../src/castore/directory-proto.js";
import { decodeDirectoryWire, encodeDirectoryWire } from "../../src/castore/directory-wire.js";
import type { Entry } from "../../src/castore/node.js";
import { DirectorySchema } from "../../src/proto/gen/tvix/castore/v1/castore_pb.js";

/** xorshift32: deterministic test data. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function reference(bytes: Uint8Array): Entry[] | "rejected" {
  try {
    return directoryFromProto(fromBinary(DirectorySchema, bytes));
  } catch {
    return "rejected";
  }
}

/**
 * What protobuf-es lets through and we do not: a known field with the wrong
 * wire type (it reads by the declared kind) and a varint that runs past the
 * end of its sub-message (it only checks bounds between fields).
 */
let laxReferenceAccepts = 0;

function ours(bytes: Uint8Array, reference: Entry[] | "rejected"): Entry[] | "rejected" {
  try {
    return decodeDirectoryWire(bytes);
  } catch (err) {
    assert.equal((err as Error).name, "InvalidInputError", "rejections are typed");
    if (reference !== "rejected") {
      // Only wire-level laxness may differ, never a validation rule.
      assert.match(
        (err as Error).message,
        /malformed protobuf/,
        Buffer.from(bytes).toString("hex"),
      );
      laxReferenceAccepts++;
    }
    return "rejected";
  }
}

function randomDirectory(r: () => number, i: number): Directory {
  const entries = [];
  const n = Math.floor(r() * 6);
  for (let k = 0; k < n; k++) {
    const name = `${["a", "b", "é", "z", "A"][Math.floor(r() * 5)]}${k}-${i}`;
    const kind = Math.floor(r() * 3);
    const digest = hashB3(new Uint8Array([i, k]));
    const size = r() < 0.1 ? 2 ** 40 + k : Math.floor(r() * 100_000);
    entries.push({
      name,
      node:
        kind === 0
          ? ({ type: "directory", digest, size } as const)
          : kind === 1
            ? ({ type: "file", digest, size, executable: r() < 0.5 } as const)
            : ({ type: "symlink", target: new TextEncoder().encode(`../t${k}`) } as const),
    });
  }
  return Directory.fromEntries(entries);
}

describe("Directory wire decoder", () => {
  test("encodes 2,000 random directories byte for byte like protobuf-es's toBinary", () => {
    const r = rng(4242);
    for (let i = 0; i < 2000; i++) {
      const d = randomDirectory(r, i);
      const reference = toBinary(DirectorySchema, directoryToProto(d.entries));
      assert.deepEqual(encodeDirectoryWire(d.entries), reference);
    }
    // Edge values: sizes 0 and 2^53-1, a non-ASCII name.
    const edge = Directory.fromEntries([
      {
        name: "z",
        node: { type: "file", digest: hashB3(new Uint8Array([1])), size: 0, executable: true },
      },
      {
        name: "y",
        node: {
          type: "file",
          digest: hashB3(new Uint8Array([3])),
          size: Number.MAX_SAFE_INTEGER,
          executable: false,
        },
      },
      {
        name: "é",
        node: {
          type: "directory",
          digest: hashB3(new Uint8Array([2])),
          size: 2 ** 40,
        },
      },
    ]);
    assert.deepEqual(
      encodeDirectoryWire(edge.entries),
      toBinary(DirectorySchema, directoryToProto(edge.entries)),
    );
  });

  test("decodes 500 random directories exactly like protobuf-es", () => {
    const r = rng(12345);
    for (let i = 0; i < 500; i++) {
      const bytes = randomDirectory(r, i).encode();
      assert.deepEqual(ours(bytes, "rejected"), reference(bytes));
    }
  });

  test("20,000 mutated and truncated encodings: accepted and rejected alike, same entries", () => {
    const r = rng(777);
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = randomDirectory(r, i % 200)
        .encode()
        .slice();
      const mutation = Math.floor(r() * 3);
      let input = bytes;
      if (mutation === 0 && bytes.length > 0)
        input = bytes.subarray(0, Math.floor(r() * bytes.length));
      else if (bytes.length > 0) {
        for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
          bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
        }
      }
      const want = reference(input);
      const got = ours(input, want);
      if (got !== "rejected")
        assert.deepEqual(got, want, `input ${Buffer.from(input).toString("hex")}`);
      if (got !== "rejected") accepted++;
    }
    assert.ok(accepted > 100, `some mutants are still valid directories (${accepted})`);
    assert.ok(laxReferenceAccepts < accepted, "protobuf-es laxness is the rare exception");
  });

  test("fields out of order and a repeated singular field (last wins) decode like protobuf-es", () => {
    const digest = hashB3(new Uint8Array([1]));
    // FileNode: size (3) before name (1), digest (2) twice, executable (4) = 1.
    const file = [
      0x18,
      0x05,
      0x0a,
      0x01,
      0x66,
      0x12,
      0x20,
      ...new Uint8Array(32),
      0x12,
      0x20,
      ...digest,
      0x20,
      0x01,
    ];
    const bytes = new Uint8Array([0x12, file.length, ...file]);
    const want = reference(bytes);
    const got = ours(bytes, want);
    assert.deepEqual(got, want);
    assert.notEqual(got, "rejected");
  });

  test("a varint beyond 64 bits is malformed; an unknown field names its entry", () => {
    const digest = hashB3(new Uint8Array([1]));
    const node = (extra: number[]): Uint8Array => {
      const file = [0x0a, 0x01, 0x66, 0x12, 0x20, ...digest, ...extra];
      return new Uint8Array([0x12, file.length, ...file]);
    };
    const tooBig = node([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]);
    assert.throws(() => decodeDirectoryWire(tooBig), /malformed protobuf/);
    assert.throws(
      () => decodeDirectoryWire(node([0x38, 0x01])),
      /file entry "f": unknown protobuf fields/,
    );
  });

  test("the input buffer may be reused afterwards: entries hold copies (also of a Buffer)", () => {
    const bytes = Buffer.from(randomDirectory(rng(9), 1).encode());
    const decoded = decodeDirectoryWire(bytes);
    const before = structuredClone(decoded);
    bytes.fill(0);
    assert.deepEqual(decoded, before);
  });
});
