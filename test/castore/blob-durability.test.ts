/**
 * Crash test with a real SIGKILL: a child process writes and syncs batches of
 * blobs and reports each synced batch; we kill it at an arbitrary point and
 * check the store it leaves behind. (A SIGKILL keeps the page cache, so this
 * tests atomic visibility and the reporting order, not power loss.)
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { open } from "lmdb";
import { blake3 } from "../../src/castore/blake3.js";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import { fromHex, toHex } from "../../src/castore/bytes.js";
import { b3Digest, hashB3 } from "../../src/castore/digest.js";
import { runAndKill } from "../helpers/kill-child.js";
import { tempDir } from "../helpers/tmp.js";

const CHILD = join(import.meta.dirname, "../helpers/blob-writer-child.js");

/** Runs the child until ~1 s after it reported a synced batch, SIGKILLs it; returns the digests it reported. */
async function runAndKillWriter(root: string): Promise<string[]> {
  const lines = await runAndKill(CHILD, [root], {
    ready: (out) => out.includes("\n"),
    runMs: 1000,
  });
  for (const l of lines) assert.match(l, /^[0-9a-f]{64}$/);
  return lines;
}

test("SIGKILL during writes: synced blobs survive, nothing partial is visible", async (t) => {
  const root = tempDir(t, "strata-durability-");
  const reported = await runAndKillWriter(root);
  assert.ok(reported.length >= 8, `child reported ${reported.length} digests`);

  await using store = await FsObjectStoreBlobService.open({ root });
  for (const hex of reported) {
    const d = b3Digest(fromHex(hex)!);
    assert.equal(await store.has(d), true, `reported blob ${hex} is missing`);
    const r = await store.openRead(d);
    assert.ok(r);
    const parts: Uint8Array[] = [];
    for await (const c of r.stream()) parts.push(c);
    await r.close();
    const h = Buffer.concat(parts);
    assert.equal(toHex(blake3(h)), hex, `reported blob ${hex} has the wrong content`);
  }

  // Every visible blob, synced or not, holds exactly the content its name says.
  let visible = 0;
  for (const shard of readdirSync(join(root, "blobs"))) {
    for (const name of readdirSync(join(root, "blobs", shard))) {
      assert.match(name, /^[0-9a-f]{64}$/);
      assert.equal(name.slice(0, 2), shard);
      const content = readFileSync(join(root, "blobs", shard, name));
      assert.equal(toHex(blake3(content)), name, `visible blob ${name} is partial or corrupt`);
      visible++;
    }
  }
  // Small blobs: inline in the LMDB under small/ ("blobs"), or in packs
  // under packs/ located by "packed". Every indexed one must hash to its key.
  const env = open<Uint8Array, Uint8Array>({ path: join(root, "small"), readOnly: true });
  const db = (name: string) =>
    env.openDB<Uint8Array, Uint8Array>({ name, keyEncoding: "binary", encoding: "binary" });
  for (const { key, value } of db("blobs").getRange()) {
    assert.equal(toHex(blake3(value)), toHex(key), "a small blob in LMDB is partial or corrupt");
    visible++;
  }
  for (const key of db("packed").getKeys()) {
    const r = await store.openRead(b3Digest(Uint8Array.from(key)));
    assert.ok(r, `indexed packed blob ${toHex(key)} cannot be opened`);
    const content = await r.read(0, r.size);
    await r.close();
    assert.equal(toHex(blake3(content)), toHex(key), "a packed small blob is partial or corrupt");
    visible++;
  }
  await env.close();
  assert.ok(
    visible >= new Set(reported).size,
    `${visible} visible blobs, ${reported.length} reported`,
  );

  // The store takes new writes after the crash.
  const data = new TextEncoder().encode(`after the crash ${Date.now()}`);
  const w = store.openWrite();
  await w.write(data);
  const d = await w.close();
  assert.equal(toHex(d), toHex(hashB3(data)));
  await store.sync();
  assert.equal(await store.has(d), true);
});
