/**
 * The gRPC server and clients in one process (issue 6): framing, the
 * derived Snix descriptors, the status mapping, connections (lazy,
 * wait-connect, reconnect), deadlines and cancellation reaching the stores,
 * traceparent, clients that trust nothing, chunked blobs, a Snix-like
 * server that does not report sizes, health, reflection, gRPC-Web and
 * Connect on the same port, CalculateNAR, graceful shutdown.
 * (The conformance suites run every client too: urls.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createH2Server } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpcJs from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { GrpcBlobService } from "../../src/castore/blob/grpc.js";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import type { BlobService, BlobWriter, ChunkMeta } from "../../src/castore/blob/service.js";
import { concatBytes, toHex, utf8 } from "../../src/castore/bytes.js";
import type { CallOptions } from "../../src/castore/call-options.js";
import { type B3Digest, digestKey, hashB3 } from "../../src/castore/digest.js";
import { GrpcDirectoryService } from "../../src/castore/directory/grpc.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { Directory } from "../../src/castore/directory.js";
import { BlobChunkDecoder, blobChunkPrefix, envelope } from "../../src/castore/grpc/blob-frames.js";
import { createNodeConnection } from "../../src/castore/grpc/connection-node.js";
import { fromWire, toConnectError } from "../../src/castore/grpc/status.js";
import { directoryNode, fileNode, symlinkNode } from "../../src/castore/node.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import {
  AbortedError,
  IntegrityError,
  InvalidInputError,
  StorageError,
  StrataError,
  UnavailableError,
} from "../../src/errors.js";
import { Logger, type LogRecord, parseLogSpec } from "../../src/observability/log.js";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "../../src/proto/gen/grpc/health/v1/health_pb.js";
import { DirectorySchema as TvixDirectorySchema } from "../../src/proto/gen/tvix/castore/v1/castore_pb.js";
import { ServerReflectionV1Alpha, storeServices } from "../../src/proto/packages.js";
import type { ServedStores } from "../../src/server/grpc/handlers.js";
import { GrpcServer } from "../../src/server/grpc/server.js";
import { NarCalculator } from "../../src/store/nar/calculate.js";
import type { PathInfo } from "../../src/store/path-info.js";
import { GrpcPathInfoService } from "../../src/store/pathinfo/grpc.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";
import { StorePath } from "../../src/store/store-path.js";
import { testBytes } from "../conformance/blob.js";

const MiB = 1024 * 1024;
const ROOT = mkdtempSync(join(tmpdir(), "strata-grpc-"));
after(() => rmSync(ROOT, { recursive: true, force: true }));
let sockets = 0;
const freshSocket = (): string => join(ROOT, `s${sockets++}.sock`);

function memoryStores(over: Partial<ServedStores> = {}): ServedStores {
  return {
    blobs: over.blobs ?? new MemoryBlobService(),
    directories: over.directories ?? new MemoryDirectoryService(),
    pathInfos: over.pathInfos ?? new MemoryPathInfoService(),
  };
}

interface Served {
  readonly server: GrpcServer;
  readonly path: string;
  readonly url: string;
  close(): Promise<void>;
}

async function serve(
  stores: ServedStores,
  options: { log?: Logger; path?: string } = {},
): Promise<Served> {
  const server = new GrpcServer({ stores, ...(options.log !== undefined && { log: options.log }) });
  const path = options.path ?? freshSocket();
  await server.listen([{ kind: "unix", path }]);
  return { server, path, url: `grpc+unix://${path}`, close: () => server.close(500) };
}

async function putBlob(blobs: BlobService, data: Uint8Array): Promise<B3Digest> {
  const w = blobs.openWrite();
  await w.write(data);
  return w.close();
}

async function readAll(blobs: BlobService, digest: B3Digest): Promise<Uint8Array> {
  const r = await blobs.openRead(digest);
  assert.ok(r !== undefined);
  const parts: Uint8Array[] = [];
  for await (const c of r.stream()) parts.push(c);
  await r.close();
  return concatBytes(parts);
}

function isCode(code: StrataError["code"], pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StrataError, `expected a StrataError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  };
}

/** A blob store whose `has` takes `delayMs` (honouring the signal) and counts the aborts. */
class SlowBlobs extends MemoryBlobService {
  aborted = 0;
  constructor(readonly delayMs: number) {
    super();
  }
  override async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    try {
      await sleep(this.delayMs, undefined, options?.signal ? { signal: options.signal } : {});
    } catch {
      this.aborted++;
      throw new AbortedError("slow has aborted");
    }
    return super.has(digest, options);
  }
}

/** Records the signal of every `has`; may leave a listener on it, or wait until it fires. */
class SignalRecordingBlobs extends MemoryBlobService {
  readonly signals: AbortSignal[] = [];
  aborted = 0;
  leaveListener = false;
  block = false;
  override async has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    const signal = options?.signal;
    assert.ok(signal !== undefined && !signal.aborted, "a live signal for every store call");
    this.signals.push(signal);
    if (this.leaveListener) signal.addEventListener("abort", () => {});
    if (this.block) {
      try {
        await sleep(5000, undefined, { signal });
      } catch {
        this.aborted++;
        throw new AbortedError("blocked has aborted");
      }
    }
    return super.has(digest, options);
  }
}

describe("BlobChunk framing (blob-frames.ts)", () => {
  test("round trip through arbitrary splits; unknown fields skipped", () => {
    const data = testBytes(3 * MiB + 17, 1);
    const pieces = [data.subarray(0, 300), data.subarray(300, MiB + 5), data.subarray(MiB + 5)];
    // A message with an unknown varint field (2) and an unknown bytes field (7) around the data.
    const odd = concatBytes([
      new Uint8Array([0x10, 0x96, 0x01]),
      new Uint8Array([0x0a, 3, 1, 2, 3]),
      new Uint8Array([0x3a, 2, 9, 9]),
    ]);
    const stream = concatBytes([
      ...pieces.flatMap((p) => [blobChunkPrefix(p.length), p]),
      blobChunkPrefix(0),
      envelope(odd),
    ]);
    for (const step of [7, 4096, 1 << 20, stream.length]) {
      const d = new BlobChunkDecoder(Code.InvalidArgument);
      const out: Uint8Array[] = [];
      for (let o = 0; o < stream.length; o += step) d.push(stream.subarray(o, o + step), out);
      d.end();
      assert.equal(d.messages, 5);
      assert.deepEqual(
        concatBytes(out),
        concatBytes([data, new Uint8Array([1, 2, 3])]),
        `step ${step}`,
      );
    }
  });

  test("byte by byte", () => {
    const data = testBytes(1000, 2);
    const stream = concatBytes([
      blobChunkPrefix(300),
      data.subarray(0, 300),
      blobChunkPrefix(700),
      data.subarray(300),
    ]);
    const d = new BlobChunkDecoder(Code.InvalidArgument);
    const out: Uint8Array[] = [];
    for (let o = 0; o < stream.length; o++) d.push(stream.subarray(o, o + 1), out);
    d.end();
    assert.deepEqual(concatBytes(out), data);
  });

  test("errors: oversized (from the header), repeated data field, truncation, compression", () => {
    const dec = (): BlobChunkDecoder => new BlobChunkDecoder(Code.InvalidArgument);
    const huge = new Uint8Array(5);
    new DataView(huge.buffer).setUint32(1, 100 * MiB);
    assert.throws(
      () => dec().push(huge, []),
      (e: unknown) => e instanceof ConnectError && e.code === Code.ResourceExhausted,
    );
    const twice = envelope(new Uint8Array([0x0a, 1, 5, 0x0a, 1, 6]));
    assert.throws(() => dec().push(twice, []), /appears twice/);
    const d = dec();
    d.push(blobChunkPrefix(10), []);
    assert.throws(() => d.end(), /ended inside a message/);
    assert.throws(
      () => dec().push(new Uint8Array([1, 0, 0, 0, 0]), []),
      (e: unknown) => e instanceof ConnectError && e.code === Code.Unimplemented,
    );
    assert.throws(
      () => dec().push(envelope(new Uint8Array([0x0a, 9, 1])), []),
      /longer than its message/,
    );
  });
});

describe("package names", () => {
  test("the Snix services are the Tvix ones under another package; messages are interchangeable", () => {
    const tvix = storeServices("tvix");
    const snix = storeServices("snix");
    for (const kind of ["blob", "directory", "pathInfo"] as const) {
      assert.equal(snix[kind].typeName, tvix[kind].typeName.replace(/^tvix\./, "snix."));
      assert.deepEqual(
        snix[kind].methods.map((m) => [
          m.name,
          m.methodKind,
          m.input.typeName.replace(/^snix/, "tvix"),
          m.output.typeName.replace(/^snix/, "tvix"),
        ]),
        tvix[kind].methods.map((m) => [m.name, m.methodKind, m.input.typeName, m.output.typeName]),
      );
    }
    assert.deepEqual(
      snix.files.map((f) => f.proto.name),
      tvix.files.map((f) => f.proto.name.replace(/^tvix\//, "snix/")),
    );
    const dir = Directory.fromEntries([
      { name: "a", node: fileNode(hashB3(utf8("a")), 1, true) },
      { name: "l", node: symlinkNode(utf8("a")) },
    ]);
    const snixDirectory = snix.directory.methods.find((m) => m.name === "Put")!.input;
    const decoded = fromBinary(snixDirectory, dir.encode());
    assert.equal(decoded.$typeName, "snix.castore.v1.Directory");
    assert.deepEqual(toBinary(snixDirectory, decoded), dir.encode());
    assert.deepEqual(
      toBinary(TvixDirectorySchema, fromBinary(TvixDirectorySchema, dir.encode())),
      dir.encode(),
    );
  });
});

describe("status mapping (status.ts)", () => {
  test("strata -> gRPC -> strata", () => {
    const cases: [StrataError, Code, StrataError["code"]][] = [
      [new InvalidInputError("bad"), Code.InvalidArgument, "InvalidInput"],
      [new IntegrityError("corrupt"), Code.DataLoss, "Integrity"],
      [new UnavailableError("down"), Code.Unavailable, "Unavailable"],
      [new StorageError("disk", { cause: new Error("EIO") }), Code.Internal, "Storage"],
    ];
    for (const [err, code, back] of cases) {
      const wire = toConnectError(err);
      assert.equal(wire.code, code, err.message);
      const again = fromWire(wire, { what: "x" });
      assert.equal(again.code, back);
      assert.ok(again.message.startsWith("x: "), again.message);
    }
    assert.equal(
      toConnectError(new StorageError("disk", { cause: new Error("EIO") })).rawMessage,
      "disk: EIO",
    );
    assert.equal(toConnectError(new Error("bug")).code, Code.Internal);
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(
      fromWire(new ConnectError("x", Code.Canceled), { what: "w", signal: aborted.signal }).code,
      "Aborted",
    );
    assert.equal(fromWire(new ConnectError("x", Code.Canceled), { what: "w" }).code, "Unavailable");
    assert.equal(
      fromWire(new ConnectError("x", Code.Unavailable), { what: "w", closed: true }).code,
      "Storage",
    );
    assert.match(
      fromWire(new ConnectError("x", Code.Unimplemented), { what: "w" }).message,
      /package=tvix/,
    );
  });
});

describe("connections", () => {
  test("lazy: building needs no server; calls fail Unavailable; wait-connect=1 fails at build", async () => {
    const url = `grpc+unix://${freshSocket()}`;
    const blobs = await defaultRegistry().build("blob", url);
    await assert.rejects(blobs.has(hashB3(utf8("x"))), isCode("Unavailable"));
    await blobs.close();
    await assert.rejects(
      defaultRegistry().build("blob", `${url}?wait-connect=1`),
      isCode("Unavailable"),
    );
  });

  test("reconnects after the server restarted", async () => {
    const path = freshSocket();
    const first = await serve(memoryStores(), { path });
    const blobs = await defaultRegistry().build("blob", `grpc+unix://${path}`);
    try {
      const d = await putBlob(blobs, utf8("before"));
      assert.equal(await blobs.has(d), true);
      await first.close();
      await assert.rejects(blobs.has(d), isCode("Unavailable"));
      const second = await serve(memoryStores(), { path });
      try {
        assert.equal(await blobs.has(d), false, "a new, empty store");
        const d2 = await putBlob(blobs, utf8("after"));
        assert.deepEqual(await readAll(blobs, d2), utf8("after"));
      } finally {
        await second.close();
      }
    } finally {
      await blobs.close();
    }
  });

  test("both package names reach the same handlers", async () => {
    const served = await serve(memoryStores());
    try {
      const snix = await defaultRegistry().build("blob", `${served.url}?package=snix`);
      const tvix = await defaultRegistry().build("blob", `${served.url}?package=tvix`);
      const d = await putBlob(tvix, utf8("shared"));
      assert.deepEqual(await readAll(snix, d), utf8("shared"));
      await Promise.all([snix.close(), tvix.close()]);
    } finally {
      await served.close();
    }
  });

  test("a client's signal and deadline, and grpc-timeout, cancel the store call on the server", async () => {
    const slow = new SlowBlobs(3000);
    const served = await serve(memoryStores({ blobs: slow }));
    const blobs = await defaultRegistry().build("blob", served.url);
    try {
      const t0 = Date.now();
      await assert.rejects(
        blobs.has(hashB3(utf8("x")), { signal: AbortSignal.timeout(100) }),
        isCode("Aborted"),
      );
      assert.ok(Date.now() - t0 < 2000);
      // A deadline sent as grpc-timeout, by another client.
      const conn = createNodeConnection({
        target: { kind: "unix", path: served.path },
        pkg: "tvix",
      });
      const raw = createClient(storeServices("tvix").blob, conn.transport);
      await assert.rejects(
        raw.stat({ digest: hashB3(utf8("y")) }, { timeoutMs: 100 }),
        (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded,
      );
      conn.close();
      for (let i = 0; i < 50 && slow.aborted < 2; i++) await sleep(20);
      assert.equal(slow.aborted, 2, "both store calls saw their signal fire");
    } finally {
      await blobs.close();
      await served.close();
    }
  });

  test("store signals of finished calls are reused only unfired and unlistened, and fire for the call they serve", async () => {
    const store = new SignalRecordingBlobs();
    const served = await serve(memoryStores({ blobs: store }));
    const blobs = await defaultRegistry().build("blob", served.url);
    const x = hashB3(utf8("x"));
    const calls = async (n: number): Promise<AbortSignal[]> => {
      for (let i = 0; i < n; i++) await blobs.has(x);
      return store.signals.slice(-n);
    };
    try {
      const first = await calls(10);
      assert.ok(new Set(first).size < first.length, "signals of finished calls are reused");
      store.leaveListener = true;
      const [listened] = await calls(1);
      store.leaveListener = false;
      assert.ok(!(await calls(10)).includes(listened!), "not a signal someone listens to");
      store.block = true;
      await assert.rejects(blobs.has(x, { signal: AbortSignal.timeout(100) }), isCode("Aborted"));
      for (let i = 0; i < 50 && store.aborted < 1; i++) await sleep(20);
      assert.equal(store.aborted, 1, "the cancelled call's store call saw its signal fire");
      const fired = store.signals.at(-1)!;
      assert.ok(fired.aborted);
      store.block = false;
      const after = await calls(10);
      assert.ok(!after.includes(fired), "not a signal that fired");
      assert.ok(after.every((s) => !s.aborted));
    } finally {
      await blobs.close();
      await served.close();
    }
  });

  test("every call carries a W3C traceparent", async () => {
    const records: LogRecord[] = [];
    const log = new Logger({
      module: "test",
      filter: parseLogSpec("debug"),
      sink: (r) => records.push(r),
    });
    const served = await serve(memoryStores(), { log });
    const blobs = await defaultRegistry().build("blob", served.url);
    try {
      assert.equal(await blobs.openRead(hashB3(utf8("missing"))), undefined); // Stat: NOT_FOUND, logged
      const conn = createNodeConnection({
        target: { kind: "unix", path: served.path },
        pkg: "snix",
      });
      await assert.rejects(async () => {
        for await (const _ of conn.readBlob(
          hashB3(utf8("missing")),
          new AbortController().signal,
        )) {
          // nothing
        }
      }); // Read (the fast path): NOT_FOUND, logged
      conn.close();
      const traced = records
        .filter((r) => r.msg.startsWith("call"))
        .map((r) => r.fields.traceparent);
      assert.ok(traced.length >= 2, JSON.stringify(records));
      for (const t of traced) assert.match(String(t), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.notEqual(traced[0], traced[1], "one per call");
    } finally {
      await blobs.close();
      await served.close();
    }
  });
});

/** A blob store that serves `lies` (digest -> other blob) and may answer wrong digests on put. */
class LyingBlobs extends MemoryBlobService {
  readonly lies = new Map<string, B3Digest>();
  wrongPutDigest = false;
  override async chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.lies.has(digestKey(digest)) ? [] : super.chunks(digest, options);
  }
  override openRead(digest: B3Digest, options?: CallOptions) {
    return super.openRead(this.lies.get(digestKey(digest)) ?? digest, options);
  }
  override openWrite(options?: CallOptions): BlobWriter {
    const w = super.openWrite(options);
    if (!this.wrongPutDigest) return w;
    return {
      get bytesWritten() {
        return w.bytesWritten;
      },
      write: (d, o) => w.write(d, o),
      close: async (o) => {
        await w.close(o);
        return hashB3(utf8("something else"));
      },
      abort: (r) => w.abort(r),
    };
  }
}

describe("clients trust nothing", () => {
  test("blob: a read with other bytes, a wrong Put digest", async () => {
    const lying = new LyingBlobs();
    const served = await serve(memoryStores({ blobs: lying }));
    const blobs = await defaultRegistry().build("blob", served.url);
    try {
      const real = testBytes(2 * MiB + 3, 5);
      const other = await putBlob(lying, testBytes(2 * MiB + 3, 6));
      lying.lies.set(digestKey(hashB3(real)), other);
      const r = await blobs.openRead(hashB3(real));
      assert.ok(r !== undefined);
      const seen: number[] = [];
      await assert.rejects(
        async () => {
          for await (const c of r.stream()) seen.push(c.length);
        },
        isCode("Integrity", /digest/),
      );
      assert.ok(seen.reduce((a, b) => a + b, 0) < real.length, "the stream never completed");
      await assert.rejects(r.read(10, 10), isCode("Integrity"));
      lying.wrongPutDigest = true;
      await assert.rejects(
        putBlob(blobs, utf8("honest bytes")),
        isCode("Integrity", /answered digest/),
      );
    } finally {
      await blobs.close();
      await served.close();
    }
  });

  test("directory: another directory for a digest, an unreferenced one in a closure", async () => {
    const a = Directory.fromEntries([{ name: "a", node: fileNode(hashB3(utf8("a")), 1) }]);
    const b = Directory.fromEntries([{ name: "b", node: fileNode(hashB3(utf8("b")), 1) }]);
    const root = Directory.fromEntries([{ name: "sub", node: directoryNode(a.digest(), a.size) }]);
    class Lying extends MemoryDirectoryService {
      override async get(digest: B3Digest, options?: CallOptions) {
        return super.get(toHex(digest) === toHex(a.digest()) ? b.digest() : digest, options);
      }
      override async *getRecursive(_r: B3Digest) {
        yield root;
        yield b;
      }
    }
    const dirs = new Lying();
    await dirs.put(a);
    await dirs.put(b);
    await dirs.put(root);
    const served = await serve(memoryStores({ directories: dirs }));
    const client = await defaultRegistry().build("directory", served.url);
    try {
      await assert.rejects(client.get(a.digest()), isCode("Integrity", /instead/));
      await assert.rejects(
        async () => {
          for await (const _ of client.getRecursive(root.digest())) {
            // consume
          }
        },
        isCode("Integrity", /not referenced/),
      );
    } finally {
      await client.close();
      await served.close();
    }
  });

  test("path info: the path info of another store path", async () => {
    const mk = (i: number): PathInfo => ({
      storePath: StorePath.fromParts(new Uint8Array(20).fill(i), `p${i}`),
      node: symlinkNode(utf8("/x")),
      references: [],
      narSize: 100,
      narSha256: new Uint8Array(32),
      signatures: [],
    });
    class Lying extends MemoryPathInfoService {
      override async get(_digest: Uint8Array, options?: CallOptions) {
        return super.get(new Uint8Array(20).fill(2), options);
      }
    }
    const infos = new Lying();
    await infos.put(mk(2));
    const served = await serve(memoryStores({ pathInfos: infos }));
    const client = await defaultRegistry().build("pathinfo", served.url);
    try {
      await assert.rejects(client.get(new Uint8Array(20).fill(1)), isCode("Integrity", /p2/));
    } finally {
      await client.close();
      await served.close();
    }
  });
});

/** Blobs stored whole plus, for some, a chunk list (each chunk also a blob); counts reads. */
class ChunkedBlobs extends MemoryBlobService {
  readonly lists = new Map<string, ChunkMeta[]>();
  readonly reads = new Map<string, number>();
  async addChunked(data: Uint8Array, chunkSize: number): Promise<B3Digest> {
    const list: ChunkMeta[] = [];
    for (let o = 0; o < data.length; o += chunkSize) {
      const piece = data.subarray(o, o + chunkSize);
      list.push({ digest: await putBlob(this, piece), size: piece.length });
    }
    const digest = await putBlob(this, data);
    this.lists.set(digestKey(digest), list);
    return digest;
  }
  override async chunks(digest: B3Digest, options?: CallOptions) {
    return this.lists.get(digestKey(digest)) ?? super.chunks(digest, options);
  }
  override openRead(digest: B3Digest, options?: CallOptions) {
    this.reads.set(digestKey(digest), (this.reads.get(digestKey(digest)) ?? 0) + 1);
    return super.openRead(digest, options);
  }
}

describe("blob reads", () => {
  test("chunk lists: verified per chunk, range reads fetch only the chunks they overlap", async () => {
    const chunked = new ChunkedBlobs();
    const data = testBytes(5 * 300_000 + 7, 9);
    const digest = await chunked.addChunked(data, 300_000);
    const served = await serve(memoryStores({ blobs: chunked }));
    const client = await defaultRegistry().build("blob", served.url);
    try {
      const list = await client.chunks(digest);
      assert.equal(list?.length, 6);
      const r = await client.openRead(digest);
      assert.ok(r !== undefined);
      assert.equal(r.size, data.length);
      chunked.reads.clear();
      assert.deepEqual(await r.read(650_000, 100_000), data.subarray(650_000, 750_000));
      // Server-side reads: the Stat's size lookup aside, only chunk #2 was read.
      const chunkReads = [...chunked.reads.keys()].filter((k) => k !== digestKey(digest));
      assert.deepEqual(chunkReads, [digestKey(list![2]!.digest)]);
      const parts: Uint8Array[] = [];
      for await (const c of r.stream(299_999)) parts.push(c);
      assert.deepEqual(concatBytes(parts), data.subarray(299_999));
      // A chunk list that does not make up the blob (every chunk genuine):
      // a whole read notices.
      chunked.lists.set(digestKey(digest), [list![1]!, ...list!.slice(1)]);
      const liar = await client.openRead(digest);
      await assert.rejects(
        async () => {
          for await (const _ of liar!.stream()) {
            // consume
          }
        },
        isCode("Integrity", /make up a blob/),
      );
      // A chunk list naming a chunk whose bytes are not what it says.
      const forged = { digest: list![0]!.digest, size: list![0]!.size + 1 };
      chunked.lists.set(digestKey(digest), [forged, ...list!.slice(1)]);
      const liar2 = await client.openRead(digest);
      await assert.rejects(liar2!.read(0, 10), isCode("Integrity", /bytes, expected/));
    } finally {
      await client.close();
      await served.close();
    }
  });

  test("a server that does not report sizes (Snix: empty chunk list): one verified pass sizes it", async () => {
    const data = testBytes(1_500_000, 3);
    const digest = hashB3(data);
    const path = freshSocket();
    const snix = storeServices("snix");
    const h2 = createH2Server(
      connectNodeAdapter({
        routes: (router) =>
          router.service(snix.blob, {
            stat: (req) => {
              if (toHex(req.digest) !== toHex(digest)) throw new ConnectError("no", Code.NotFound);
              return {};
            },
            async *read() {
              for (let o = 0; o < data.length; o += 100_000)
                yield { data: data.subarray(o, o + 100_000) };
            },
          }),
      }),
    );
    await new Promise<void>((resolve) => h2.listen(path, resolve));
    const client = await defaultRegistry().build("blob", `grpc+unix://${path}`);
    try {
      assert.deepEqual(await client.chunks(digest), []);
      const r = await client.openRead(digest);
      assert.equal(r?.size, data.length);
      assert.deepEqual(await r!.read(1_000_000, 10), data.subarray(1_000_000, 1_000_010));
      assert.equal(await client.openRead(hashB3(utf8("other"))), undefined);
    } finally {
      await client.close();
      await new Promise((resolve) => h2.close(resolve));
    }
  });
});

describe("server", () => {
  test("health: SERVING, unknown services NOT_FOUND, NOT_SERVING while shutting down", async () => {
    const slow = new SlowBlobs(400);
    const served = await serve(memoryStores({ blobs: slow }));
    const conn = createNodeConnection({ target: { kind: "unix", path: served.path }, pkg: "snix" });
    const health = createClient(Health, conn.transport);
    const blobs = new GrpcBlobService(
      createNodeConnection({ target: { kind: "unix", path: served.path }, pkg: "snix" }),
    );
    try {
      assert.equal(
        (await health.check({ service: "" })).status,
        HealthCheckResponse_ServingStatus.SERVING,
      );
      assert.equal(
        (await health.check({ service: "tvix.store.v1.PathInfoService" })).status,
        HealthCheckResponse_ServingStatus.SERVING,
      );
      await assert.rejects(
        health.check({ service: "nope.Service" }),
        (e: unknown) => e instanceof ConnectError && e.code === Code.NotFound,
      );
      const statuses: number[] = [];
      const watching = (async () => {
        for await (const m of health.watch({ service: "" })) statuses.push(m.status);
      })();
      await sleep(50);
      // Graceful: a call running when the shutdown starts still completes.
      const running = blobs.has(hashB3(utf8("x")));
      await sleep(50);
      const closing = served.server.close(5000);
      assert.equal(await running, false);
      await closing;
      await watching;
      assert.deepEqual(statuses, [
        HealthCheckResponse_ServingStatus.SERVING,
        HealthCheckResponse_ServingStatus.NOT_SERVING,
      ]);
      assert.equal(slow.aborted, 0);
    } finally {
      conn.close();
      await blobs.close();
    }
  });

  test("shutdown grace over: running calls are cancelled, and so are their store calls", async () => {
    const slow = new SlowBlobs(5000);
    const served = await serve(memoryStores({ blobs: slow }));
    const blobs = await defaultRegistry().build("blob", served.url);
    try {
      const running = blobs.has(hashB3(utf8("x")));
      await sleep(100);
      const t0 = Date.now();
      await served.server.close(200);
      assert.ok(Date.now() - t0 < 3000);
      await assert.rejects(running, isCode("Unavailable"));
      assert.equal(slow.aborted, 1);
    } finally {
      await blobs.close();
    }
  });

  test("reflection (v1 by grpc-js, v1alpha by connect): services and their file descriptors", async () => {
    const served = await serve(memoryStores());
    const def = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", {
      includeDirs: [fileURLToPath(new URL("../../../proto", import.meta.url))],
      keepCase: true,
    });
    type Stream = grpcJs.ClientDuplexStream<unknown, Record<string, unknown>>;
    type Ctor = new (
      target: string,
      creds: grpcJs.ChannelCredentials,
    ) => { ServerReflectionInfo(): Stream; close(): void };
    const pkg = grpcJs.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: Ctor } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(
      `unix:${served.path}`,
      grpcJs.credentials.createInsecure(),
    );
    try {
      const call = client.ServerReflectionInfo();
      const answers: Record<string, unknown>[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on("data", (m) => answers.push(m));
        call.on("end", () => resolve());
        call.on("error", reject);
      });
      call.write({ list_services: "" });
      call.write({ file_containing_symbol: "snix.castore.v1.BlobService" });
      call.write({ file_containing_symbol: "no.Such" });
      call.end();
      await done;
      const services = (
        answers[0]!.list_services_response as { service: { name: string }[] }
      ).service.map((s) => s.name);
      for (const s of [
        "snix.castore.v1.BlobService",
        "tvix.store.v1.PathInfoService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]) {
        assert.ok(services.includes(s), s);
      }
      const files = (
        answers[1]!.file_descriptor_response as { file_descriptor_proto: Buffer[] }
      ).file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
      assert.equal(files[0]!.name, "snix/castore/v1/rpc_blobstore.proto");
      assert.equal(files[0]!.package, "snix.castore.v1");
      assert.equal(
        files[0]!.service[0]!.method.find((m) => m.name === "Read")!.outputType,
        ".snix.castore.v1.BlobChunk",
      );
      assert.equal(
        (answers[2]!.error_response as { error_code: number }).error_code,
        Code.NotFound,
      );
      // v1alpha, derived from v1 at load time.
      const conn = createNodeConnection({
        target: { kind: "unix", path: served.path },
        pkg: "snix",
      });
      const alpha = createClient(ServerReflectionV1Alpha, conn.transport);
      async function* one() {
        yield {
          messageRequest: {
            case: "fileByFilename" as const,
            value: "tvix/store/v1/rpc_pathinfo.proto",
          },
        };
      }
      for await (const res of alpha.serverReflectionInfo(one())) {
        assert.equal(res.messageResponse.case, "fileDescriptorResponse");
        const names = (
          res.messageResponse.value as { fileDescriptorProto: Uint8Array[] }
        ).fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
        assert.deepEqual(names.sort(), [
          "tvix/castore/v1/castore.proto",
          "tvix/store/v1/pathinfo.proto",
          "tvix/store/v1/rpc_pathinfo.proto",
        ]);
      }
      conn.close();
    } finally {
      client.close();
      await served.close();
    }
  });

  test("gRPC-Web and Connect over HTTP/1.1 on the same port as gRPC", async () => {
    const stores = memoryStores();
    const data = testBytes(2 * MiB + 1, 4);
    const digest = await putBlob(stores.blobs, data);
    const server = new GrpcServer({ stores });
    const [bound] = await server.listen([{ kind: "tcp", host: "127.0.0.1", port: 0 }]);
    const port = (bound!.address as { port: number }).port;
    const baseUrl = `http://127.0.0.1:${port}`;
    try {
      const snix = storeServices("snix");
      const connect = createClient(
        snix.blob,
        createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      );
      assert.equal(
        (await connect.stat({ digest, sendChunks: true })).chunks[0]!.size,
        BigInt(data.length),
      );
      const web = createClient(snix.blob, createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }));
      const parts: Uint8Array[] = [];
      for await (const m of web.read({ digest })) parts.push(m.data);
      assert.deepEqual(concatBytes(parts), data);
      // And plain gRPC over HTTP/2 on the same port.
      const grpc = createClient(snix.blob, createGrpcTransport({ baseUrl }));
      await grpc.stat({ digest });
    } finally {
      await server.close(500);
    }
  });

  test("CalculateNAR: same as local; the root needs an empty name; missing blobs NOT_FOUND", async () => {
    const stores = memoryStores();
    const file = testBytes(70_000, 8);
    const fd = await putBlob(stores.blobs, file);
    const leaf = Directory.fromEntries([
      { name: "f", node: fileNode(fd, file.length, true) },
      { name: "l", node: symlinkNode(utf8("f")) },
    ]);
    await stores.directories.put(leaf);
    const root = directoryNode(leaf.digest(), leaf.size);
    const served = await serve(stores);
    const conn = createNodeConnection({ target: { kind: "unix", path: served.path }, pkg: "snix" });
    const client = new GrpcPathInfoService(conn);
    try {
      const want = await new NarCalculator(stores.blobs, stores.directories).calculate(root);
      const got = await client.calculateNar(root);
      assert.equal(got.size, want.size);
      assert.deepEqual(got.sha256, want.sha256);
      const raw = createClient(storeServices("snix").pathInfo, conn.transport);
      const named = create(storeServices("snix").pathInfo.method.calculateNAR.input, {
        node: {
          case: "directory",
          value: { name: utf8("x"), digest: leaf.digest(), size: BigInt(leaf.size) },
        },
      });
      await assert.rejects(
        raw.calculateNAR(named),
        (e: unknown) => e instanceof ConnectError && e.code === Code.InvalidArgument,
      );
      await assert.rejects(
        client.calculateNar(fileNode(hashB3(utf8("missing")), 7)),
        isCode("Storage", /NotFound/),
      );
      // Snix answers UNIMPLEMENTED for a Get without by_what.
      await assert.rejects(
        raw.get({}),
        (e: unknown) => e instanceof ConnectError && e.code === Code.Unimplemented,
      );
    } finally {
      await client.close();
      await served.close();
    }
  });

  test("directory and path info clients over the Tvix names, and a rejected upload's reason", async () => {
    const served = await serve(memoryStores());
    const conn = createNodeConnection({ target: { kind: "unix", path: served.path }, pkg: "tvix" });
    const dirs = new GrpcDirectoryService(conn, { ownsConnection: false });
    try {
      const leaf = Directory.fromEntries([{ name: "x", node: fileNode(hashB3(utf8("x")), 1) }]);
      const orphan = Directory.fromEntries([
        { name: "sub", node: directoryNode(hashB3(utf8("gone")), 2) },
      ]);
      await assert.rejects(
        dirs.put(orphan),
        isCode("InvalidInput", /neither sent .* nor is it stored/),
      );
      assert.equal(toHex(await dirs.put(leaf)), toHex(leaf.digest()));
    } finally {
      await dirs.close();
      conn.close();
      await served.close();
    }
  });
});
