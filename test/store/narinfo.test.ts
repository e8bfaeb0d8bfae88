/**
 * narinfo parsing and rendering against what Nix 2.8 wrote
 * (test/fixtures/nix-example, copied from the shared Nix harness), plus the
 * parser's strictness rules, each with the line and key it must name.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fromBase64, toBase64, toHex } from "../../src/castore/bytes.js";
import { InvalidInputError } from "../../src/errors.js";
import { formatContentAddress } from "../../src/store/content-address.js";
import { type NarInfo, parseNarInfo, renderNarInfo } from "../../src/store/narinfo.js";
import { nixbase32Encode } from "../../src/store/nixbase32.js";
import { StorePath } from "../../src/store/store-path.js";
import { nix, requireNix } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

const EXAMPLE = fileURLToPath(new URL("../../../test/fixtures/nix-example/", import.meta.url));
const CACHES = ["cache-none", "cache-xz", "cache-zstd", "cache-unsigned-none"];

interface ExamplePath {
  narHashSri: string;
  narSize: number;
  references: string[];
  ca: string;
  deriver: string;
}

/** paths.tsv: path, narHash (SRI), narSize, references (space-separated), ca, deriver. */
function examplePaths(): Map<string, ExamplePath> {
  const lines = readFileSync(join(EXAMPLE, "paths.tsv"), "utf8").trimEnd().split("\n").slice(1);
  const out = new Map<string, ExamplePath>();
  for (const line of lines) {
    const [path, narHashSri, narSize, refs, ca, deriver] = line.split("\t") as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    out.set(path, {
      narHashSri,
      narSize: Number(narSize),
      references: refs === "" ? [] : refs.split(" "),
      ca,
      deriver,
    });
  }
  return out;
}

function narinfoFiles(cache: string): string[] {
  const dir = join(EXAMPLE, cache);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".narinfo"))
    .sort()
    .map((f) => join(dir, f));
}

const DEP = readFileSync(
  join(EXAMPLE, "cache-none/rl2if1g1jkb532k3m8p6h87cv02v0vby.narinfo"),
  "utf8",
);
const MIXED = readFileSync(
  join(EXAMPLE, "cache-none/6za9fndkbrar8j768wliyrh7y31732g0.narinfo"),
  "utf8",
);
const DEP_NAR_HASH_SRI = "sha256-ucuZ1/VOOF410asihERDkqsWnki1g+FoQRCj9Jfhu2Y=";

function setLine(text: string, key: string, value: string): string {
  return text.replace(new RegExp(`^${key}: .*$`, "m"), `${key}: ${value}`);
}

describe("narinfos written by Nix 2.8", () => {
  const expected = examplePaths();
  for (const cache of CACHES) {
    test(`${cache}: every narinfo parses, matches paths.tsv and re-renders byte-identically`, () => {
      const files = narinfoFiles(cache);
      assert.equal(files.length, 3);
      for (const file of files) {
        const text = readFileSync(file, "utf8");
        const n = parseNarInfo(text);
        assert.equal(renderNarInfo(n), text, file);
        assert.equal(file.endsWith(`${n.storePath.hashPart}.narinfo`), true);
        const e = expected.get(n.storePath.absolute);
        assert.ok(e !== undefined, `${n.storePath.absolute} is in paths.tsv`);
        assert.equal(`sha256-${toBase64(n.narHash)}`, e.narHashSri);
        assert.equal(n.narSize, e.narSize);
        assert.deepEqual(
          n.references.map((r) => r.absolute),
          e.references,
        );
        assert.equal(n.deriver?.absolute ?? "", e.deriver);
        assert.equal(n.ca === undefined ? "" : formatContentAddress(n.ca), e.ca);
        assert.equal(n.compression, cache === "cache-unsigned-none" ? "none" : cache.slice(6));
        assert.equal(n.extraFields, undefined);
      }
    });
  }

  test("fields of a narinfo with references, deriver and signature", () => {
    const n = parseNarInfo(
      readFileSync(join(EXAMPLE, "cache-xz/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh.narinfo"), "utf8"),
    );
    assert.equal(n.storePath.name, "harness-top");
    assert.equal(n.url, "nar/0h0fcjb5zdcf2rdy2m6z6vamv4dyz4dwqmvl2ybgq23w33jmxz23.nar.xz");
    assert.equal(n.compression, "xz");
    assert.equal(
      nixbase32Encode(n.fileHash!),
      "0h0fcjb5zdcf2rdy2m6z6vamv4dyz4dwqmvl2ybgq23w33jmxz23",
    );
    assert.equal(n.fileSize, 356);
    assert.equal(n.narSize, 1216);
    assert.deepEqual(
      n.references.map((r) => r.name),
      ["harness-top", "harness-dep"],
    );
    assert.equal(n.deriver?.basename, "yrxyy9j1bnnxa23994hblf1pgbwra6ki-harness-top.drv");
    assert.equal(n.signatures.length, 1);
    assert.equal(n.signatures[0]!.name, "test-1");
    assert.equal(n.ca, undefined);
  });
});

describe("accepted variants", () => {
  const narHash = fromBase64(DEP_NAR_HASH_SRI.slice(7))!;
  const forms: [string, string][] = [
    ["nix32", `sha256:${nixbase32Encode(narHash)}`],
    ["hex", `sha256:${toHex(narHash)}`],
    ["HEX", `sha256:${toHex(narHash).toUpperCase()}`],
    ["base64", `sha256:${toBase64(narHash)}`],
    ["SRI", DEP_NAR_HASH_SRI],
  ];
  for (const [what, value] of forms) {
    test(`NarHash and FileHash as ${what}; rendered back as sha256:<nix32>`, () => {
      const text = setLine(setLine(DEP, "NarHash", value), "FileHash", value);
      const n = parseNarInfo(text);
      assert.deepEqual(n.narHash, narHash);
      assert.deepEqual(n.fileHash, narHash);
      assert.equal(renderNarInfo(n), DEP);
    });
  }

  test("unknown fields are kept in order and rendered after the known ones", () => {
    const withSystem = DEP.replace("NarSize: 136\n", "NarSize: 136\nSystem: x86_64-linux\n");
    const text = `${withSystem}X-Foo: a: b\n`;
    const n = parseNarInfo(text);
    assert.deepEqual(n.extraFields, [
      { key: "System", value: "x86_64-linux" },
      { key: "X-Foo", value: "a: b" },
    ]);
    const rendered = renderNarInfo(n);
    assert.equal(rendered, `${DEP}System: x86_64-linux\nX-Foo: a: b\n`);
    assert.deepEqual(parseNarInfo(rendered), n);
  });

  test("missing References means none; it is rendered as an empty References line", () => {
    const n = parseNarInfo(DEP.replace("References: \n", ""));
    assert.deepEqual(n.references, []);
    assert.equal(renderNarInfo(n), DEP);
  });

  test("missing Compression stays missing (Nix reads it as bzip2)", () => {
    const text = DEP.replace("Compression: none\n", "");
    const n = parseNarInfo(text);
    assert.equal(n.compression, undefined);
    assert.equal(renderNarInfo(n), text);
  });

  test("FileHash and FileSize are optional", () => {
    const text = DEP.replace(/^FileHash: .*\n/m, "").replace(/^FileSize: .*\n/m, "");
    const n = parseNarInfo(text);
    assert.equal(n.fileHash, undefined);
    assert.equal(n.fileSize, undefined);
    assert.equal(renderNarInfo(n), text);
  });

  test("`Deriver: unknown-deriver` (older tools) means no deriver", () => {
    const n = parseNarInfo(setLine(DEP, "Deriver", "unknown-deriver"));
    assert.equal(n.deriver, undefined);
  });

  test("several Sig lines are kept in file order", () => {
    const extra = `Sig: other-1:${toBase64(new Uint8Array(64).fill(9))}\n`;
    const text = DEP + extra;
    const n = parseNarInfo(text);
    assert.deepEqual(
      n.signatures.map((s) => s.name),
      ["test-1", "other-1"],
    );
    assert.equal(renderNarInfo(n), text);
  });

  test("CA of a content-addressed path", () => {
    const n = parseNarInfo(MIXED);
    assert.equal(n.ca?.method, "nar");
    assert.equal(n.ca?.algo, "sha256");
    assert.equal(n.deriver, undefined);
    assert.equal(renderNarInfo(n), MIXED);
  });
});

/** [what, narinfo text, expected message] — every message names the line and key. */
const REJECTED: [string, string, RegExp][] = [
  ["empty input", "", /required field StorePath is missing/],
  ["no final newline", DEP.slice(0, -1), /line 10: missing final newline/],
  ["a line without a colon", `${DEP}garbage\n`, /line 11: expected 'Key: value', got "garbage"/],
  ["an empty line", `${DEP}\n`, /line 11: expected 'Key: value', got ""/],
  ["a key with a leading space", `${DEP} Sig: x\n`, /line 11: expected 'Key: value'/],
  [
    "no space after the colon",
    DEP.replace("NarSize: 136", "NarSize:136"),
    /line 7 \(NarSize\): expected a space after ':'/,
  ],
  [
    "CRLF line endings",
    DEP.replace(/\n/g, "\r\n"),
    /line 1 \(StorePath\): value contains a carriage return/,
  ],
  [
    "a repeated StorePath",
    `${DEP}StorePath: /nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top\n`,
    /line 11 \(StorePath\): repeated field \(first on line 1\)/,
  ],
  [
    "a repeated NarSize",
    `${DEP}NarSize: 999\n`,
    /line 11 \(NarSize\): repeated field \(first on line 7\)/,
  ],
  [
    "a repeated References",
    `${DEP}References: \n`,
    /line 11 \(References\): repeated field \(first on line 8\)/,
  ],
  [
    "a repeated CA",
    `${MIXED}CA: ${MIXED.match(/^CA: (.*)$/m)![1]}\n`,
    /line 11 \(CA\): repeated field/,
  ],
  [
    "missing StorePath",
    DEP.replace(/^StorePath: .*\n/m, ""),
    /required field StorePath is missing/,
  ],
  ["missing URL", DEP.replace(/^URL: .*\n/m, ""), /required field URL is missing/],
  ["missing NarHash", DEP.replace(/^NarHash: .*\n/m, ""), /required field NarHash is missing/],
  ["missing NarSize", DEP.replace(/^NarSize: .*\n/m, ""), /required field NarSize is missing/],
  ["an empty URL", setLine(DEP, "URL", ""), /line 2 \(URL\): URL is empty/],
  [
    "an empty Compression",
    setLine(DEP, "Compression", ""),
    /line 3 \(Compression\): Compression is empty/,
  ],
  [
    "a StorePath outside /nix/store",
    setLine(DEP, "StorePath", "/gnu/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep"),
    /line 1 \(StorePath\): .*not in the Nix store/,
  ],
  [
    "a StorePath with a bad hash",
    setLine(DEP, "StorePath", "/nix/store/el2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep"),
    /line 1 \(StorePath\): .*not valid nixbase32/,
  ],
  [
    "a StorePath with a bad name",
    setLine(DEP, "StorePath", "/nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness dep"),
    /line 1 \(StorePath\): .*not allowed/,
  ],
  [
    "an unprefixed NarHash",
    setLine(DEP, "NarHash", "0rmvw6bz98qh85lf30xm92g1dawj8d2888mbs4smwf2fypbrkjxr"),
    /line 6 \(NarHash\): .*is not a hash/,
  ],
  [
    "an md5 NarHash",
    setLine(DEP, "NarHash", "md5:00000000000000000000000000000000"),
    /line 6 \(NarHash\): md5 hashes are not supported/,
  ],
  [
    "a short NarHash",
    setLine(DEP, "NarHash", "sha256:0rmvw6bz98qh85lf30xm92g1dawj8d2888mbs4smwf2fypbrkjx"),
    /line 6 \(NarHash\): .*51 characters/,
  ],
  [
    "a NarHash with a bad nix32 char",
    setLine(DEP, "NarHash", "sha256:0rmvw6bz98qh85lf30xm92g1dawj8d2888mbs4smwf2fypbrkjxe"),
    /line 6 \(NarHash\): .*not a valid SHA-256/,
  ],
  [
    "a bad SRI FileHash",
    setLine(DEP, "FileHash", "sha256-AAAA"),
    /line 4 \(FileHash\): .*not a valid SHA-256/,
  ],
  [
    "a NarSize with a sign",
    setLine(DEP, "NarSize", "+136"),
    /line 7 \(NarSize\): '\+136' is not a plain decimal number/,
  ],
  [
    "a NarSize with leading zeros",
    setLine(DEP, "NarSize", "0136"),
    /line 7 \(NarSize\): '0136' is not a plain decimal/,
  ],
  [
    "a negative FileSize",
    setLine(DEP, "FileSize", "-1"),
    /line 5 \(FileSize\): '-1' is not a plain decimal/,
  ],
  ["a FileSize in exponent form", setLine(DEP, "FileSize", "1e3"), /line 5 \(FileSize\): '1e3'/],
  [
    "an unsafe NarSize",
    setLine(DEP, "NarSize", "9007199254740993"),
    /line 7 \(NarSize\): 9007199254740993 is larger than the largest safe integer/,
  ],
  ["NarSize 0", setLine(DEP, "NarSize", "0"), /line 7 \(NarSize\): NAR size is 0/],
  [
    "an absolute reference",
    setLine(DEP, "References", "/nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep"),
    /line 8 \(References\): store path basename/,
  ],
  [
    "a duplicate reference",
    setLine(
      DEP,
      "References",
      "rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep",
    ),
    /line 8 \(References\): reference rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep is listed twice/,
  ],
  [
    "a double space in References",
    setLine(
      DEP,
      "References",
      "0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top  rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep",
    ),
    /line 8 \(References\): reference #2 is empty/,
  ],
  [
    "a Deriver without .drv",
    setLine(DEP, "Deriver", "878pvz2k0xdbzhrqyr5gkvp9l9s6hpya-harness-dep"),
    /line 9 \(Deriver\): deriver '.*' does not end in '.drv'/,
  ],
  [
    "a malformed Deriver",
    setLine(DEP, "Deriver", "harness-dep.drv"),
    /line 9 \(Deriver\): store path basename/,
  ],
  [
    "a Sig without a key name",
    setLine(DEP, "Sig", "Y0cCDsjA"),
    /line 10 \(Sig\): signature: expected '<name>:<base64>'/,
  ],
  [
    "a Sig of the wrong length",
    setLine(DEP, "Sig", "test-1:AAAA"),
    /line 10 \(Sig\): signature 'test-1': expected 64 bytes/,
  ],
  ["a malformed CA", setLine(MIXED, "CA", "fixed:r:sha256:xyz"), /line 10 \(CA\): content address/],
];

describe("rejected narinfos", () => {
  for (const [what, text, message] of REJECTED) {
    test(what, () => {
      assert.throws(
        () => parseNarInfo(text),
        (err: unknown) => {
          assert.ok(err instanceof InvalidInputError, `InvalidInputError, got ${String(err)}`);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe("rendering", () => {
  const base: NarInfo = parseNarInfo(DEP);

  test("field order, spacing and optional fields", () => {
    const top = StorePath.parseBasename("0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top");
    const rendered = renderNarInfo({
      storePath: base.storePath,
      url: "nar/x.nar.zst",
      compression: "zstd",
      narHash: base.narHash,
      narSize: 136,
      references: [top, base.storePath],
      signatures: [],
      ca: { method: "flat", algo: "sha256", digest: base.narHash },
    });
    assert.equal(
      rendered,
      [
        "StorePath: /nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep",
        "URL: nar/x.nar.zst",
        "Compression: zstd",
        "NarHash: sha256:0rmvw6bz98qh85lf30xm92g1dawj8d2888mbs4smwf2fypbrkjxr",
        "NarSize: 136",
        "References: 0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep",
        "CA: fixed:sha256:0rmvw6bz98qh85lf30xm92g1dawj8d2888mbs4smwf2fypbrkjxr",
        "",
      ].join("\n"),
    );
  });

  const bad: [string, NarInfo, RegExp][] = [
    [
      "a line break in URL (field injection)",
      { ...base, url: "nar/x.nar\nNarSize: 1" },
      /URL: value contains a line break/,
    ],
    ["an empty URL", { ...base, url: "" }, /URL: is empty/],
    [
      "a line break in Compression",
      { ...base, compression: "none\r" },
      /Compression: value contains a line break/,
    ],
    ["a short NarHash", { ...base, narHash: new Uint8Array(20) }, /NarHash: SHA-256 has 20 bytes/],
    [
      "a short FileHash",
      { ...base, fileHash: new Uint8Array(31) },
      /FileHash: SHA-256 has 31 bytes/,
    ],
    ["NarSize 0", { ...base, narSize: 0 }, /NarSize: 0 is not a safe integer >= 1/],
    ["a fractional FileSize", { ...base, fileSize: 1.5 }, /FileSize: 1.5/],
    [
      "a short signature",
      { ...base, signatures: [{ name: "k", data: new Uint8Array(3) }] },
      /Sig 'k': has 3 bytes/,
    ],
    [
      "duplicate references",
      { ...base, references: [base.storePath, base.storePath] },
      /References: rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep is listed twice/,
    ],
    [
      "a deriver without .drv",
      { ...base, deriver: base.storePath },
      /Deriver: rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep does not end in '.drv'/,
    ],
    [
      "a known key as extra field",
      { ...base, extraFields: [{ key: "NarSize", value: "1" }] },
      /extra field 'NarSize' is a known field/,
    ],
    [
      "a malformed extra key",
      { ...base, extraFields: [{ key: "A B", value: "1" }] },
      /extra field key "A B" is malformed/,
    ],
    [
      "a line break in an extra value",
      { ...base, extraFields: [{ key: "X", value: "1\nSig: k:AA" }] },
      /X: value contains a line break/,
    ],
  ];
  for (const [what, info, message] of bad) {
    test(`rejects ${what}`, () => {
      assert.throws(
        () => renderNarInfo(info),
        (err: unknown) => err instanceof InvalidInputError && message.test(err.message),
      );
    });
  }
});

describe("live Nix reads what we render", () => {
  test("nix path-info --store file://... agrees with our narinfos (extra fields included)", (t) => {
    if (!requireNix(t)) return;
    const cache = join(tempDir(t, "strata-narinfo-live-"), "cache");
    mkdirSync(cache);
    writeFileSync(join(cache, "nix-cache-info"), "StoreDir: /nix/store\n");
    const expected = examplePaths();
    for (const file of narinfoFiles("cache-unsigned-none")) {
      const n = parseNarInfo(readFileSync(file, "utf8"));
      // With an unknown field appended: Nix must ignore it and read the same path info.
      const text = renderNarInfo({ ...n, extraFields: [{ key: "System", value: "x86_64-linux" }] });
      writeFileSync(join(cache, `${n.storePath.hashPart}.narinfo`), text);
    }
    const json = JSON.parse(
      nix("nix", ["path-info", "--store", `file://${cache}`, "--json", ...expected.keys()]),
    ) as { path: string; narHash: string; narSize: number; references: string[] }[];
    assert.equal(json.length, expected.size);
    for (const p of json) {
      const e = expected.get(p.path)!;
      assert.equal(p.narHash, e.narHashSri);
      assert.equal(p.narSize, e.narSize);
      assert.deepEqual(p.references, e.references);
    }
  });
});
