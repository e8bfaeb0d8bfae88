/**
 * SmallBlobs (objectstore+file's small blobs in pack files): inline vs
 * packed placement, pack rotation while commits are running, visibility
 * across reopen, and several writers on one store.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { open } from "lmdb";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import { INLINE_MAX, SmallBlobs } from "../../src/castore/blob/objectstore-fs-small.js";
import { toHex } from "../../src/castore/bytes.js";
import { type B3Digest, b3Digest, hashB3 } from "../../src/castore/digest.js";
import { tempDir } from "../helpers/tmp.js";

function blob(size: number): { data: Uint8Array; digest: B3Digest } {
  const data = new Uint8Array(randomBytes(size));
  return { data, digest: hashB3(data) };
}

function readAll(s: SmallBlobs, digest: B3Digest): Uint8Array | undefined {
  return s.get(digest);
}

test("tiny blobs stay inline, larger ones go to packs; readInto copies only what fits", async (t) => {
  const root = tempDir(t);
  const s = await SmallBlobs.open(root);
  const tiny = blob(INLINE_MAX);
  const packed = blob(INLINE_MAX + 1);
  await s.put(tiny.digest, tiny.data);
  await s.put(packed.digest, packed.data);
  assert.equal(s.has(tiny.digest), true);
  assert.equal(s.has(packed.digest), true, "visible before any sync");
  const into = new Uint8Array(INLINE_MAX + 3);
  assert.equal(s.readInto(packed.digest, into, 2), INLINE_MAX + 1);
  assert.deepEqual(into.subarray(2), packed.data);
  const small = new Uint8Array(10).fill(9);
  assert.equal(s.readInto(packed.digest, small, 0), INLINE_MAX + 1, "too small: length only");
  assert.deepEqual(small, new Uint8Array(10).fill(9), "nothing copied");
  assert.equal(s.readInto(b3Digest(new Uint8Array(32)), into, 0), undefined);
  await s.sync();
  await s.close();

  const env = open<Uint8Array, Uint8Array>({ path: join(root, "small"), readOnly: true });
  const db = (name: string) =>
    env.openDB<Uint8Array, Uint8Array>({ name, keyEncoding: "binary", encoding: "binary" });
  assert.deepEqual([...db("blobs").getKeys()].map(toHex), [toHex(tiny.digest)]);
  assert.deepEqual([...db("packed").getKeys()].map(toHex), [toHex(packed.digest)]);
  await env.close();
  assert.equal(readdirSync(join(root, "packs")).length, 1);
});

test("packs rotate while commits run; every blob is readable after a reopen", async (t) => {
  const root = tempDir(t);
  const s = await SmallBlobs.open(root, { packMaxBytes: 20_000 });
  const blobs = Array.from({ length: 200 }, (_, i) => blob(2000 + (i % 7) * 500));
  const syncs: Promise<void>[] = [];
  for (const [i, b] of blobs.entries()) {
    // A commit starts every few blobs and is still waiting for its
    // fdatasync while the next puts append and rotate packs.
    if (i % 5 === 0) syncs.push(s.sync());
    await s.put(b.digest, b.data);
  }
  await Promise.all(syncs);
  await s.sync();
  for (const b of blobs) assert.deepEqual(readAll(s, b.digest), b.data);
  await s.close();
  const packs = readdirSync(join(root, "packs"));
  assert.ok(packs.length >= 20, `${packs.length} packs`);
  for (const p of packs) assert.ok(statSync(join(root, "packs", p)).size <= 20_000);

  const again = await SmallBlobs.open(root);
  for (const b of blobs) {
    assert.equal(again.has(b.digest), true);
    assert.deepEqual(readAll(again, b.digest), b.data);
  }
  await again.close();
});

test("blobs put without a sync are still there after close and reopen", async (t) => {
  const root = tempDir(t);
  const s = await SmallBlobs.open(root);
  const b = blob(5000);
  await s.put(b.digest, b.data);
  await s.close();
  const again = await SmallBlobs.open(root);
  assert.deepEqual(readAll(again, b.digest), b.data);
  await again.close();
});

test("two writers on one store use packs of their own and see each other's committed blobs", async (t) => {
  const root = tempDir(t);
  const a = await SmallBlobs.open(root);
  const b = await SmallBlobs.open(root);
  const fromA = blob(3000);
  const fromB = blob(4000);
  await a.put(fromA.digest, fromA.data);
  await b.put(fromB.digest, fromB.data);
  assert.equal(b.has(fromA.digest), false, "not committed yet");
  await Promise.all([a.sync(), b.sync()]);
  assert.deepEqual(readAll(b, fromA.digest), fromA.data);
  assert.deepEqual(readAll(a, fromB.digest), fromB.data);
  await Promise.all([a.close(), b.close()]);
  assert.equal(readdirSync(join(root, "packs")).length, 2);
});

test("a pack file left under an id the counter hands out again is skipped, not reused", async (t) => {
  const root = tempDir(t);
  const s = await SmallBlobs.open(root, { packMaxBytes: 5000 });
  const first = blob(4000);
  await s.put(first.digest, first.data);
  // As if a crash had lost the counter's update but kept the next pack file.
  writeFileSync(join(root, "packs", "00000001.pack"), "left over");
  const second = blob(4000);
  await s.put(second.digest, second.data);
  const third = blob(4000);
  await s.put(third.digest, third.data);
  await s.sync();
  for (const b of [first, second, third]) assert.deepEqual(readAll(s, b.digest), b.data);
  await s.close();
  assert.equal(readFileSync(join(root, "packs", "00000001.pack"), "utf8"), "left over");
});

test("blobs of a missing pack count as absent and are stored again when put", async (t) => {
  const root = tempDir(t);
  const s = await SmallBlobs.open(root);
  const b = blob(3000);
  await s.put(b.digest, b.data);
  await s.close();
  for (const p of readdirSync(join(root, "packs"))) rmSync(join(root, "packs", p));
  const again = await SmallBlobs.open(root);
  assert.equal(again.has(b.digest), false);
  await again.put(b.digest, b.data);
  await again.sync();
  assert.deepEqual(readAll(again, b.digest), b.data);
  await again.close();
});

test("objectstore+file with smallBlobMaxBytes 0 still reads the small blobs stored before", async (t) => {
  const root = tempDir(t);
  const data = new Uint8Array(randomBytes(3000));
  let digest: B3Digest;
  {
    await using s = await FsObjectStoreBlobService.open({ root });
    digest = await s.putBytes(data);
    await s.sync();
  }
  await using s = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 0 });
  assert.equal(await s.has(digest), true);
  const r = await s.openRead(digest);
  assert.deepEqual(await r?.read(0, data.length), data);
  await r?.close();
  const fresh = new Uint8Array(randomBytes(3000));
  const d2 = await s.putBytes(fresh);
  assert.ok(existsSync(s.blobPath(d2)), "new small blobs become files");
});
