/**
 * The BlobService conformance suite, run by every backend (memory, objectstore,
 * gRPC clients, caches, ...): adding a backend means calling
 * `blobServiceConformance` with a way to open a fresh instance.
 *
 * It uses the BlobService interface only. Expected digests come from the
 * BLAKE3 library directly and from a known constant (the empty blob), never
 * from the service under test. A case is skipped only through a declared
 * capability, with the reason shown in the test output.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { Blake3Hasher } from "@napi-rs/blake-hash";
import type { BlobReader, BlobService } from "../../src/castore/blob/service.js";
import { bytesEqual, concatBytes, toHex } from "../../src/castore/bytes.js";
import { type B3Digest, b3Digest } from "../../src/castore/digest.js";
import { StrataError } from "../../src/errors.js";
import { collect } from "../helpers/collect.js";
import { strataError } from "../helpers/error-matchers.js";
import type { ServiceUnderTest } from "./service-under-test.js";

export interface BlobConformanceCapabilities {
  /**
   * The backend stores blobs chunked: `chunks()` of an existing blob may be a
   * non-empty list (whose sizes must add up to the blob size). Default false:
   * `chunks()` of an existing blob must be `[]`.
   */
  chunked?: boolean;
}

export type OpenedBlobService = ServiceUnderTest<BlobService>;

const MiB = 1024 * 1024;
const EMPTY_B3_HEX = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

/** Independent oracle: BLAKE3 straight from the library, not through strata. */
function b3(data: Uint8Array): B3Digest {
  const h = new Blake3Hasher();
  h.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return b3Digest(new Uint8Array(h.digestBuffer()));
}

/** Deterministic pseudo-random bytes (xorshift32), different per seed. */
export function testBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function writeBlob(
  service: BlobService,
  data: Uint8Array,
  sizes: readonly number[] = [data.length],
): Promise<B3Digest> {
  const w = service.openWrite();
  // One reused buffer: the writer must copy or consume before resolving.
  const scratch = new Uint8Array(Math.max(1, ...sizes));
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - off);
    scratch.set(data.subarray(off, off + n));
    await w.write(scratch.subarray(0, n));
    scratch.fill(0xee, 0, n);
    off += n;
  }
  assert.equal(w.bytesWritten, data.length);
  return w.close();
}

async function readAll(reader: BlobReader, offset = 0): Promise<Uint8Array> {
  const chunks = await collect(reader.stream(offset));
  for (const c of chunks) assert.ok(c.length <= MiB, `stream chunk of ${c.length} bytes > 1 MiB`);
  return concatBytes(chunks);
}

async function mustOpen(service: BlobService, digest: B3Digest): Promise<BlobReader> {
  const r = await service.openRead(digest);
  assert.ok(r !== undefined, "blob just written must be readable");
  return r;
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(bytesEqual(actual, expected), `${what}: content differs`);
}

/** openWrite may throw synchronously or hand back a writer that rejects: both are fine. */
async function writeThrough(service: BlobService, data: Uint8Array, signal?: AbortSignal) {
  const w = signal === undefined ? service.openWrite() : service.openWrite({ signal });
  await w.write(data);
  return w.close();
}

export function blobServiceConformance(
  name: string,
  open: () => Promise<OpenedBlobService>,
  capabilities: BlobConformanceCapabilities = {},
): void {
  describe(`BlobService conformance: ${name}`, () => {
    let opened: OpenedBlobService;
    let svc: BlobService;

    beforeEach(async () => {
      opened = await open();
      svc = opened.service;
    });
    afterEach(async () => {
      await svc.close();
      await opened.teardown?.();
    });

    async function checkChunks(digest: B3Digest, size: number): Promise<void> {
      const chunks = await svc.chunks(digest);
      assert.ok(chunks !== undefined, "chunks() of an existing blob is a list");
      if (capabilities.chunked) {
        if (chunks.length > 0) {
          assert.equal(
            chunks.reduce((n, c) => n + c.size, 0),
            size,
          );
        }
      } else {
        assert.deepEqual(chunks, []);
      }
    }

    test("empty blob: digest is BLAKE3 of nothing, reads are empty", async () => {
      const w = svc.openWrite();
      const d = await w.close();
      assert.equal(toHex(d), EMPTY_B3_HEX);
      assert.equal(await svc.has(d), true);
      const r = await mustOpen(svc, d);
      assert.equal(r.size, 0);
      assert.equal((await r.read(0, 0)).length, 0);
      assert.equal((await r.read(0, 100)).length, 0);
      assert.equal((await readAll(r)).length, 0);
      await assert.rejects(r.read(1, 1), strataError("InvalidInput"));
      await r.close();
      await checkChunks(d, 0);
    });

    test("one byte", async () => {
      const data = new Uint8Array([0x42]);
      const d = await writeBlob(svc, data);
      assert.equal(toHex(d), toHex(b3(data)));
      const r = await mustOpen(svc, d);
      assert.equal(r.size, 1);
      assertSameBytes(await r.read(0, 1), data, "read(0,1)");
      assertSameBytes(await r.read(0, 10), data, "read(0,10)");
      assert.equal((await r.read(1, 10)).length, 0, "read at size is empty");
      await assert.rejects(r.read(2, 1), strataError("InvalidInput"));
      assertSameBytes(await readAll(r), data, "stream");
      await r.close();
      await r.close(); // idempotent
      await checkChunks(d, 1);
    });

    test("10 MiB in odd-sized writes: streamed and range reads", async () => {
      const size = 10 * MiB;
      const data = testBytes(size, 1);
      const d = await writeBlob(svc, data, [1, 7, 4093, 65537, 3, 1048577, 511, 2 * MiB + 5]);
      assert.equal(toHex(d), toHex(b3(data)));
      assert.equal(await svc.has(d), true);
      const r = await mustOpen(svc, d);
      assert.equal(r.size, size);
      assertSameBytes(await readAll(r), data, "stream()");
      for (const offset of [0, 1, 4095, 4096, 65537, size - 1, size]) {
        for (const length of [0, 1, 4097, MiB + 3]) {
          const got = await r.read(offset, length);
          const want = data.subarray(offset, Math.min(size, offset + length));
          assertSameBytes(got, want, `read(${offset}, ${length})`);
        }
      }
      // Length beyond the end: a short read, not an error.
      assert.equal((await r.read(size - 10, 1000)).length, 10);
      await assert.rejects(r.read(size + 1, 1), strataError("InvalidInput"));
      await assert.rejects(r.read(-1, 1), strataError("InvalidInput"));
      await r.close();
      await checkChunks(d, size);
    });

    test("stream() from an offset", async () => {
      const data = testBytes(3 * MiB + 17, 2);
      const d = await writeBlob(svc, data, [MiB]);
      const r = await mustOpen(svc, d);
      for (const offset of [0, 1, 4096, MiB, MiB + 1, data.length - 1, data.length]) {
        assertSameBytes(await readAll(r, offset), data.subarray(offset), `stream(${offset})`);
      }
      await assert.rejects(collect(r.stream(data.length + 1)), strataError("InvalidInput"));
      await r.close();
    });

    test("transient streams yield the same bytes (consumer copies each chunk before the next)", async () => {
      const data = testBytes(5 * MiB + 3, 7);
      const d = await writeBlob(svc, data, [MiB - 1]);
      const r = await mustOpen(svc, d);
      for (const offset of [0, 12345]) {
        const parts: Uint8Array[] = [];
        for await (const c of r.stream(offset, { transient: true })) parts.push(Uint8Array.from(c));
        assertSameBytes(Buffer.concat(parts), data.subarray(offset), `transient stream(${offset})`);
      }
      await r.close();
    });

    test("chunks handed out are the consumer's to keep (and to modify)", async () => {
      const data = testBytes(100_000, 3);
      const d = await writeBlob(svc, data);
      const r = await mustOpen(svc, d);
      const streamed = await collect(r.stream());
      for (const c of streamed) c.fill(0);
      const read = await r.read(0, 1000);
      read.fill(0);
      assertSameBytes(await readAll(r), data, "after modifying handed-out chunks");
      await r.close();
    });

    test("unknown digest: has false, openRead and chunks undefined", async () => {
      const d = b3(new TextEncoder().encode("never written to this store"));
      assert.equal(await svc.has(d), false);
      assert.equal(await svc.openRead(d), undefined);
      assert.equal(await svc.chunks(d), undefined);
    });

    test("concurrent writers of the same blob", async () => {
      const data = testBytes(3 * MiB + 1, 4);
      const writers = Array.from({ length: 6 }, () => svc.openWrite());
      // Interleave the writers chunk by chunk.
      for (let off = 0; off < data.length; off += 256 * 1024) {
        await Promise.all(writers.map((w) => w.write(data.subarray(off, off + 256 * 1024))));
      }
      const digests = await Promise.all(writers.map((w) => w.close()));
      for (const d of digests) assert.equal(toHex(d), toHex(b3(data)));
      const r = await mustOpen(svc, digests[0]!);
      assertSameBytes(await readAll(r), data, "blob written by 6 writers at once");
      await r.close();
    });

    test("concurrent writers of different blobs", async () => {
      const blobs = Array.from({ length: 12 }, (_, i) => testBytes(i * 77_777, 100 + i));
      const digests = await Promise.all(blobs.map((b) => writeBlob(svc, b, [10_000, 333])));
      for (const [i, b] of blobs.entries()) {
        assert.equal(toHex(digests[i]!), toHex(b3(b)));
        const r = await mustOpen(svc, digests[i]!);
        assertSameBytes(await readAll(r), b, `blob ${i}`);
        await r.close();
      }
    });

    test("an aborted writer leaves nothing visible", async () => {
      const data = testBytes(2 * MiB + 3, 5);
      const w = svc.openWrite();
      await w.write(data.subarray(0, MiB));
      await w.write(data.subarray(MiB));
      await w.abort(new Error("changed my mind"));
      await w.abort(); // idempotent
      assert.equal(await svc.has(b3(data)), false);
      assert.equal(await svc.openRead(b3(data)), undefined);
      await assert.rejects(w.write(new Uint8Array(1)));
      await assert.rejects(w.close());
      assert.equal(await svc.has(b3(data)), false);
      // The same content can still be written afterwards.
      const d = await writeBlob(svc, data);
      assert.equal(await svc.has(d), true);
    });

    test("nothing is visible before close() resolves", async () => {
      const data = testBytes(1000, 6);
      const w = svc.openWrite();
      await w.write(data);
      assert.equal(await svc.has(b3(data)), false);
      const d = await w.close();
      assert.equal(await svc.has(d), true);
    });

    test("write and close after close() are rejected", async () => {
      const w = svc.openWrite();
      await w.write(new Uint8Array([1, 2, 3]));
      const d = await w.close();
      await assert.rejects(w.write(new Uint8Array([4])));
      await assert.rejects(w.close());
      await w.abort(); // a no-op on a closed writer: the blob stays
      assert.equal(await svc.has(d), true);
      const r = await mustOpen(svc, d);
      assertSameBytes(await r.read(0, 10), new Uint8Array([1, 2, 3]), "content");
      await r.close();
    });

    test("a pre-aborted signal rejects every method with code Aborted", async () => {
      const data = testBytes(5000, 7);
      const d = await writeBlob(svc, data);
      const signal = AbortSignal.abort(new Error("stop"));
      const opts = { signal };
      await assert.rejects(svc.has(d, opts), strataError("Aborted"));
      await assert.rejects(svc.openRead(d, opts), strataError("Aborted"));
      await assert.rejects(svc.chunks(d, opts), strataError("Aborted"));
      await assert.rejects(svc.sync(opts), strataError("Aborted"));
      await assert.rejects(async () => writeThrough(svc, data, signal), strataError("Aborted"));

      const w = svc.openWrite();
      await w.write(data.subarray(0, 10));
      await assert.rejects(w.write(data.subarray(10), opts), strataError("Aborted"));
      await w.abort();

      const w2 = svc.openWrite();
      await w2.write(testBytes(777, 8));
      await assert.rejects(w2.close(opts), strataError("Aborted"));
      assert.equal(await svc.has(b3(testBytes(777, 8))), false, "aborted close publishes nothing");

      const r = await mustOpen(svc, d);
      await assert.rejects(r.read(0, 10, opts), strataError("Aborted"));
      await assert.rejects(collect(r.stream(0, opts)), strataError("Aborted"));
      await r.close();
    });

    test("a signal fired mid-way stops streams and writers", async () => {
      const data = testBytes(4 * MiB, 9);
      const d = await writeBlob(svc, data);
      const r = await mustOpen(svc, d);
      const ac = new AbortController();
      let got = 0;
      await assert.rejects(async () => {
        for await (const c of r.stream(0, { signal: ac.signal })) {
          got += c.length;
          ac.abort();
        }
      }, strataError("Aborted"));
      assert.ok(got < data.length, "the stream stopped early");
      await r.close();

      // The openWrite signal covers the writer's life.
      const ac2 = new AbortController();
      const w = svc.openWrite({ signal: ac2.signal });
      const other = testBytes(2 * MiB, 10);
      await w.write(other.subarray(0, MiB));
      ac2.abort();
      await assert.rejects(
        (async () => {
          await w.write(other.subarray(MiB));
          await w.close();
        })(),
        strataError("Aborted"),
      );
      assert.equal(await svc.has(b3(other)), false);
    });

    test("a reader keeps working while another writer writes", async () => {
      const a = testBytes(3 * MiB, 11);
      const b = testBytes(3 * MiB, 12);
      const da = await writeBlob(svc, a);
      const r = await mustOpen(svc, da);
      const w = svc.openWrite();
      const parts: Uint8Array[] = [];
      const it = r.stream()[Symbol.asyncIterator]();
      for (let off = 0; off < b.length; off += 300_000) {
        await w.write(b.subarray(off, off + 300_000));
        const next = await it.next();
        if (!next.done) parts.push(next.value);
        assertSameBytes(await r.read(off, 1000), a.subarray(off, off + 1000), `read at ${off}`);
      }
      for (let n = await it.next(); !n.done; n = await it.next()) parts.push(n.value);
      assertSameBytes(concatBytes(parts), a, "stream interleaved with writes");
      const db = await w.close();
      assert.equal(toHex(db), toHex(b3(b)));
      assertSameBytes(await r.read(0, 10), a.subarray(0, 10), "read after the write closed");
      await r.close();
    });

    test("sync() resolves and the blobs stay readable", async () => {
      await svc.sync(); // nothing pending
      const blobs = Array.from({ length: 20 }, (_, i) => testBytes(i * 1000 + 1, 200 + i));
      const digests = await Promise.all(blobs.map((b) => writeBlob(svc, b)));
      await Promise.all([svc.sync(), svc.sync()]);
      await svc.sync();
      for (const [i, d] of digests.entries()) {
        const r = await mustOpen(svc, d);
        assertSameBytes(await readAll(r), blobs[i]!, `blob ${i}`);
        await r.close();
      }
    });

    test("the service rejects calls after close()", async () => {
      const d = await writeBlob(svc, testBytes(100, 13));
      await svc.close();
      await svc.close(); // idempotent
      const isTyped = (err: unknown): boolean => {
        assert.ok(err instanceof StrataError, `expected a StrataError, got ${String(err)}`);
        return true;
      };
      await assert.rejects(svc.has(d), isTyped);
      await assert.rejects(svc.openRead(d), isTyped);
      await assert.rejects(svc.chunks(d), isTyped);
      await assert.rejects(svc.sync(), isTyped);
      await assert.rejects(async () => writeThrough(svc, new Uint8Array([1])), isTyped);
    });

    test("close() through Symbol.asyncDispose", async () => {
      await svc[Symbol.asyncDispose]();
      await assert.rejects(svc.has(b3(new Uint8Array(0))));
    });
  });
}
