/**
 * Cross-implementation test (issue 6, acceptance 2): a client generated
 * from our .proto files by another gRPC implementation (Python grpcio +
 * grpc_tools.protoc, at test time) talks to a spawned `strata daemon` under
 * both package names. The Snix protos are derived from ours by renaming the
 * packages in the .proto text (what Snix did upstream), independently of
 * how the daemon derives its descriptors. Every digest the server answers is
 * checked against what strata computes locally.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { toHex, utf8 } from "../../src/castore/bytes.js";
import { hashB3 } from "../../src/castore/digest.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { Directory } from "../../src/castore/directory.js";
import { directoryNode, fileNode, symlinkNode } from "../../src/castore/node.js";
import { NarCalculator } from "../../src/store/nar/calculate.js";
import { StorePath } from "../../src/store/store-path.js";
import { testBytes } from "../conformance/blob.js";
import { MEMORY_STORES, type RunningDaemon, startDaemon } from "../helpers/daemon.js";
import { interopAvailable, PYTHON, requireInterop } from "../helpers/interop.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const CLIENT = join(REPO, "test/fixtures/grpc_interop_client.py");

/** Our protos for `pkg`, renamed like Snix renamed Tvix's, then compiled for Python. */
function generateStubs(root: string): string {
  const src = join(root, "proto-src");
  const out = join(root, "py");
  mkdirSync(out, { recursive: true });
  cpSync(join(REPO, "proto/tvix"), join(src, "tvix"), { recursive: true });
  for (const dir of ["castore/v1", "store/v1"]) {
    mkdirSync(join(src, "snix", dir), { recursive: true });
    for (const f of readdirSync(join(src, "tvix", dir))) {
      const text = readFileSync(join(src, "tvix", dir, f), "utf8");
      writeFileSync(
        join(src, "snix", dir, f),
        text.replace(/\btvix\./g, "snix.").replace(/"tvix\//g, '"snix/'),
      );
    }
  }
  // The health proto's Python module would collide with the grpc package.
  mkdirSync(join(src, "strata_health"), { recursive: true });
  cpSync(join(REPO, "proto/grpc/health/v1/health.proto"), join(src, "strata_health/health.proto"));
  const files = ["tvix", "snix"].flatMap((pkg) =>
    [
      "castore/v1/castore",
      "castore/v1/rpc_blobstore",
      "castore/v1/rpc_directory",
      "store/v1/pathinfo",
      "store/v1/rpc_pathinfo",
    ].map((f) => `${pkg}/${f}.proto`),
  );
  execFileSync(
    PYTHON,
    [
      "-m",
      "grpc_tools.protoc",
      `-I${src}`,
      `--python_out=${out}`,
      `--grpc_python_out=${out}`,
      ...files,
      "strata_health/health.proto",
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  return out;
}

interface ClientReport {
  blob: string;
  small: string;
  stat: [string, number][];
  readBack: boolean;
  readLargestMessage: number;
  missing: string;
  leaf: string;
  root: string;
  recursive: string[];
  badPut: string;
  badPutDetails: string;
  unknownRecursive: number;
  nar: [number, string];
  putEcho: boolean;
  getSame: boolean;
  listed: number;
  missingPathInfo: string;
  health: number;
  healthService: number;
}

describe("cross-implementation: Python grpcio client against strata daemon", () => {
  let daemon: RunningDaemon | undefined;
  let dir: string;
  let stubs: string;
  const data = testBytes(5 * 1024 * 1024 + 123, 77);
  const small = utf8("hello from python grpcio\n");

  before(async () => {
    if (!interopAvailable()) return;
    dir = mkdtempSync(join(tmpdir(), "strata-interop-"));
    stubs = generateStubs(dir);
    writeFileSync(join(dir, "data"), data);
    daemon = await startDaemon({ args: [...MEMORY_STORES, "-l", `unix://${join(dir, "d.sock")}`] });
  });
  after(async () => {
    if (daemon !== undefined) assert.equal(await daemon.stop(), 0);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** What strata computes for the same tree, on its own. */
  async function expected() {
    const leaf = Directory.fromEntries([
      { name: "hello.txt", node: fileNode(hashB3(small), small.length) },
      { name: "run.sh", node: fileNode(hashB3(data), data.length, true) },
      { name: "link", node: symlinkNode(utf8("hello.txt")) },
    ]);
    const root = Directory.fromEntries([
      { name: "sub", node: directoryNode(leaf.digest(), leaf.size) },
      { name: "top", node: fileNode(hashB3(small), small.length) },
    ]);
    const blobs = new MemoryBlobService();
    for (const b of [data, small]) {
      const w = blobs.openWrite();
      await w.write(b);
      await w.close();
    }
    const dirs = new MemoryDirectoryService();
    await dirs.put(leaf);
    await dirs.put(root);
    const nar = await new NarCalculator(blobs, dirs).calculate(
      directoryNode(root.digest(), root.size),
    );
    await Promise.all([blobs.close(), dirs.close()]);
    return { leaf, root, nar };
  }

  for (const pkg of ["tvix", "snix"] as const) {
    test(`${pkg}.castore.v1 / ${pkg}.store.v1: blobs, directories, path infos, NAR, health`, async (t) => {
      if (!requireInterop(t)) return;
      const storePath = StorePath.fromParts(
        new Uint8Array(20).fill(pkg === "tvix" ? 1 : 2),
        `interop-${pkg}`,
      );
      const out = execFileSync(
        PYTHON,
        [
          CLIENT,
          `unix://${join(dir, "d.sock")}`,
          pkg,
          join(dir, "data"),
          storePath.basename,
          toHex(storePath.digest),
        ],
        { env: { ...process.env, PYTHONPATH: stubs }, encoding: "utf8" },
      );
      const got = JSON.parse(out) as ClientReport;
      const want = await expected();
      assert.equal(got.blob, toHex(hashB3(data)), "blob digest");
      assert.equal(got.small, toHex(hashB3(small)), "small blob digest");
      // A blob stored whole is listed as its own single chunk (with its size).
      assert.deepEqual(got.stat, [[toHex(hashB3(data)), data.length]]);
      assert.equal(got.readBack, true, "read back what was put");
      assert.ok(got.readLargestMessage <= 1024 * 1024, "Read sends messages of at most 1 MiB");
      assert.equal(got.missing, "NOT_FOUND");
      assert.equal(got.leaf, toHex(want.leaf.digest()), "leaf directory digest");
      assert.equal(got.root, toHex(want.root.digest()), "root directory digest");
      assert.deepEqual(
        got.recursive.map((hex) => toHex(Directory.decode(Buffer.from(hex, "hex")).digest())),
        [toHex(want.root.digest()), toHex(want.leaf.digest())],
        "recursive Get: root first",
      );
      assert.equal(got.badPut, "INVALID_ARGUMENT");
      assert.match(got.badPutDetails, /neither sent|not stored/);
      assert.equal(got.unknownRecursive, 0, "recursive Get of an unknown root: empty stream");
      assert.deepEqual(got.nar, [want.nar.size, toHex(want.nar.sha256)], "CalculateNAR");
      assert.equal(got.putEcho, true, "Put answers the path info stored");
      assert.equal(got.getSame, true, "Get answers the same path info");
      assert.equal(got.listed, 1, "List has it");
      assert.equal(got.missingPathInfo, "NOT_FOUND");
      assert.equal(got.health, 1, "health: SERVING");
      assert.equal(got.healthService, 1, "health of the service: SERVING");
    });
  }
});
