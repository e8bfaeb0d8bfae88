import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import { toHex } from "../../src/castore/bytes.js";
import { type B3Digest, hashB3 } from "../../src/castore/digest.js";
import { InvalidInputError, StrataError } from "../../src/errors.js";
import { blobServiceConformance, testBytes } from "../conformance/blob.js";
import { tempDir } from "../helpers/tmp.js";

// The URL-level runs live in test/conformance/urls.test.ts; this tuning has no URL form.
blobServiceConformance("objectstore+file (small buffers, constructor)", async () => {
  const root = mkdtempSync(join(tmpdir(), "strata-blob-"));
  return {
    service: new FsObjectStoreBlobService({
      root,
      writeBufferSize: 256 * 1024,
      readChunkSize: 4096,
      readAhead: 1,
    }),
    teardown: async () => rmSync(root, { recursive: true, force: true }),
  };
});

/** The prototype every FileHandle shares, to count syscall-level calls without a backend hook. */
async function fileHandleProto(dir: string): Promise<FileHandle> {
  const fh = await fsp.open(join(dir, "probe"), "w");
  await fh.close();
  return Object.getPrototypeOf(fh) as FileHandle;
}

describe("FsObjectStoreBlobService", () => {
  test("on-disk layout: blobs/<hh>/<hex>, read-only, no temp file left", async (t) => {
    const root = tempDir(t);
    await using s = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 0 });
    assert.equal(readdirSync(join(root, "blobs")).length, 256);
    const data = testBytes(12345, 1);
    const w = s.openWrite();
    await w.write(data);
    const d = await w.close();
    const hex = toHex(d);
    const path = join(root, "blobs", hex.slice(0, 2), hex);
    assert.equal(s.blobPath(d), path);
    assert.deepEqual(new Uint8Array(readFileSync(path)), data);
    assert.equal(statSync(path).mode & 0o777, 0o444);
    assert.deepEqual(readdirSync(join(root, "tmp")), []);
  });

  test("rejects a relative root", () => {
    assert.throws(() => new FsObjectStoreBlobService({ root: "relative/dir" }), InvalidInputError);
    assert.throws(
      () => new FsObjectStoreBlobService({ root: "/x", writeBufferSize: 1024 }),
      InvalidInputError,
    );
  });

  test("a root that cannot be created fails with a StorageError naming it", async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, "file"), "x");
    const root = join(dir, "file", "store");
    await assert.rejects(FsObjectStoreBlobService.open({ root }), (err: unknown) => {
      assert.ok(err instanceof StrataError);
      assert.equal(err.code, "Storage");
      assert.match(err.message, /objectstore '.*file\/store'/);
      return true;
    });
  });

  test("a writer killed mid-way leaves nothing visible to a new service", async (t) => {
    const root = tempDir(t);
    const crashed = await FsObjectStoreBlobService.open({ root });
    const data = testBytes(3 * 1024 * 1024, 2);
    const w = crashed.openWrite();
    await w.write(data.subarray(0, 2 * 1024 * 1024)); // on disk in tmp/, never closed
    assert.equal(readdirSync(join(root, "tmp")).length, 1);

    const s = await FsObjectStoreBlobService.open({ root });
    assert.equal(await s.has(hashB3(data)), false);
    assert.equal(await s.openRead(hashB3(data)), undefined);
    // A young temp file may belong to a live writer: it is left alone.
    assert.equal(readdirSync(join(root, "tmp")).length, 1);
    const w2 = s.openWrite();
    await w2.write(data);
    assert.equal(toHex(await w2.close()), toHex(hashB3(data)));
    await s.close();
    await crashed.close(); // aborts the abandoned writer: its temp file goes
    assert.deepEqual(readdirSync(join(root, "tmp")), []);
  });

  test("stale temp files are deleted on open, young ones kept", async (t) => {
    const root = tempDir(t);
    await (await FsObjectStoreBlobService.open({ root })).close();
    const stale = join(root, "tmp", "0123.tmp");
    const young = join(root, "tmp", "4567.tmp");
    writeFileSync(stale, "partial");
    writeFileSync(young, "partial");
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await fsp.utimes(stale, twoHoursAgo, twoHoursAgo);
    await using s = await FsObjectStoreBlobService.open({ root });
    assert.deepEqual(readdirSync(join(root, "tmp")), ["4567.tmp"]);
    assert.equal(await s.has(hashB3(new TextEncoder().encode("partial"))), false);
  });

  test("small writes are coalesced into writes of at least 256 KiB", async (t) => {
    const root = tempDir(t);
    const proto = await fileHandleProto(root);
    await using s = await FsObjectStoreBlobService.open({ root, writeBufferSize: 256 * 1024 });
    const sizes: number[] = [];
    const original = proto.write;
    t.after(() => {
      proto.write = original;
    });
    proto.write = function (this: FileHandle, ...args: unknown[]) {
      if (typeof args[2] === "number") sizes.push(args[2]);
      return (original as (...a: unknown[]) => ReturnType<FileHandle["write"]>).apply(this, args);
    } as FileHandle["write"];
    const data = testBytes(3 * 1024 * 1024 + 100, 3);
    const w = s.openWrite();
    for (let off = 0; off < data.length; off += 1024) await w.write(data.subarray(off, off + 1024));
    await w.close();
    proto.write = original;
    assert.ok(sizes.length >= 12 && sizes.length <= 14, `${sizes.length} write calls`);
    for (const n of sizes.slice(0, -1)) assert.ok(n >= 256 * 1024, `a write of ${n} bytes`);
  });

  test("small blobs live in the LMDB under small/, large ones as files", async (t) => {
    const root = tempDir(t);
    await using s = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 1000 });
    const small = testBytes(1000, 5);
    const large = testBytes(1001, 6);
    const write = async (data: Uint8Array): Promise<B3Digest> => {
      const w = s.openWrite();
      await w.write(data);
      return w.close();
    };
    const ds = await write(small);
    const dl = await write(large);
    assert.equal(existsSync(s.blobPath(ds)), false);
    assert.equal(existsSync(s.blobPath(dl)), true);
    assert.ok(existsSync(join(root, "small")));
    for (const [d, data] of [
      [ds, small],
      [dl, large],
    ] as const) {
      assert.equal(await s.has(d), true);
      const r = await s.openRead(d);
      assert.deepEqual(await r!.read(0, data.length), data);
      await r!.close();
    }
    await s.sync();
  });

  test("putBytes: digest computed by the store, small ones packed, larger as files, nothing rewritten", async (t) => {
    const root = tempDir(t);
    await using s = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 2000 });
    const small = testBytes(2000, 7);
    const large = testBytes(5000, 8);
    const ds = await s.putBytes(small);
    const dl = await s.putBytes(large);
    assert.deepEqual(ds, hashB3(small));
    assert.deepEqual(dl, hashB3(large));
    assert.equal(existsSync(s.blobPath(ds)), false);
    assert.equal(existsSync(s.blobPath(dl)), true);
    for (const [d, data] of [
      [ds, small],
      [dl, large],
    ] as const) {
      const r = await s.openRead(d);
      assert.deepEqual(await r!.read(0, data.length), data);
      await r!.close();
    }
    await s.sync();
    // Packs and blob files are what a rewrite would touch (sync() may write
    // a marker to the index to flush it).
    const state = () => [
      ...readdirSync(join(root, "packs")).map((f) => {
        const st = statSync(join(root, "packs", f), { bigint: true });
        return `${f} ${st.size} ${st.mtimeNs}`;
      }),
      String(statSync(s.blobPath(dl), { bigint: true }).mtimeNs),
    ];
    const before = state();
    assert.equal(before.length, 2, "one pack and one blob file");
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await s.putBytes(small), ds);
    assert.deepEqual(await s.putBytes(large), dl);
    await s.sync();
    assert.deepEqual(state(), before, "a blob present already is not written again");
    assert.equal(s.hasLocal(ds, small.length), true);
    assert.equal(s.hasLocal(dl, large.length), true);
    assert.equal(s.hasLocal(hashB3(testBytes(10, 9)), 10), false);
    assert.equal(s.hasLocal(hashB3(testBytes(5000, 9)), 5000), false);
  });

  test("1,000 small blobs: close() does not fsync, one sync() does it for all", async (t) => {
    const root = tempDir(t);
    const proto = await fileHandleProto(root);
    await using s = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 0 });
    let fsyncs = 0;
    const original = proto.sync;
    t.after(() => {
      proto.sync = original;
    });
    proto.sync = function (this: FileHandle) {
      fsyncs++;
      return original.call(this);
    };
    const digests = [];
    for (let i = 0; i < 1000; i++) {
      const w = s.openWrite();
      await w.write(new TextEncoder().encode(`blob number ${i}`));
      digests.push(await w.close());
    }
    // One duplicate: found in place, still counted once.
    const dup = s.openWrite();
    await dup.write(new TextEncoder().encode("blob number 0"));
    await dup.close();
    assert.equal(fsyncs, 0, "close() must not fsync");
    await s.sync();
    const shards = new Set(digests.map((d) => toHex(d).slice(0, 2)));
    assert.equal(fsyncs, 1000 + shards.size, "one fsync per file plus one per shard directory");
    fsyncs = 0;
    await s.sync();
    assert.equal(fsyncs, 0, "nothing left to sync");
    proto.sync = original;
    for (const d of digests.slice(0, 10)) assert.equal(await s.has(d), true);
  });

  test("a zero-length file under a non-empty digest's name is not a blob, and is replaced", async (t) => {
    // What an unsynced rename can look like after a power loss (delayed allocation).
    const root = tempDir(t);
    await using s = await FsObjectStoreBlobService.open({ root, smallBlobMaxBytes: 0 });
    const data = testBytes(5000, 4);
    const d = hashB3(data);
    writeFileSync(s.blobPath(d), "");
    assert.equal(await s.has(d), false);
    assert.equal(await s.openRead(d), undefined);
    const w = s.openWrite();
    await w.write(data);
    await w.close();
    assert.equal(await s.has(d), true);
    assert.equal(statSync(s.blobPath(d)).size, 5000);
  });

  test("close() aborts open writers and closes readers", async (t) => {
    const root = tempDir(t);
    const s = await FsObjectStoreBlobService.open({ root });
    const w0 = s.openWrite();
    await w0.write(testBytes(10, 5));
    const d = await w0.close();
    const r = await s.openRead(d);
    assert.ok(r);
    const w = s.openWrite();
    await w.write(testBytes(2 * 1024 * 1024, 6));
    await s.close();
    assert.deepEqual(readdirSync(join(root, "tmp")), []);
    await assert.rejects(w.close());
    await assert.rejects(r.read(0, 1));
  });
});
