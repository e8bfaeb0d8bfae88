/**
 * NAR geometry, range rendering and `.ls` listings of castore trees, checked
 * against the NAR writer (every corpus item) and against the listings Nix
 * 2.8 writes (the example cache fixtures; the corpus with live Nix).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import type { Node } from "../../src/castore/node.js";
import {
  blobRangeSource,
  renderListing,
  renderNarRange,
} from "../../src/server/http/nar-layout.js";
import { ingestSource } from "../../src/store/import/ingest-source.js";
import { ingestNar } from "../../src/store/import/nar-ingest.js";
import { castoreNarSource, castoreReaders } from "../../src/store/nar/castore-source.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { NarGeometry } from "../../src/store/nar/geometry.js";
import { writeNar } from "../../src/store/nar/writer.js";
import { corpusDir, corpusItems, FIXTURES } from "../helpers/corpus.js";
import { collectBytes } from "../helpers/nar-tree.js";
import { nix, requireNix, tempStoreRoot } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

function stores() {
  return { blobs: new MemoryBlobService(), directories: new MemoryDirectoryService() };
}

type Stores = ReturnType<typeof stores>;

async function fullNar(node: Node, s: Stores): Promise<Buffer> {
  return collectBytes(writeNar(castoreNarSource(node, castoreReaders(s.blobs, s.directories))));
}

async function range(node: Node, s: Stores, g: NarGeometry, start: number, end: number) {
  return collectBytes(renderNarRange(node, g, start, end, blobRangeSource(s.blobs)));
}

/** Deterministic pseudo-random numbers. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x80000000;
  };
}

/** Offsets worth probing: the edges, every file's first content byte (from the listing) and its neighbours. */
function interestingOffsets(listing: string, size: number): number[] {
  const out = new Set([0, 1, 7, 8, 23, 24, 25, size - 1]);
  for (const m of listing.matchAll(/"narOffset":(\d+)/g)) {
    const o = Number(m[1]);
    for (const d of [-9, -1, 0, 1, 8]) if (o + d >= 0 && o + d < size) out.add(o + d);
  }
  return [...out].filter((o) => o >= 0 && o < size).sort((a, b) => a - b);
}

describe("NAR geometry and ranges", () => {
  test("sizes, listings and every sampled range match the NAR writer for each corpus item", async () => {
    const s = stores();
    const random = rng(42);
    for (const item of corpusItems()) {
      const { node } = await ingestSource(fsNarSource(join(corpusDir(), item)), s);
      const nar = await fullNar(node, s);
      const g = await NarGeometry.load(node, s.directories);
      assert.equal(g.narSize(node), nar.length, `${item}: size`);
      const listing = renderListing(node, g);
      JSON.parse(listing);
      // Each narOffset points at exactly the file's contents.
      const offsets = interestingOffsets(listing, nar.length);
      const step = Math.ceil(offsets.length / 60);
      const sampled = offsets.filter((_, i) => i % step === 0);
      const ranges: [number, number][] = [[0, nar.length]];
      for (const o of sampled) {
        ranges.push([o, Math.min(nar.length, o + 1)]);
        ranges.push([o, Math.min(nar.length, o + 1 + Math.floor(random() * 5000))]);
      }
      for (let i = 0; i < 20; i++) {
        const a = Math.floor(random() * nar.length);
        ranges.push([a, a + Math.floor(random() * (nar.length - a)) + 1]);
      }
      ranges.push([nar.length - 1, nar.length]);
      for (const [a, b] of ranges) {
        const got = await range(node, s, g, a, b);
        assert.ok(got.equals(nar.subarray(a, b)), `${item}: bytes ${a}..${b}`);
      }
    }
  });

  test("listings are byte-identical to the .ls files Nix wrote for the example cache", async () => {
    const dir = join(FIXTURES, "nix-example/cache-none");
    const s = stores();
    const lsFiles = readdirSync(dir).filter((f) => f.endsWith(".ls"));
    assert.equal(lsFiles.length, 3);
    for (const ls of lsFiles) {
      const narinfo = readFileSync(join(dir, ls.replace(/\.ls$/, ".narinfo")), "utf8");
      const url = /^URL: (.*)$/m.exec(narinfo)![1]!;
      const { node } = await ingestNar(
        (async function* () {
          yield readFileSync(join(dir, url));
        })(),
        s,
      );
      const g = await NarGeometry.load(node, s.directories);
      assert.equal(renderListing(node, g), readFileSync(join(dir, ls), "utf8"), ls);
    }
  });

  test("listings of the whole corpus are byte-identical to Nix's (write-nar-listing)", async (t) => {
    if (!requireNix(t)) return;
    const root = tempStoreRoot();
    const cache = tempDir(t);
    const items = corpusItems();
    const paths = nix("nix-store", [
      "--store",
      root,
      "--add",
      ...items.map((i) => join(corpusDir(), i)),
    ])
      .trim()
      .split("\n");
    nix("nix", [
      "copy",
      "--from",
      root,
      "--to",
      `file://${cache}?compression=none&write-nar-listing=true`,
      ...paths,
    ]);
    const s = stores();
    for (const [i, item] of items.entries()) {
      const { node } = await ingestSource(fsNarSource(join(corpusDir(), item)), s);
      const g = await NarGeometry.load(node, s.directories);
      const hash = paths[i]!.slice("/nix/store/".length, "/nix/store/".length + 32);
      const theirs = readFileSync(join(cache, `${hash}.ls`), "utf8");
      assert.equal(renderListing(node, g), theirs, item);
    }
  });
});
