/**
 * Nix signing keys, signatures and fingerprints, checked against the example
 * caches Nix 2.8 signed with keys/test-1 (test/fixtures/nix-example) and, when
 * Nix is installed, against keys and caches made by Nix during the test.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fromBase64, toBase64 } from "../../src/castore/bytes.js";
import { InvalidInputError } from "../../src/errors.js";
import { type NarInfo, parseNarInfo, renderNarInfo } from "../../src/store/narinfo.js";
import { NIXBASE32_ALPHABET } from "../../src/store/nixbase32.js";
import {
  fingerprint,
  formatPublicKey,
  formatSecretKey,
  formatSignature,
  type PublicKey,
  parsePublicKey,
  parseSecretKey,
  parseSignature,
  publicKeyOf,
  secretKeyFromSeed,
  sign,
  sortSignatures,
  verify,
} from "../../src/store/signature.js";
import { StorePath } from "../../src/store/store-path.js";
import { nix, requireNix, tempStoreRoot } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

const EXAMPLE = fileURLToPath(new URL("../../../test/fixtures/nix-example/", import.meta.url));
const SIGNED_CACHES = ["cache-none", "cache-xz", "cache-zstd"];
const TEST1_SECRET = readFileSync(join(EXAMPLE, "keys/test-1.secret"), "utf8");
const TEST1_PUBLIC = readFileSync(join(EXAMPLE, "keys/test-1.public"), "utf8");

function narinfoFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".narinfo"))
    .sort()
    .map((f) => join(dir, f));
}

function narInfoFingerprint(n: NarInfo): string {
  return fingerprint(n.storePath, n.narHash, n.narSize, n.references);
}

/** True if some Sig line verifies under one of `keys`. */
function narInfoVerifies(n: NarInfo, keys: readonly PublicKey[]): boolean {
  const fp = narInfoFingerprint(n);
  return n.signatures.some((s) => verify(fp, s, keys));
}

const invalid = (pattern: RegExp) => (err: unknown) =>
  err instanceof InvalidInputError && pattern.test(err.message);

describe("keys", () => {
  test("test-1 secret and public key parse; publicKeyOf matches the public key file", () => {
    const sk = parseSecretKey(TEST1_SECRET);
    const pk = parsePublicKey(TEST1_PUBLIC);
    assert.equal(sk.name, "test-1");
    assert.equal(sk.seed.length, 32);
    assert.equal(pk.name, "test-1");
    assert.deepEqual(publicKeyOf(sk), pk);
    assert.equal(formatSecretKey(sk), TEST1_SECRET.trim());
    assert.equal(formatPublicKey(pk), TEST1_PUBLIC.trim());
  });

  test("a trailing newline (or CRLF) in a key file is accepted", () => {
    assert.deepEqual(parseSecretKey(`${TEST1_SECRET}\n`), parseSecretKey(TEST1_SECRET));
    assert.deepEqual(parsePublicKey(`${TEST1_PUBLIC}\r\n`), parsePublicKey(TEST1_PUBLIC));
  });

  test("secretKeyFromSeed derives the same key as the Nix key file", () => {
    const sk = parseSecretKey(TEST1_SECRET);
    assert.deepEqual(secretKeyFromSeed("test-1", sk.seed), sk);
  });

  test("malformed keys are InvalidInputError naming the problem", () => {
    const skB64 = TEST1_SECRET.trim().slice("test-1:".length);
    const pkB64 = TEST1_PUBLIC.trim().slice("test-1:".length);
    assert.throws(() => parseSecretKey(skB64), invalid(/secret key: .*no ':'/));
    assert.throws(() => parseSecretKey(`:${skB64}`), invalid(/secret key: key name is empty/));
    assert.throws(() => parseSecretKey(`a b:${skB64}`), invalid(/whitespace/));
    assert.throws(() => parseSecretKey("k:not*base64"), invalid(/'k': .*not valid base64/));
    assert.throws(() => parseSecretKey(`k:${pkB64}`), invalid(/expected 64 bytes .* got 32/));
    assert.throws(() => parsePublicKey(`k:${skB64}`), invalid(/public key 'k': expected 32 bytes/));
    // The public half must belong to the seed: flip one byte of it.
    const raw = fromBase64(skB64)!;
    raw[40]! ^= 1;
    assert.throws(
      () => parseSecretKey(`k:${toBase64(raw)}`),
      invalid(/public key half does not belong to the seed/),
    );
    assert.throws(() => secretKeyFromSeed("k", new Uint8Array(31)), invalid(/seed has 31 bytes/));
  });
});

describe("signatures", () => {
  test("parse/format round trip; malformed signatures are rejected", () => {
    const text =
      "test-1:Y0cCDsjA/Do934BP7W8gY7E9fuNPH3/7oup96jJYeNdEnC6P40dIfaAiQMqQLCyM9hxDAY2LTpy5oHi5w3L6BQ==";
    const sig = parseSignature(text);
    assert.equal(sig.name, "test-1");
    assert.equal(sig.data.length, 64);
    assert.equal(formatSignature(sig), text);
    assert.throws(() => parseSignature("test-1"), invalid(/signature: .*no ':'/));
    assert.throws(() => parseSignature("test-1:AAAA"), invalid(/expected 64 bytes .* got 3/));
    assert.throws(() => parseSignature(":AAAA"), invalid(/key name is empty/));
    assert.throws(() => parseSignature("k:Y0c=Y0c="), invalid(/not valid base64/));
  });

  test("sortSignatures orders and de-duplicates like Nix's std::set", () => {
    const a = { name: "b-key", data: new Uint8Array(64).fill(1) };
    const b = { name: "a-key", data: new Uint8Array(64).fill(2) };
    assert.deepEqual(sortSignatures([a, b, a]), [b, a]);
  });

  test("fingerprint: absolute paths, sha256:nix32, sorted comma-joined references", () => {
    const top = StorePath.parseAbsolute("/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top");
    const dep = StorePath.parseAbsolute("/nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep");
    const narHash = fromBase64("X9EIl5B8Y/UdlgLB+B2rxmOJw6G2s/uclNolsOCSXN8=")!;
    const expected =
      "1;/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top;" +
      "sha256:1pswjbhb09fsjjfgpcxnl71qjqy6mcfzih82jqfzaqvwj2bhilaz;1216;" +
      "/nix/store/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh-harness-top," +
      "/nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep";
    assert.equal(fingerprint(top, narHash, 1216, [dep, top]), expected);
    assert.equal(fingerprint(top, narHash, 1216, [top, dep, dep]), expected);
    assert.equal(
      fingerprint(dep, narHash, 1, []),
      "1;/nix/store/rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep;" +
        "sha256:1pswjbhb09fsjjfgpcxnl71qjqy6mcfzih82jqfzaqvwj2bhilaz;1;",
    );
    assert.throws(() => fingerprint(top, narHash, 0, []), invalid(/NAR size 0/));
    assert.throws(() => fingerprint(top, narHash.slice(1), 1, []), invalid(/31 bytes/));
  });

  test("signing a Nix-signed fingerprint with test-1 gives Nix's Sig (Ed25519 is deterministic)", () => {
    const sk = parseSecretKey(TEST1_SECRET);
    for (const file of narinfoFiles(join(EXAMPLE, "cache-none"))) {
      const n = parseNarInfo(readFileSync(file, "utf8"));
      assert.equal(n.signatures.length, 1);
      assert.deepEqual(sign(narInfoFingerprint(n), sk), n.signatures[0], file);
    }
  });

  test("verify picks keys by name and rejects wrong keys", () => {
    const sk = parseSecretKey(TEST1_SECRET);
    const pk = parsePublicKey(TEST1_PUBLIC);
    const other = secretKeyFromSeed("test-1", new Uint8Array(32).fill(7));
    const sig = sign("hello", sk);
    assert.equal(verify("hello", sig, [pk]), true);
    assert.equal(verify("hello!", sig, [pk]), false);
    assert.equal(verify("hello", sig, []), false);
    // Same key bytes under another name: not trusted for this signature.
    assert.equal(verify("hello", sig, [{ name: "test-2", key: pk.key }]), false);
    // A different key with the same name does not verify, but the right one among several does.
    assert.equal(verify("hello", sig, [publicKeyOf(other)]), false);
    assert.equal(verify("hello", sig, [publicKeyOf(other), pk]), true);
    // Garbage key bytes are "not valid", never an exception.
    assert.equal(
      verify("hello", sig, [{ name: "test-1", key: new Uint8Array(32).fill(255) }]),
      false,
    );
  });
});

/** Replaces the last character of a nix32 string with another nix32 character. */
function tweakNix32(s: string): string {
  const last = s.charAt(s.length - 1);
  const repl = NIXBASE32_ALPHABET.charAt((NIXBASE32_ALPHABET.indexOf(last) + 1) % 32);
  return s.slice(0, -1) + repl;
}

/** Changes the line `Key: value` of narinfo text through `f(value)`. */
function editLine(text: string, key: string, f: (value: string) => string, nth = 0): string {
  let seen = 0;
  return text
    .split("\n")
    .map((line) => {
      if (!line.startsWith(`${key}: `)) return line;
      return seen++ === nth ? `${key}: ${f(line.slice(key.length + 2))}` : line;
    })
    .join("\n");
}

describe("tampering with a Nix-signed narinfo (test-1 key)", () => {
  const pk = parsePublicKey(TEST1_PUBLIC);
  const topFile = join(EXAMPLE, "cache-xz/0ffkdj10nnxvvrpc4f4nh7mnikwq87dh.narinfo");
  const original = readFileSync(topFile, "utf8");

  test("the untouched narinfo verifies", () => {
    assert.equal(narInfoVerifies(parseNarInfo(original), [pk]), true);
  });

  const signed: [string, (t: string) => string][] = [
    [
      "StorePath hash",
      (t) => editLine(t, "StorePath", (v) => tweakNix32(v.slice(0, 43)) + v.slice(43)),
    ],
    ["StorePath name", (t) => editLine(t, "StorePath", (v) => `${v}x`)],
    ["NarHash", (t) => editLine(t, "NarHash", tweakNix32)],
    ["NarSize", (t) => editLine(t, "NarSize", (v) => String(Number(v) ^ 1))],
    [
      "References[0]",
      (t) => editLine(t, "References", (v) => tweakNix32(v.slice(0, 32)) + v.slice(32)),
    ],
    [
      "References[1]",
      (t) =>
        editLine(t, "References", (v) => {
          const [a, b] = v.split(" ") as [string, string];
          return `${a} ${tweakNix32(b.slice(0, 32))}${b.slice(32)}`;
        }),
    ],
    ["References (one dropped)", (t) => editLine(t, "References", (v) => v.split(" ")[0]!)],
    [
      "Sig data",
      (t) =>
        editLine(t, "Sig", (v) => {
          const sig = parseSignature(v);
          const data = sig.data.slice();
          data[10]! ^= 0x01;
          return formatSignature({ name: sig.name, data });
        }),
    ],
    ["Sig key name", (t) => editLine(t, "Sig", (v) => v.replace(/^test-1:/, "test-2:"))],
  ];
  for (const [what, edit] of signed) {
    test(`changing ${what} breaks verification`, () => {
      const edited = edit(original);
      assert.notEqual(edited, original);
      assert.equal(narInfoVerifies(parseNarInfo(edited), [pk]), false);
    });
  }

  // Cache-specific fields are not in the fingerprint; neither (in Nix 2.8)
  // are Deriver and CA, which is why a CA must be checked against the path.
  const unsigned: [string, (t: string) => string][] = [
    ["URL", (t) => editLine(t, "URL", (v) => v.replace(".nar.xz", ".nar.zst"))],
    ["Compression", (t) => editLine(t, "Compression", () => "zstd")],
    ["FileHash", (t) => editLine(t, "FileHash", tweakNix32)],
    ["FileSize", (t) => editLine(t, "FileSize", (v) => String(Number(v) + 1))],
    ["Deriver", (t) => editLine(t, "Deriver", (v) => tweakNix32(v.slice(0, 32)) + v.slice(32))],
  ];
  for (const [what, edit] of unsigned) {
    test(`changing ${what} keeps the signature valid`, () => {
      const edited = edit(original);
      assert.notEqual(edited, original);
      assert.equal(narInfoVerifies(parseNarInfo(edited), [pk]), true);
    });
  }
});

describe("every signed example narinfo verifies with test-1", () => {
  const pk = parsePublicKey(TEST1_PUBLIC);
  for (const cache of SIGNED_CACHES) {
    test(cache, () => {
      const files = narinfoFiles(join(EXAMPLE, cache));
      assert.equal(files.length, 3);
      for (const file of files) {
        const n = parseNarInfo(readFileSync(file, "utf8"));
        assert.equal(narInfoVerifies(n, [pk]), true, file);
      }
    });
  }
  test("cache-unsigned-none has no signatures", () => {
    for (const file of narinfoFiles(join(EXAMPLE, "cache-unsigned-none"))) {
      const n = parseNarInfo(readFileSync(file, "utf8"));
      assert.deepEqual(n.signatures, []);
      assert.equal(narInfoVerifies(n, [pk]), false);
    }
  });
});

describe("live Nix: keys and signed caches made by Nix 2.8", () => {
  test("nix key generate-secret / convert-secret-to-public parse; our publicKeyOf agrees", (t) => {
    if (!requireNix(t)) return;
    const skText = nix("nix", ["key", "generate-secret", "--key-name", "strata-live-1"]);
    assert.ok(!skText.endsWith("\n"), "Nix writes the secret key without a newline");
    const pkText = nix(
      "nix",
      ["key", "convert-secret-to-public"],
      new TextEncoder().encode(skText),
    );
    const sk = parseSecretKey(skText);
    assert.equal(sk.name, "strata-live-1");
    assert.deepEqual(publicKeyOf(sk), parsePublicKey(pkText));
    assert.equal(formatPublicKey(publicKeyOf(sk)), pkText.trim());
  });

  test("narinfos of `nix copy --to file://...?secret-key=` parse, re-render and verify; our Sig equals Nix's", (t) => {
    if (!requireNix(t)) return;
    const work = tempDir(t, "strata-sig-live-");
    const skFile = join(work, "sk");
    writeFileSync(skFile, nix("nix", ["key", "generate-secret", "--key-name", "strata-live-2"]));
    const sk = parseSecretKey(readFileSync(skFile, "utf8"));
    const pk = publicKeyOf(sk);

    // Two small paths in a throw-away chroot store: a file and a directory.
    const src = join(work, "src");
    mkdirSync(join(src, "tree/bin"), { recursive: true });
    writeFileSync(join(src, "greeting"), "hello from strata\n");
    writeFileSync(join(src, "tree/bin/run"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
    symlinkSync("bin/run", join(src, "tree/link"));
    const root = tempStoreRoot();
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const paths = ["greeting", "tree"].map((p) =>
      nix("nix-store", ["--store", root, "--add", join(src, p)]).trim(),
    );

    const cache = join(work, "cache");
    nix("nix", [
      "copy",
      "--from",
      root,
      "--to",
      `file://${cache}?compression=none&secret-key=${skFile}`,
      ...paths,
    ]);
    const files = narinfoFiles(cache);
    assert.equal(files.length, paths.length);
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      const n = parseNarInfo(text);
      assert.equal(renderNarInfo(n), text, `${file} re-renders byte-identically`);
      assert.ok(paths.includes(n.storePath.absolute));
      assert.equal(narInfoVerifies(n, [pk]), true, `${file} verifies`);
      assert.equal(n.signatures.length, 1);
      assert.deepEqual(sign(narInfoFingerprint(n), sk), n.signatures[0], `${file}: same Sig`);
    }
  });
});
