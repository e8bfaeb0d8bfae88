/**
 * The daemon under abuse (issue 6, acceptance 4), each against a spawned
 * `strata daemon`:
 * - a client that disconnects in the middle of a `Put` leaves no blob (cut
 *   connection, killed client process);
 * - one message of 100 MiB is refused (RESOURCE_EXHAUSTED) from its header,
 *   and the daemon's memory does not grow anywhere near that;
 * - 64 clients, each on its own connection, stream 16 MiB blobs at once;
 *   all succeed and read back verified.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { type ClientHttp2Session, connect as h2connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Blake3Hasher } from "@napi-rs/blake-hash";
import type { BlobService } from "../../src/castore/blob/service.js";
import { type B3Digest, b3Digest } from "../../src/castore/digest.js";
import { blobChunkPrefix } from "../../src/castore/grpc/blob-frames.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import { MEMORY_STORES, startDaemon } from "../helpers/daemon.js";
import { tempDir } from "../helpers/tmp.js";

const MiB = 1024 * 1024;

function b3(parts: readonly Uint8Array[]): B3Digest {
  const h = new Blake3Hasher();
  for (const p of parts) h.update(Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return b3Digest(new Uint8Array(h.digestBuffer()));
}

function session(path: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect("http://localhost", { createConnection: () => netConnect(path) });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

const PUT = "/snix.castore.v1.BlobService/Put";
const GRPC_HEADERS = { ":method": "POST", "content-type": "application/grpc", te: "trailers" };

async function blobClient(url: string): Promise<BlobService> {
  return defaultRegistry().build("blob", url);
}

/** Blob files in an objectstore+file directory (none may appear from an abandoned upload). */
function blobFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else out.push(join(dir, e.name));
    }
  };
  walk(root);
  return out;
}

describe("gRPC daemon robustness", () => {
  test("a client that disconnects mid-Put leaves no blob", async (t) => {
    const dir = tempDir(t);
    const sock = join(dir, "d.sock");
    const blobs = join(dir, "blobs");
    const daemon = await startDaemon({
      args: [
        "--blob-service-addr",
        `objectstore+file://${blobs}`,
        "--directory-service-addr",
        "memory://",
        "--path-info-service-addr",
        "memory://",
        "-l",
        `unix://${sock}`,
      ],
    });
    const client = await blobClient(`grpc+unix://${sock}`);
    try {
      const data = randomBytes(3 * MiB);
      const before = blobFiles(blobs).length;
      // 1. The connection is cut after two complete messages (no END_STREAM,
      //    no RST_STREAM): what arrived must not be published.
      const s = await session(sock);
      const stream = s.request({ ...GRPC_HEADERS, ":path": PUT });
      stream.on("error", () => {});
      for (const part of [data.subarray(0, MiB), data.subarray(MiB, 2 * MiB)]) {
        stream.write(blobChunkPrefix(part.length));
        await new Promise<void>((resolve) => stream.write(part, () => resolve()));
      }
      await sleep(50);
      s.destroy();
      // 2. A client process killed mid-upload.
      const child = spawn(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { defaultRegistry } from ${JSON.stringify(new URL("../../src/composition/default-registry.js", import.meta.url).href)};
           const b = await defaultRegistry().build("blob", ${JSON.stringify(`grpc+unix://${sock}`)});
           const w = b.openWrite();
           const data = new Uint8Array(1 << 20).fill(7);
           for (let i = 0; i < 3; i++) await w.write(data);
           console.log("sent");
           await new Promise(() => {});`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
      await sleep(300);
      for (const [what, digest] of [
        ["the two messages that arrived", b3([data.subarray(0, 2 * MiB)])],
        ["the whole blob", b3([data])],
        ["the killed client's 3 MiB", b3([new Uint8Array(3 * MiB).fill(7)])],
      ] as const) {
        assert.equal(await client.has(digest), false, what);
      }
      assert.equal(blobFiles(blobs).length, before, "no blob file was published");
      // The daemon still works.
      const w = client.openWrite();
      await w.write(data);
      assert.deepEqual(await w.close(), b3([data]));
    } finally {
      await client.close();
      assert.equal(await daemon.stop(), 0, daemon.stderr());
    }
  });

  test("a 100 MiB message is refused from its header; memory stays flat", async (t) => {
    const dir = tempDir(t);
    const sock = join(dir, "d.sock");
    const daemon = await startDaemon({ args: [...MEMORY_STORES, "-l", `unix://${sock}`] });
    try {
      // Warm up the daemon (JIT, buffers) with a normal upload first.
      const client = await blobClient(`grpc+unix://${sock}`);
      const w = client.openWrite();
      await w.write(randomBytes(8 * MiB));
      await w.close();
      await client.close();
      const before = daemon.memory();
      for (const path of [PUT, "/snix.castore.v1.DirectoryService/Put"]) {
        const s = await session(sock);
        const stream = s.request({ ...GRPC_HEADERS, ":path": path });
        const status = new Promise<string | undefined>((resolve) => {
          stream.on("response", (h) => {
            if (h["grpc-status"] !== undefined) resolve(String(h["grpc-status"]));
          });
          stream.on("trailers", (h) => resolve(String(h["grpc-status"])));
          stream.on("close", () => resolve(undefined));
          stream.on("error", () => {});
        });
        stream.on("data", () => {});
        // One message announcing 100 MiB, then as much of it as the server takes.
        const header = new Uint8Array(5);
        new DataView(header.buffer).setUint32(1, 100 * MiB);
        stream.write(header);
        const chunk = new Uint8Array(MiB).fill(1);
        let sent = 0;
        let done = false;
        void status.then(() => {
          done = true;
        });
        while (!done && sent < 100 * MiB && !stream.destroyed) {
          const ok = stream.write(chunk);
          sent += chunk.length;
          if (!ok) {
            const drained = new Promise((r) => stream.once("drain", r));
            await Promise.race([drained, status]);
          }
        }
        assert.equal(await status, "8", `${path}: RESOURCE_EXHAUSTED`);
        assert.ok(sent < 64 * MiB, `${path}: refused early (${sent / MiB} MiB sent)`);
        s.destroy();
      }
      const after = daemon.memory();
      const growth = after.peak - before.peak;
      assert.ok(growth < 48 * MiB, `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.stderr());
    }
  });

  test("64 clients stream 16 MiB blobs at once; all succeed and match", async (t) => {
    const dir = tempDir(t);
    const sock = join(dir, "d.sock");
    const daemon = await startDaemon({ args: [...MEMORY_STORES, "-l", `unix://${sock}`] });
    const base = randomBytes(MiB);
    const clients = await Promise.all(
      Array.from({ length: 64 }, () => blobClient(`grpc+unix://${sock}`)),
    );
    try {
      const results = await Promise.all(
        clients.map(async (client, i) => {
          // 16 MiB unique to this client: the base MiB with (client, chunk) stamped in.
          const scratch = new Uint8Array(base);
          const h = new Blake3Hasher();
          const w = client.openWrite();
          for (let j = 0; j < 16; j++) {
            new DataView(scratch.buffer).setUint32(0, i);
            new DataView(scratch.buffer).setUint32(4, j);
            h.update(Buffer.from(scratch));
            await w.write(scratch);
          }
          const digest = await w.close();
          assert.deepEqual(digest, new Uint8Array(h.digestBuffer()), `client ${i}: digest`);
          // Read back; the client verifies the digest as it streams.
          const r = await client.openRead(digest);
          assert.ok(r !== undefined);
          let n = 0;
          for await (const c of r.stream()) n += c.length;
          await r.close();
          return n;
        }),
      );
      assert.deepEqual(results, Array(64).fill(16 * MiB));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      assert.equal(await daemon.stop(), 0, daemon.stderr());
    }
  });
});
