import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { Blake3Hasher } from "@napi-rs/blake-hash";
import { toHex, utf8 } from "../../src/castore/bytes.js";
import { type B3Digest, b3Digest, formatB3, parseB3 } from "../../src/castore/digest.js";
import { Directory } from "../../src/castore/directory.js";
import { directoryNode, fileNode, symlinkNode } from "../../src/castore/node.js";
import { InvalidInputError } from "../../src/errors.js";
import { lenField as ld, varint, varintField as vi } from "../helpers/protobuf-bytes.js";

const D1 = b3Digest(new Uint8Array(32).fill(1));
const D2 = b3Digest(new Uint8Array(32).fill(2));

const bytes = (a: ArrayLike<number>): Uint8Array => Uint8Array.from(a);
const b3hex = (b: Uint8Array): string =>
  new Blake3Hasher().update(Buffer.from(b.buffer, b.byteOffset, b.byteLength)).digest("hex");

describe("Directory", () => {
  test("the empty directory encodes to no bytes; digest is BLAKE3 of nothing", () => {
    assert.equal(Directory.EMPTY.encode().length, 0);
    assert.equal(
      toHex(Directory.EMPTY.digest()),
      "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    );
    assert.equal(Directory.EMPTY.size, 0);
  });

  test("canonical encoding matches hand-built protobuf bytes", () => {
    const d = Directory.fromEntries([
      { name: "z-link", node: symlinkNode(utf8("target")) },
      { name: "a", node: fileNode(D1, 3, true) },
      { name: "sub", node: directoryNode(D2, 2) },
      { name: "b", node: fileNode(D2, 0, false) },
    ]);
    const expected = bytes([
      ...ld(1, [...ld(1, [...utf8("sub")]), ...ld(2, [...D2]), ...vi(3, 2)]),
      ...ld(2, [...ld(1, [...utf8("a")]), ...ld(2, [...D1]), ...vi(3, 3), ...vi(4, 1)]),
      ...ld(2, [...ld(1, [...utf8("b")]), ...ld(2, [...D2])]),
      ...ld(3, [...ld(1, [...utf8("z-link")]), ...ld(2, [...utf8("target")])]),
    ]);
    assert.equal(toHex(d.encode()), toHex(expected));
    assert.equal(toHex(d.digest()), b3hex(expected));
    assert.deepEqual(Directory.decode(expected).entries, d.entries);
  });

  test("a large size uses a multi-byte varint (uint64 on the wire)", () => {
    const d = Directory.fromEntries([{ name: "big", node: fileNode(D1, 2 ** 40 + 5) }]);
    const expected = bytes([
      ...ld(2, [...ld(1, [...utf8("big")]), ...ld(2, [...D1]), ...vi(3, 2 ** 40 + 5)]),
    ]);
    assert.equal(toHex(d.encode()), toHex(expected));
  });

  test("entries are ordered bytewise, not by UTF-16 code units", () => {
    // U+FF61 is EF BD A1 in UTF-8; U+1F600 is F0 9F 98 80. As JS strings the
    // emoji sorts first (surrogate D83D < FF61); as bytes U+FF61 does.
    const half = "\uff61";
    const emoji = "\u{1f600}";
    assert.ok(emoji < half, "precondition: UTF-16 order puts the emoji first");
    const d = Directory.fromEntries([
      { name: emoji, node: fileNode(D1, 1) },
      { name: half, node: fileNode(D2, 1) },
    ]);
    assert.deepEqual(
      d.entries.map((e) => new TextDecoder().decode(e.name)),
      [half, emoji],
    );
    const inByteOrder = bytes([
      ...ld(2, [...ld(1, [...utf8(half)]), ...ld(2, [...D2]), ...vi(3, 1)]),
      ...ld(2, [...ld(1, [...utf8(emoji)]), ...ld(2, [...D1]), ...vi(3, 1)]),
    ]);
    assert.equal(toHex(d.encode()), toHex(inByteOrder));
    const inUtf16Order = bytes([
      ...ld(2, [...ld(1, [...utf8(emoji)]), ...ld(2, [...D1]), ...vi(3, 1)]),
      ...ld(2, [...ld(1, [...utf8(half)]), ...ld(2, [...D2]), ...vi(3, 1)]),
    ]);
    assert.throws(() => Directory.decode(inUtf16Order), /out of order/);
  });

  test("size counts every entry twice plus child directory sizes (Tvix/Snix arithmetic)", () => {
    const keep = Directory.fromEntries([{ name: ".keep", node: fileNode(D1, 0) }]);
    assert.equal(keep.size, 2);
    const parent = Directory.fromEntries([
      { name: "keep", node: directoryNode(keep.digest(), keep.size) },
    ]);
    assert.equal(parent.size, 4);
    const mixed = Directory.fromEntries([
      { name: "a", node: directoryNode(D1, 4) },
      { name: "b", node: fileNode(D1, 10) },
      { name: "c", node: symlinkNode(utf8("x")) },
    ]);
    assert.equal(mixed.size, 3 + (1 + 4) + 1 + 1);
  });

  test("lookup by name", () => {
    const d = Directory.fromEntries(
      ["c", "a", "b"].map((n) => ({ name: n, node: fileNode(D1, 1) })),
    );
    assert.equal(d.get("b")?.type, "file");
    assert.equal(d.get("d"), undefined);
  });

  const invalid: [string, () => unknown, RegExp][] = [
    [
      "empty name",
      () => Directory.fromEntries([{ name: "", node: fileNode(D1, 1) }]),
      /name is empty/,
    ],
    ["'.'", () => Directory.fromEntries([{ name: ".", node: fileNode(D1, 1) }]), /name is '.'/],
    ["'..'", () => Directory.fromEntries([{ name: "..", node: fileNode(D1, 1) }]), /name is '..'/],
    [
      "slash",
      () => Directory.fromEntries([{ name: "a/b", node: fileNode(D1, 1) }]),
      /contains '\/'/,
    ],
    ["NUL", () => Directory.fromEntries([{ name: "a\0b", node: fileNode(D1, 1) }]), /NUL/],
    [
      "duplicate across lists",
      () =>
        Directory.fromEntries([
          { name: "x", node: fileNode(D1, 1) },
          { name: "x", node: symlinkNode(utf8("t")) },
        ]),
      /"x" is a duplicate name/,
    ],
    [
      "empty symlink target",
      () => Directory.fromEntries([{ name: "l", node: symlinkNode(new Uint8Array()) }]),
      /symlink target is empty/,
    ],
    [
      "NUL in target",
      () => Directory.fromEntries([{ name: "l", node: symlinkNode(utf8("a\0")) }]),
      /NUL/,
    ],
    [
      "negative size",
      () => Directory.fromEntries([{ name: "f", node: fileNode(D1, -1) }]),
      /size -1/,
    ],
    [
      "short digest",
      () =>
        Directory.fromEntries([
          {
            name: "f",
            node: {
              type: "file",
              digest: new Uint8Array(31) as B3Digest,
              size: 1,
              executable: false,
            },
          },
        ]),
      /digest has 31 bytes/,
    ],
  ];
  for (const [what, fn, re] of invalid) {
    test(`rejects ${what}`, () => {
      assert.throws(fn, (e: unknown) => e instanceof InvalidInputError && re.test(e.message));
    });
  }

  const invalidWire: [string, ArrayLike<number>, RegExp][] = [
    [
      "a digest of 31 bytes",
      ld(2, [...ld(1, [...utf8("f")]), ...ld(2, new Array(31).fill(0))]),
      /got 31/,
    ],
    [
      "duplicates across lists",
      [
        ...ld(2, [...ld(1, [...utf8("x")]), ...ld(2, [...D1])]),
        ...ld(3, [...ld(1, [...utf8("x")]), ...ld(2, [...utf8("t")])]),
      ],
      /duplicate/,
    ],
    [
      "an unknown field",
      [...ld(2, [...ld(1, [...utf8("f")]), ...ld(2, [...D1])]), ...ld(9, [1, 2])],
      /unknown protobuf fields/,
    ],
    ["garbage", [0xff, 0xff, 0xff], /malformed protobuf/],
    [
      "a name with a slash",
      ld(3, [...ld(1, [...utf8("a/b")]), ...ld(2, [...utf8("t")])]),
      /contains '\/'/,
    ],
    [
      "a size above 2^53",
      ld(2, [...ld(1, [...utf8("f")]), ...ld(2, [...D1]), 0x18, ...varint(2 ** 53 + 2)]),
      /largest safe integer/,
    ],
  ];
  for (const [what, wire, re] of invalidWire) {
    test(`decode rejects ${what}`, () => {
      assert.throws(
        () => Directory.decode(bytes(wire)),
        (e: unknown) => e instanceof InvalidInputError && re.test(e.message),
      );
    });
  }
});

describe("B3Digest", () => {
  test("b3: + base64 round trip", () => {
    const s = formatB3(D1);
    assert.equal(s, `b3:${Buffer.from(D1).toString("base64")}`);
    assert.deepEqual(parseB3(s), D1);
    assert.throws(() => parseB3("b3:AAAA"), /32 bytes/);
    assert.throws(() => parseB3("sha256:xx"), /missing 'b3:'/);
  });

  test("matches BLAKE3 test vector of 'abc' via node hashing sanity", () => {
    // SHA-256 here only guards the fixture bytes; BLAKE3 of "abc" is a published vector.
    assert.equal(createHash("sha256").update("abc").digest("hex").slice(0, 8), "ba7816bf");
    assert.equal(
      b3hex(utf8("abc")),
      "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    );
  });
});
