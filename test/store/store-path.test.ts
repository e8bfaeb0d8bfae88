import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fromHex, toHex } from "../../src/castore/bytes.js";
import { InvalidInputError } from "../../src/errors.js";
import {
  contentAddressedStorePath,
  formatContentAddress,
  parseContentAddress,
} from "../../src/store/content-address.js";
import {
  nixbase32Decode,
  nixbase32DecodeOrUndefined,
  nixbase32Encode,
} from "../../src/store/nixbase32.js";
import { StorePath } from "../../src/store/store-path.js";
import { corpusDir, expectedItems } from "../helpers/corpus.js";
import { nix, requireNix, tempStoreRoot } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

describe("nixbase32", () => {
  test("known vectors (NAR hashes recorded by Nix)", () => {
    for (const e of expectedItems().values()) {
      const hex = e.narSha256Hex;
      const nix32 = e.narHashNix32.slice("sha256:".length);
      assert.equal(nixbase32Encode(fromHex(hex)!), nix32);
      assert.equal(toHex(nixbase32Decode(nix32)), hex);
    }
  });

  test("lengths and round trips", () => {
    assert.equal(nixbase32Encode(new Uint8Array()), "");
    assert.equal(nixbase32Encode(new Uint8Array([0x1f])), "0z");
    for (const n of [1, 2, 5, 19, 20, 32, 64]) {
      const b = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
      assert.deepEqual(nixbase32Decode(nixbase32Encode(b)), b);
    }
  });

  test("rejects bad characters, bad lengths and stray high bits", () => {
    assert.equal(nixbase32DecodeOrUndefined("e0"), undefined); // 'e' is not in the alphabet
    assert.equal(nixbase32DecodeOrUndefined("000"), undefined); // no byte length encodes to 3 chars
    assert.equal(nixbase32DecodeOrUndefined("z0"), undefined); // 'z' = 31 needs 10 bits in a 1-byte value
    assert.throws(() => nixbase32Decode("!!"), InvalidInputError);
  });
});

describe("StorePath", () => {
  const p = "/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top";

  test("parse and format", () => {
    const sp = StorePath.parseAbsolute(p);
    assert.equal(sp.name, "harness-top");
    assert.equal(sp.hashPart, "0ffkdj10nnxvvrpc4f4nh7mnikwq87dh");
    assert.equal(sp.absolute, p);
    assert.equal(sp.digest.length, 20);
    assert.deepEqual(StorePath.parseWithSubpath(`${p}/bin/x`).subpath, ["bin", "x"]);
  });

  const bad: [string, RegExp][] = [
    ["/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh", /expected '-'/],
    ["/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-", /name is empty/],
    ["/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87de-x", /not valid nixbase32/],
    ["/nix/store/short-x", /too short/],
    ["/gnu/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-x", /not in the Nix store/],
    ["/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-a b", /character ' ' at position 1/],
    [`/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-${"x".repeat(212)}`, /longer than 211/],
    [`${p}/sub`, /below a store path/],
  ];
  for (const [path, re] of bad) {
    test(`rejects ${path.slice(0, 60)}`, () => {
      assert.throws(
        () => StorePath.parseAbsolute(path),
        (e: unknown) => e instanceof InvalidInputError && re.test(e.message),
      );
    });
  }

  test("accepts every allowed character and a leading dot (Nix 2.8 does)", () => {
    assert.equal(
      StorePath.parseBasename("0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-.a+b-c._?=Z9").name,
      ".a+b-c._?=Z9",
    );
  });
});

describe("content addresses", () => {
  test("parse/format round trip", () => {
    for (const s of [
      "fixed:r:sha256:14jwwlhkyyx8hm6bbypxd5mp5r2dirdprhwxb98nq34xirwcyri1",
      "fixed:sha256:14jwwlhkyyx8hm6bbypxd5mp5r2dirdprhwxb98nq34xirwcyri1",
      "text:sha256:14jwwlhkyyx8hm6bbypxd5mp5r2dirdprhwxb98nq34xirwcyri1",
    ]) {
      assert.equal(formatContentAddress(parseContentAddress(s)), s);
    }
    assert.throws(() => parseContentAddress("fixed:r:sha3:abc"), /unknown hash algorithm/);
    assert.throws(() => parseContentAddress("text:sha1:abc"), /sha256 only/);
  });

  test("recursive sha256 paths match the recorded `nix-store --add` paths", () => {
    for (const e of expectedItems().values()) {
      const ca = parseContentAddress(e.ca);
      assert.equal(contentAddressedStorePath(e.case, ca).absolute, e.storePath);
    }
  });

  test("flat sha256 paths match the recorded `nix store add-file` paths", () => {
    for (const e of expectedItems().values()) {
      if (e.flatStorePath === "") continue;
      const digest = createHash("sha256")
        .update(readFileSync(join(corpusDir(), e.case)))
        .digest();
      const sp = contentAddressedStorePath(e.case, { method: "flat", algo: "sha256", digest });
      assert.equal(sp.absolute, e.flatStorePath);
    }
  });

  test("flat sha1/md5/sha512 and recursive sha1 paths match Nix", (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    const file = join(dir, "payload");
    writeFileSync(file, "some content\n");
    for (const algo of ["sha1", "md5", "sha512", "sha256"] as const) {
      for (const recursive of [false, true]) {
        const hashArgs = ["hash", recursive ? "path" : "file", "--base16", "--type", algo, file];
        const digest = fromHex(nix("nix", hashArgs).trim())!;
        // The expected path comes from `nix-store --print-fixed-path`.
        const args = [
          "--print-fixed-path",
          ...(recursive ? ["--recursive"] : []),
          algo,
          toHex(digest),
          "payload",
        ];
        const expected = nix("nix-store", args).trim();
        const ours = contentAddressedStorePath("payload", {
          method: recursive ? "nar" : "flat",
          algo,
          digest,
        });
        assert.equal(ours.absolute, expected, `${algo} recursive=${recursive}`);
      }
    }
  });

  test("text paths with references match builtins.toFile", (t) => {
    if (!requireNix(t)) return;
    const root = tempStoreRoot();
    const dep = nix("nix", [
      "eval",
      "--store",
      root,
      "--raw",
      "--expr",
      'builtins.toFile "dep" "hello"',
    ]).trim();
    const top = nix("nix", [
      "eval",
      "--store",
      root,
      "--raw",
      "--expr",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Nix antiquotation, not JS
      'builtins.toFile "top" "refers to ${builtins.toFile "dep" "hello"}"',
    ]).trim();
    const depSp = contentAddressedStorePath("dep", {
      method: "text",
      algo: "sha256",
      digest: createHash("sha256").update("hello").digest(),
    });
    assert.equal(depSp.absolute, dep);
    const topSp = contentAddressedStorePath(
      "top",
      {
        method: "text",
        algo: "sha256",
        digest: createHash("sha256").update(`refers to ${dep}`).digest(),
      },
      [depSp],
    );
    assert.equal(topSp.absolute, top);
  });

  test("source paths with references and self-references", () => {
    // Cross-checked by the recorded example cache: harness-top refers to
    // itself and to harness-dep, but it is input-addressed, so here we only
    // check that references change the path and are order-independent.
    const digest = new Uint8Array(32).fill(7);
    const a = StorePath.parseAbsolute("/nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep");
    const b = StorePath.parseAbsolute("/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top");
    const ca = { method: "nar", algo: "sha256", digest } as const;
    const p0 = contentAddressedStorePath("x", ca);
    const p1 = contentAddressedStorePath("x", ca, [a, b]);
    const p2 = contentAddressedStorePath("x", ca, [b, a]);
    const p3 = contentAddressedStorePath("x", ca, [a, b], true);
    assert.notEqual(p0.absolute, p1.absolute);
    assert.equal(p1.absolute, p2.absolute);
    assert.notEqual(p1.absolute, p3.absolute);
    assert.throws(
      () => contentAddressedStorePath("x", { method: "flat", algo: "sha256", digest }, [a]),
      /cannot have references/,
    );
  });
});
