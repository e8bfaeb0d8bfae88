/**
 * Acceptance against the real Nix 2.8 on the edge-case corpus: for every
 * item, `strata nar pack` == `nix-store --dump`, `strata nar hash` ==
 * `nix hash path`, `strata store-path` == what `nix-store --add` creates, and
 * `strata nar unpack` of Nix's NAR dumps back to the same bytes. The same
 * items are also checked against what Nix recorded (no Nix needed).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { describe, test } from "node:test";
import { runStrata } from "../helpers/cli.js";
import { corpusDir, corpusItems, expectedItems } from "../helpers/corpus.js";
import { nix, nixBinary, requireNix, tempStoreRoot } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

const sha256hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("corpus vs recorded Nix results", () => {
  const items = corpusItems();
  const expected = expectedItems();

  test("the corpus has every recorded item", () => {
    assert.deepEqual(items, [...expected.keys()].sort());
  });

  for (const item of items) {
    test(`${item}: nar pack / nar hash / store-path match the recording`, async () => {
      const e = expected.get(item)!;
      const path = join(corpusDir(), item);
      const pack = await runStrata(["nar", "pack", path]);
      assert.equal(pack.code, 0, pack.stderr);
      assert.equal(pack.stdout.length, e.narSize);
      assert.equal(sha256hex(pack.stdout), e.narSha256Hex);
      const sri = await runStrata(["nar", "hash", path]);
      assert.equal(sri.stdout.toString(), `${e.narHashSri}\n`);
      const b32 = await runStrata(["nar", "hash", "--base32", path]);
      assert.equal(b32.stdout.toString(), `${e.narHashNix32}\n`);
      const sp = await runStrata(["store-path", path]);
      assert.equal(sp.stdout.toString(), `${e.storePath}\n`);
    });
  }
});

describe("corpus vs live Nix", () => {
  const items = corpusItems();

  test("strata nar pack == nix-store --dump, nar hash == nix hash path", async (t) => {
    if (!requireNix(t)) return;
    for (const item of items) {
      const path = join(corpusDir(), item);
      const ours = await runStrata(["nar", "pack", path]);
      assert.equal(ours.code, 0, ours.stderr);
      const theirs = nixBinary("nix-store", ["--dump", path]);
      assert.ok(Buffer.compare(ours.stdout, theirs) === 0, `${item}: NAR bytes differ`);
      const h = await runStrata(["nar", "hash", path]);
      assert.equal(h.stdout.toString(), nix("nix", ["hash", "path", path]), `${item}: nar hash`);
    }
  });

  test("strata store-path == the path nix-store --add creates", async (t) => {
    if (!requireNix(t)) return;
    const root = tempStoreRoot();
    const paths = items.map((i) => join(corpusDir(), i));
    const added = nix("nix-store", ["--store", root, "--add", ...paths])
      .trim()
      .split("\n");
    assert.equal(added.length, items.length);
    for (const [i, path] of paths.entries()) {
      const ours = await runStrata(["store-path", path]);
      assert.equal(ours.stdout.toString().trim(), added[i], `${items[i]}`);
    }
    // --name overrides the name, as `nix store add-path --name` does.
    const named = nix("nix", [
      "store",
      "add-path",
      "--store",
      root,
      "--name",
      "renamed",
      paths[0]!,
    ]).trim();
    const ours = await runStrata(["store-path", "--name", "renamed", paths[0]!]);
    assert.equal(ours.stdout.toString().trim(), named);
  });

  test("strata nar unpack of Nix's NAR dumps back to the same bytes", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    for (const item of items) {
      const nar = nixBinary("nix-store", ["--dump", join(corpusDir(), item)]);
      const dest = join(dir, item);
      const r = await runStrata(["nar", "unpack", dest], nar);
      assert.equal(r.code, 0, r.stderr);
      const again = nixBinary("nix-store", ["--dump", dest]);
      assert.ok(Buffer.compare(again, nar) === 0, `${item}: restored tree dumps differently`);
    }
  });
});
