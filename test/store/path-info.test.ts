/**
 * PathInfo: narinfo conversions, signing and verification (against the Nix
 * example caches and, when installed, `nix store verify`), and the
 * tvix.store.v1.PathInfo protobuf form with every decoding rule.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { utf8 } from "../../src/castore/bytes.js";
import { b3Digest } from "../../src/castore/digest.js";
import { directoryNode, fileNode, type Node, symlinkNode } from "../../src/castore/node.js";
import { InvalidInputError } from "../../src/errors.js";
import {
  type NARInfo_CA_Hash,
  type PathInfo as PathInfoPb,
  PathInfoSchema,
} from "../../src/proto/gen/tvix/store/v1/pathinfo_pb.js";
import { type ContentAddress, HASH_LENGTHS } from "../../src/store/content-address.js";
import { parseNarInfo, renderNarInfo } from "../../src/store/narinfo.js";
import {
  type PathInfo,
  pathInfoFingerprint,
  pathInfoFromNarInfo,
  pathInfosEqual,
  pathInfoToNarInfo,
  signPathInfo,
  validatePathInfo,
  verifyPathInfo,
} from "../../src/store/path-info.js";
import {
  decodePathInfo,
  encodePathInfo,
  pathInfoFromProto,
  pathInfoToProto,
} from "../../src/store/path-info-proto.js";
import {
  formatSignature,
  parsePublicKey,
  parseSecretKey,
  publicKeyOf,
  type Signature,
  secretKeyFromSeed,
} from "../../src/store/signature.js";
import { StorePath } from "../../src/store/store-path.js";
import { nix, nixEnv, requireNix } from "../helpers/nix.js";
import { fields, lenField as len, varintField as num } from "../helpers/protobuf-bytes.js";
import { tempDir } from "../helpers/tmp.js";

const EXAMPLE = fileURLToPath(new URL("../../../test/fixtures/nix-example/", import.meta.url));
const TEST1 = parseSecretKey(readFileSync(join(EXAMPLE, "keys/test-1.secret"), "utf8"));
const TEST1_PUBLIC = parsePublicKey(readFileSync(join(EXAMPLE, "keys/test-1.public"), "utf8"));
const HASH_PARTS = {
  top: "0ffkdj10nnxvvrpc4f4nh7mnikwq87dh",
  dep: "rl2if1g1jkb532k3m8p6h87cv02v0vby",
  mixed: "6za9fndkbrar8j768wliyrh7y31732g0",
};

function narinfoText(cache: string, hashPart: string): string {
  return readFileSync(join(EXAMPLE, cache, `${hashPart}.narinfo`), "utf8");
}

const filled = (n: number, byte: number): Uint8Array => new Uint8Array(n).fill(byte);
// The node's content is not checked against the NAR here; any valid node will do.
const SOME_DIR: Node = directoryNode(b3Digest(filled(32, 0xd1)), 12);

function example(hashPart: string, cache = "cache-none"): PathInfo {
  return pathInfoFromNarInfo(parseNarInfo(narinfoText(cache, hashPart)), SOME_DIR);
}

const invalid =
  (pattern: RegExp) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof InvalidInputError, `InvalidInputError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };

describe("PathInfo and narinfo", () => {
  for (const [what, hashPart] of Object.entries(HASH_PARTS)) {
    test(`${what}: narinfo -> PathInfo -> narinfo renders Nix's bytes; verifies with test-1`, () => {
      for (const cache of ["cache-none", "cache-xz", "cache-zstd"]) {
        const text = narinfoText(cache, hashPart);
        const n = parseNarInfo(text);
        const info = pathInfoFromNarInfo(n, SOME_DIR);
        const back = pathInfoToNarInfo(info, {
          url: n.url,
          compression: n.compression!,
          ...(n.fileHash !== undefined && { fileHash: n.fileHash }),
          ...(n.fileSize !== undefined && { fileSize: n.fileSize }),
        });
        assert.equal(renderNarInfo(back), text);
        assert.equal(verifyPathInfo(info, [TEST1_PUBLIC]), true);
      }
    });

    test(`${what}: signing the unsigned narinfo with test-1 gives exactly the signed one`, () => {
      const n = parseNarInfo(narinfoText("cache-unsigned-none", hashPart));
      const unsigned = pathInfoFromNarInfo(n, SOME_DIR);
      assert.equal(verifyPathInfo(unsigned, [TEST1_PUBLIC]), false);
      const signed = signPathInfo(unsigned, TEST1);
      assert.equal(verifyPathInfo(signed, [TEST1_PUBLIC]), true);
      const rendered = renderNarInfo(
        pathInfoToNarInfo(signed, {
          url: n.url,
          compression: "none",
          fileHash: n.fileHash!,
          fileSize: n.fileSize!,
        }),
      );
      assert.equal(rendered, narinfoText("cache-none", hashPart));
    });
  }

  test("fingerprint of harness-top", () => {
    assert.equal(
      pathInfoFingerprint(example(HASH_PARTS.top)),
      `1;/nix/store/${HASH_PARTS.top}-harness-top;sha256:1pswjbhb09fsjjfgpcxnl71qjqy6mcfzih82jqfzaqvwj2bhilaz;1216;` +
        `/nix/store/${HASH_PARTS.top}-harness-top,/nix/store/${HASH_PARTS.dep}-harness-dep`,
    );
  });

  test("pathInfoToNarInfo sorts references and signatures as Nix's sets do", () => {
    const info = example(HASH_PARTS.top);
    const other = secretKeyFromSeed("a-other", filled(32, 3));
    const shuffled: PathInfo = {
      ...signPathInfo(info, other),
      references: [...info.references].reverse(),
    };
    assert.deepEqual(
      shuffled.signatures.map((s) => s.name),
      ["test-1", "a-other"],
    );
    const n = pathInfoToNarInfo(shuffled, { url: "nar/x.nar", compression: "none" });
    assert.deepEqual(
      n.references.map((r) => r.name),
      ["harness-top", "harness-dep"],
    );
    assert.deepEqual(
      n.signatures.map((s) => s.name),
      ["a-other", "test-1"],
    );
  });

  test("signPathInfo is idempotent and keeps other signatures", () => {
    const info = example(HASH_PARTS.dep);
    assert.equal(signPathInfo(info, TEST1), info);
    const other = secretKeyFromSeed("other-1", filled(32, 5));
    const twice = signPathInfo(info, other);
    assert.equal(twice.signatures.length, 2);
    assert.equal(verifyPathInfo(twice, [publicKeyOf(other)]), true);
    assert.equal(verifyPathInfo(twice, [TEST1_PUBLIC]), true);
    assert.equal(verifyPathInfo(twice, []), false);
  });

  test("changing signed data invalidates, changing the node does not", () => {
    const info = example(HASH_PARTS.top);
    const sha = info.narSha256.slice();
    sha[0]! ^= 1;
    assert.equal(verifyPathInfo({ ...info, narSha256: sha }, [TEST1_PUBLIC]), false);
    assert.equal(verifyPathInfo({ ...info, narSize: info.narSize + 1 }, [TEST1_PUBLIC]), false);
    assert.equal(verifyPathInfo({ ...info, references: [] }, [TEST1_PUBLIC]), false);
    assert.equal(verifyPathInfo({ ...info, node: symlinkNode(utf8("x")) }, [TEST1_PUBLIC]), true);
  });
});

describe("validatePathInfo", () => {
  const info = example(HASH_PARTS.top);
  const cases: [string, PathInfo, RegExp][] = [
    ["a 31-byte narSha256", { ...info, narSha256: filled(31, 0) }, /narSha256 has 31 bytes/],
    ["narSize 0", { ...info, narSize: 0 }, /narSize 0 is not a positive safe integer/],
    ["an unsafe narSize", { ...info, narSize: 2 ** 53 }, /narSize 9007199254740992/],
    [
      "duplicate references",
      { ...info, references: [info.storePath, info.storePath] },
      /reference 0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top is listed twice/,
    ],
    [
      "a short signature",
      { ...info, signatures: [{ name: "k", data: filled(63, 0) }] },
      /signature #1 'k': has 63 bytes/,
    ],
    [
      "a signature with an empty key name",
      { ...info, signatures: [{ name: "", data: filled(64, 0) }] },
      /signature #1: key name is empty/,
    ],
    [
      "a deriver without .drv",
      { ...info, deriver: info.storePath },
      /deriver 0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top does not end in '.drv'/,
    ],
    [
      "a CA digest of the wrong length",
      { ...info, ca: { method: "nar", algo: "sha1", digest: filled(32, 0) } },
      /content address digest has 32 bytes, expected 20 for sha1/,
    ],
    [
      "a text CA with sha1",
      { ...info, ca: { method: "text", algo: "sha1", digest: filled(20, 0) } },
      /text content addresses are sha256 only/,
    ],
    [
      "a negative node size",
      { ...info, node: fileNode(b3Digest(filled(32, 0)), -1) },
      /node: size -1/,
    ],
  ];
  for (const [what, bad, message] of cases) {
    test(`rejects ${what}`, () => {
      assert.throws(() => validatePathInfo(bad), invalid(message));
      assert.throws(() => encodePathInfo(bad), invalid(message));
    });
  }
});

// --- protobuf -----------------------------------------------------------------

/** A PathInfo with every field set. */
function fullPathInfo(node: Node, ca?: ContentAddress): PathInfo {
  const info = signPathInfo(example(HASH_PARTS.top), secretKeyFromSeed("other-1", filled(32, 1)));
  return { ...info, node, ...(ca !== undefined && { ca }) };
}

describe("PathInfo protobuf", () => {
  const nodes: [string, Node][] = [
    ["directory", SOME_DIR],
    ["file", fileNode(b3Digest(filled(32, 0x22)), 5)],
    ["executable file", fileNode(b3Digest(filled(32, 0x23)), 0, true)],
    ["symlink", symlinkNode(utf8("/nix/store/x"))],
  ];
  for (const [what, node] of nodes) {
    test(`round trip with a ${what} root node`, () => {
      const info = fullPathInfo(node);
      const back = decodePathInfo(encodePathInfo(info));
      assert.ok(pathInfosEqual(back, info));
      assert.deepEqual(back, info);
    });
  }

  test("the direct encoder writes exactly what protobuf-es writes for the message", () => {
    const nodeCases: Node[] = [
      SOME_DIR,
      directoryNode(b3Digest(filled(32, 0xd2)), 0),
      fileNode(b3Digest(filled(32, 0x22)), 5),
      fileNode(b3Digest(filled(32, 0x23)), 0, true),
      fileNode(b3Digest(filled(32, 0x24)), 2 ** 53 - 1, true),
      symlinkNode(utf8("/nix/store/x")),
      symlinkNode(utf8("ü/".repeat(100))),
    ];
    const base = example(HASH_PARTS.top);
    const dep = StorePath.parseBasename(`${HASH_PARTS.dep}-harness-dep`);
    const many = Array.from({ length: 40 }, (_, i) =>
      StorePath.fromParts(filled(20, i), `ref-${i}`.padEnd(150, "x")),
    );
    const variants: PathInfo[] = [];
    for (const node of nodeCases) {
      const lists: [StorePath[], Signature[]][] = [
        [[], []],
        [[dep], [{ name: "k", data: filled(64, 0x22) }]],
        [
          many,
          [
            { name: "schlüssel-1", data: filled(64, 1) },
            { name: "x".repeat(200), data: filled(64, 2) },
          ],
        ],
      ];
      for (const [references, signatures] of lists) {
        for (const narSize of [1, 127, 128, 2 ** 31, 2 ** 53 - 1]) {
          variants.push({ ...base, node, references, signatures, narSize });
        }
      }
    }
    for (const [method, algo] of caKinds) {
      variants.push({ ...base, ca: { method, algo, digest: filled(HASH_LENGTHS[algo], 9) } });
    }
    const { deriver: _d, ca: _c, ...bare } = base;
    variants.push(bare);
    for (const info of variants) {
      const expected = toBinary(PathInfoSchema, pathInfoToProto(info));
      assert.deepEqual(encodePathInfo(info), expected);
      assert.deepEqual(decodePathInfo(expected), decodePathInfo(encodePathInfo(info)));
    }
  });

  test("round trip of every example path (deriver, CA, no references)", () => {
    for (const hashPart of Object.values(HASH_PARTS)) {
      const info = example(hashPart);
      assert.deepEqual(decodePathInfo(encodePathInfo(info)), info);
    }
  });

  const caKinds: [ContentAddress["method"], ContentAddress["algo"]][] = [
    ["nar", "sha256"],
    ["nar", "sha1"],
    ["nar", "sha512"],
    ["nar", "md5"],
    ["text", "sha256"],
    ["flat", "sha1"],
    ["flat", "md5"],
    ["flat", "sha256"],
    ["flat", "sha512"],
  ];
  test("round trip of every CA kind", () => {
    for (const [method, algo] of caKinds) {
      const info = fullPathInfo(SOME_DIR, { method, algo, digest: filled(HASH_LENGTHS[algo], 7) });
      assert.deepEqual(decodePathInfo(encodePathInfo(info)).ca, info.ca, `${method}:${algo}`);
    }
  });

  test("the deriver's name is stored without '.drv'", () => {
    const msg = pathInfoToProto(example(HASH_PARTS.top));
    assert.equal(msg.narinfo?.deriver?.name, "harness-top");
    assert.equal(
      msg.narinfo?.referenceNames.join(" "),
      `${HASH_PARTS.top}-harness-top ${HASH_PARTS.dep}-harness-dep`,
    );
  });

  test("encoding equals bytes built independently", () => {
    const dep = StorePath.parseBasename(`${HASH_PARTS.dep}-harness-dep`);
    const drv = StorePath.parseBasename("878pvz2k0xdbzhrqyr5gkvp9l9s6hpya-harness-dep.drv");
    const info: PathInfo = {
      storePath: dep,
      node: fileNode(b3Digest(filled(32, 0x11)), 5, true),
      references: [dep],
      narSize: 136,
      narSha256: filled(32, 0x33),
      signatures: [{ name: "k", data: filled(64, 0x22) }],
      deriver: drv,
      ca: { method: "flat", algo: "sha256", digest: filled(32, 0x44) },
    };
    // Field numbers and wire types straight from the .proto files
    // (castore.v1.Node / FileNode, store.v1.PathInfo / NARInfo).
    const fileNodePb = fields(
      len(1, utf8(dep.basename)),
      len(2, filled(32, 0x11)),
      num(3, 5),
      num(4, 1),
    );
    const expected = fields(
      len(1, len(2, fileNodePb)), // node { file { ... } }
      len(2, dep.digest), // references
      len(
        3,
        fields(
          num(1, 136), // nar_size
          len(2, filled(32, 0x33)), // nar_sha256
          len(3, fields(len(1, utf8("k")), len(2, filled(64, 0x22)))), // signatures
          len(4, utf8(dep.basename)), // reference_names
          len(5, fields(len(1, utf8("harness-dep")), len(2, drv.digest))), // deriver
          len(6, fields(num(1, 7 /* FLAT_SHA256 */), len(2, filled(32, 0x44)))), // ca
        ),
      ),
    );
    assert.deepEqual(encodePathInfo(info), expected);
    assert.deepEqual(decodePathInfo(expected), info);
  });
});

describe("PathInfo protobuf decoding rejects", () => {
  const base = (): PathInfoPb =>
    pathInfoToProto(
      fullPathInfo(SOME_DIR, { method: "nar", algo: "sha256", digest: filled(32, 9) }),
    );
  const unknownVarint = [{ no: 99, wireType: WireType.Varint, data: Uint8Array.of(1) }];
  const cases: [string, (m: PathInfoPb) => void, RegExp][] = [
    ["a missing node", (m) => (m.node = undefined), /path info: node is missing/],
    [
      "an unset node oneof",
      (m) => (m.node!.node = { case: undefined }),
      /path info: node: node is not set/,
    ],
    [
      "a node name that is not a store path basename",
      (m) => {
        if (m.node!.node.case === "directory") m.node!.node.value.name = utf8("harness-top");
      },
      /path info: node name "harness-top": store path basename 'harness-top' is too short/,
    ],
    [
      "a node name that is not UTF-8",
      (m) => {
        if (m.node!.node.case === "directory") m.node!.node.value.name = Uint8Array.of(0xff, 0xfe);
      },
      /path info: node name .*: is not UTF-8/,
    ],
    [
      "a node digest of 31 bytes",
      (m) => {
        if (m.node!.node.case === "directory") m.node!.node.value.digest = filled(31, 0);
      },
      /path info: node: a BLAKE3 digest has 32 bytes, got 31/,
    ],
    ["a missing narinfo", (m) => (m.narinfo = undefined), /path info: narinfo is missing/],
    [
      "a nar_sha256 of 20 bytes",
      (m) => (m.narinfo!.narSha256 = filled(20, 0)),
      /narinfo.nar_sha256 has 20 bytes, expected 32/,
    ],
    [
      "a nar_size above 2^53",
      (m) => (m.narinfo!.narSize = 2n ** 53n + 1n),
      /narinfo.nar_size 9007199254740993 is larger than the largest safe integer/,
    ],
    ["a nar_size of 0", (m) => (m.narinfo!.narSize = 0n), /narinfo.nar_size is 0/],
    [
      "more references than reference_names",
      (m) => m.references.push(filled(20, 0)),
      /3 references but 2 narinfo.reference_names/,
    ],
    [
      "fewer references than reference_names",
      (m) => m.references.pop(),
      /1 references but 2 narinfo.reference_names/,
    ],
    [
      "a 19-byte reference",
      (m) => (m.references[1] = filled(19, 0)),
      /references\[1\] has 19 bytes, expected 20/,
    ],
    [
      "an invalid reference_name",
      (m) => (m.narinfo!.referenceNames[0] = "not-a-store-path"),
      /narinfo.reference_names\[0\]: store path basename 'not-a-store-path'/,
    ],
    [
      "swapped reference digests",
      (m) => m.references.reverse(),
      /narinfo.reference_names\[0\] \(0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top\) does not match the digest in references\[0\]/,
    ],
    [
      "duplicate references",
      (m) => {
        m.references[1] = m.references[0]!;
        m.narinfo!.referenceNames[1] = m.narinfo!.referenceNames[0]!;
      },
      /reference 0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top is listed twice/,
    ],
    [
      "a 63-byte signature",
      (m) => (m.narinfo!.signatures[0]!.data = filled(63, 0)),
      /narinfo.signatures\[0\] 'test-1': has 63 bytes, expected 64/,
    ],
    [
      "a signature with a ':' in the key name",
      (m) => (m.narinfo!.signatures[1]!.name = "a:b"),
      /narinfo.signatures\[1\]: key name contains ':'/,
    ],
    [
      "a deriver with an empty name",
      (m) => (m.narinfo!.deriver!.name = ""),
      /narinfo.deriver: name is empty/,
    ],
    [
      "a deriver with a 19-byte digest",
      (m) => (m.narinfo!.deriver!.digest = filled(19, 0)),
      /narinfo.deriver: store path digest has 19 bytes, expected 20/,
    ],
    [
      "a deriver with a bad name",
      (m) => (m.narinfo!.deriver!.name = "a b"),
      /narinfo.deriver: store path name 'a b.drv'/,
    ],
    [
      "an unknown CA type",
      (m) => (m.narinfo!.ca!.type = 42 as NARInfo_CA_Hash),
      /narinfo.ca.type 42 is not a known hash type/,
    ],
    [
      "a CA digest of the wrong length",
      (m) => (m.narinfo!.ca!.digest = filled(20, 0)),
      /content address digest has 20 bytes, expected 32 for sha256/,
    ],
    [
      "unknown fields in PathInfo",
      (m) => (m.$unknown = unknownVarint),
      /^path info: unknown protobuf fields/,
    ],
    [
      "unknown fields in narinfo",
      (m) => (m.narinfo!.$unknown = unknownVarint),
      /path info: narinfo: unknown protobuf fields/,
    ],
    [
      "unknown fields in a signature",
      (m) => (m.narinfo!.signatures[0]!.$unknown = unknownVarint),
      /narinfo.signatures\[0\]: unknown protobuf fields/,
    ],
    [
      "unknown fields in deriver",
      (m) => (m.narinfo!.deriver!.$unknown = unknownVarint),
      /narinfo.deriver: unknown protobuf fields/,
    ],
    [
      "unknown fields in ca",
      (m) => (m.narinfo!.ca!.$unknown = unknownVarint),
      /narinfo.ca: unknown protobuf fields/,
    ],
    [
      "unknown fields in the node",
      (m) => (m.node!.$unknown = unknownVarint),
      /path info: node: unknown protobuf fields/,
    ],
  ];
  for (const [what, mutate, message] of cases) {
    test(what, () => {
      const msg = base();
      mutate(msg);
      // Through the bytes (unknown fields are written by toBinary and must
      // be seen by the decoder), and on the message itself.
      const bytes = toBinary(PathInfoSchema, msg);
      assert.throws(() => decodePathInfo(bytes), invalid(message));
      assert.throws(() => pathInfoFromProto(fromBinary(PathInfoSchema, bytes)), invalid(message));
    });
  }

  test("malformed protobuf bytes", () => {
    assert.throws(
      () => decodePathInfo(Uint8Array.of(0x0a, 0x05, 0x01)),
      invalid(/path info: malformed protobuf/),
    );
  });

  test("an empty message (no node)", () => {
    assert.throws(() => decodePathInfo(new Uint8Array(0)), invalid(/path info: node is missing/));
  });

  test("a message built with create() and nothing else", () => {
    assert.throws(() => pathInfoFromProto(create(PathInfoSchema)), invalid(/node is missing/));
  });
});

// --- live Nix ----------------------------------------------------------------

/** `nix store verify` on a file:// cache with a fresh narinfo disk cache (so no stale narinfo is used). */
function nixStoreVerify(
  t: TestContext,
  cache: string,
  publicKey: string,
  paths: readonly string[],
): { status: number; stderr: string } {
  const r = spawnSync(
    "nix",
    ["store", "verify", "--store", `file://${cache}`, "--trusted-public-keys", publicKey, ...paths],
    { env: { ...nixEnv(), XDG_CACHE_HOME: tempDir(t, "strata-nix-xdg-") }, encoding: "utf8" },
  );
  return { status: r.status ?? -1, stderr: r.stderr };
}

/** A copy of the unsigned example cache (narinfos + the uncompressed NARs). */
function unsignedCacheCopy(dir: string): string {
  mkdirSync(join(dir, "nar"), { recursive: true });
  for (const f of readdirSync(join(EXAMPLE, "cache-unsigned-none"))) {
    copyFileSync(join(EXAMPLE, "cache-unsigned-none", f), join(dir, f));
  }
  for (const f of readdirSync(join(EXAMPLE, "cache-none/nar"))) {
    copyFileSync(join(EXAMPLE, "cache-none/nar", f), join(dir, "nar", f));
  }
  return dir;
}

describe("live Nix verifies our signatures", () => {
  test("nix store verify accepts narinfos signed by signPathInfo and refuses a flipped signature", (t) => {
    if (!requireNix(t)) return;
    const work = tempDir(t, "strata-pathinfo-live-");
    const skText = nix("nix", ["key", "generate-secret", "--key-name", "strata-live-3"]);
    const sk = parseSecretKey(skText);
    const pkText = nix("nix", ["key", "convert-secret-to-public"], utf8(skText)).trim();

    const write = (dir: string, flip: boolean): string[] => {
      const cache = unsignedCacheCopy(dir);
      const paths: string[] = [];
      for (const hashPart of Object.values(HASH_PARTS)) {
        const file = join(cache, `${hashPart}.narinfo`);
        const n = parseNarInfo(readFileSync(file, "utf8"));
        let info = signPathInfo(pathInfoFromNarInfo(n, SOME_DIR), sk);
        if (flip) {
          const data = info.signatures[0]!.data.slice();
          data[0]! ^= 0x80;
          info = { ...info, signatures: [{ name: sk.name, data }] };
        }
        const location = {
          url: n.url,
          compression: "none",
          fileHash: n.fileHash!,
          fileSize: n.fileSize!,
        };
        writeFileSync(file, renderNarInfo(pathInfoToNarInfo(info, location)));
        paths.push(n.storePath.absolute);
      }
      return paths;
    };

    const top = `/nix/store/${HASH_PARTS.top}-harness-top`;
    const dep = `/nix/store/${HASH_PARTS.dep}-harness-dep`;

    // Unsigned input-addressed paths are untrusted (exit bit 2), so the check means something.
    const unsigned = nixStoreVerify(t, unsignedCacheCopy(join(work, "unsigned")), pkText, [
      top,
      dep,
    ]);
    assert.equal(unsigned.status, 2, unsigned.stderr);

    const signedPaths = write(join(work, "signed"), false);
    const signedNarinfo = readFileSync(join(work, "signed", `${HASH_PARTS.top}.narinfo`), "utf8");
    const expectedSig = signPathInfo(example(HASH_PARTS.top, "cache-unsigned-none"), sk)
      .signatures[0]!;
    assert.ok(signedNarinfo.includes(`\nSig: ${formatSignature(expectedSig)}\n`));
    // Nix also downloads each NAR and checks it against NarHash (exit 0 = all fine).
    const signed = nixStoreVerify(t, join(work, "signed"), pkText, signedPaths);
    assert.equal(signed.status, 0, signed.stderr);
    // Another trusted key (test-1) does not vouch for our strata-live-3 signatures.
    const test1 = readFileSync(join(EXAMPLE, "keys/test-1.public"), "utf8").trim();
    assert.equal(nixStoreVerify(t, join(work, "signed"), test1, [top, dep]).status, 2);

    // A flipped signature bit: untrusted. (The CA path "mixed" is left out:
    // Nix trusts content-addressed paths without any signature.)
    write(join(work, "flipped"), true);
    const flipped = nixStoreVerify(t, join(work, "flipped"), pkText, [top, dep]);
    assert.equal(flipped.status, 2, flipped.stderr);
    assert.match(flipped.stderr, /is untrusted/);
  });
});
