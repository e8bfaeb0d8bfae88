/**
 * The binary cache protocol against an in-process server on memory stores
 * (no Nix needed): the Nix 2.8 example cache uploaded the way `nix copy`
 * uploads it comes back byte-identical; bad uploads get 400 and leave
 * nothing behind (issue 7 acceptance 3); Range requests (acceptance 4);
 * auth, limits, compression, logs, the NAR index.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { NarIndex } from "../../src/server/http/nar-index.js";
import { ingestNar } from "../../src/store/import/nar-ingest.js";
import { parseNarInfo } from "../../src/store/narinfo.js";
import { nixbase32Encode } from "../../src/store/nixbase32.js";
import { pathInfoFromNarInfo } from "../../src/store/path-info.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";
import { fingerprint, parsePublicKey, parseSecretKey, verify } from "../../src/store/signature.js";
import { FIXTURES } from "../helpers/corpus.js";
import { AUTH, http, requireTool, startTestServer } from "../helpers/http.js";
import { b, dir, file, nar } from "../helpers/nar-tree.js";
import { tempDir } from "../helpers/tmp.js";

const CACHE = join(FIXTURES, "nix-example/cache-none");
const DEP = "rl2if1g1jkb532k3m8p6h87cv02v0vby";
const MIXED = "6za9fndkbrar8j768wliyrh7y31732g0";
const TOP = "0ffkdj10nnxvvrpc4f4nh7mnikwq87dh";
/** Dependencies first, as `nix copy` uploads. */
const ORDER = [DEP, MIXED, TOP];

const narinfoText = (hash: string): string => readFileSync(join(CACHE, `${hash}.narinfo`), "utf8");
const narUrlOf = (hash: string): string => /^URL: (.*)$/m.exec(narinfoText(hash))![1]!;
const narBytes = (hash: string): Buffer => readFileSync(join(CACHE, narUrlOf(hash)));

async function put(base: string, path: string, body: Uint8Array | string, status = 200) {
  const r = await http("PUT", `${base}/${path}`, { body, headers: AUTH, expectContinue: true });
  assert.equal(r.status, status, `PUT ${path}: ${r.body.toString()}`);
  return r;
}

/** Uploads the example cache as `nix copy --to` does (NAR, then narinfo, dependencies first). */
async function uploadExample(base: string): Promise<void> {
  await put(base, "nix-cache-info", "StoreDir: /nix/store\n");
  for (const h of ORDER) {
    assert.equal((await http("HEAD", `${base}/${narUrlOf(h)}`)).status, 404);
    await put(base, narUrlOf(h), narBytes(h));
    assert.equal((await http("HEAD", `${base}/${narUrlOf(h)}`)).status, 200);
    await put(base, `${h}.narinfo`, narinfoText(h));
  }
}

function sha256(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}

/** Sends raw bytes on one connection and returns everything the server sent until it closed. */
function rawExchange(base: string, request: string): Promise<Buffer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname);
    const parts: Buffer[] = [];
    s.on("data", (b: Buffer) => parts.push(b));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
    s.write(request);
  });
}

/** Splits a stream of HTTP/1.1 responses (bodies by Content-Length; none for HEAD). */
function splitResponses(
  data: Buffer,
  heads: boolean[],
): { status: number; headers: string; body: Buffer }[] {
  const out: { status: number; headers: string; body: Buffer }[] = [];
  let pos = 0;
  for (const head of heads) {
    const end = data.indexOf("\r\n\r\n", pos);
    assert.ok(end > 0, `response #${out.length + 1} is complete`);
    const headers = data.toString("latin1", pos, end);
    const len = head ? 0 : Number(/content-length: (\d+)/i.exec(headers)?.[1] ?? 0);
    out.push({
      status: Number(headers.slice(9, 12)),
      headers,
      body: data.subarray(end + 4, end + 4 + len),
    });
    pos = end + 4 + len;
  }
  assert.equal(pos, data.length, "nothing after the last response");
  return out;
}

describe("HTTP binary cache (in process)", () => {
  test("the Nix example cache uploaded like nix copy comes back byte-identical", async (t) => {
    const { url } = await startTestServer(t, { priority: 42 });
    const info = await http("GET", `${url}/nix-cache-info`);
    assert.equal(info.body.toString(), "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 42\n");
    assert.equal(info.headers["content-type"], "text/x-nix-cache-info");
    assert.equal((await http("GET", `${url}/${TOP}.narinfo`)).status, 404);
    await uploadExample(url);
    for (const h of ORDER) {
      const r = await http("GET", `${url}/${h}.narinfo`);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), narinfoText(h), `${h}.narinfo`);
      assert.equal(r.headers["content-type"], "text/x-nix-narinfo");
      assert.match(r.headers["cache-control"] ?? "", /immutable/);
      const head = await http("HEAD", `${url}/${h}.narinfo`);
      assert.equal(head.status, 200);
      assert.equal(head.headers["content-length"], String(r.body.length));
      assert.equal(head.body.length, 0);
      const n = await http("GET", `${url}/${narUrlOf(h)}`);
      assert.equal(n.status, 200);
      assert.ok(n.body.equals(narBytes(h)), `${h}: NAR`);
      assert.equal(n.headers["content-length"], String(narBytes(h).length));
      assert.equal(n.headers["content-type"], "application/x-nix-nar");
      const ls = await http("GET", `${url}/${h}.ls`);
      assert.equal(ls.body.toString(), readFileSync(join(CACHE, `${h}.ls`), "utf8"), `${h}.ls`);
    }
    // Uploading again changes nothing (the same narinfo with the same signature).
    await put(url, `${TOP}.narinfo`, narinfoText(TOP));
    assert.equal((await http("GET", `${url}/${TOP}.narinfo`)).body.toString(), narinfoText(TOP));
    const missing = await http("GET", `${url}/${"0".repeat(32)}.narinfo`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers["cache-control"] ?? "", /max-age=60/);
  });

  test("pipelined requests on one connection: fast path and node:http answer in order", async (t) => {
    const { url } = await startTestServer(t);
    await uploadExample(url);
    const host = "Host: cache\r\n";
    const reqs: [string, boolean][] = [
      [`GET /nix-cache-info HTTP/1.1\r\n${host}\r\n`, false],
      [`GET /${DEP}.narinfo HTTP/1.1\r\n${host}Accept: */*\r\n\r\n`, false],
      [`HEAD /${TOP}.narinfo HTTP/1.1\r\n${host}\r\n`, true],
      [`GET /${"1".repeat(32)}.narinfo HTTP/1.1\r\n${host}\r\n`, false],
      // node:http from here on (a NAR), and for the rest of the connection.
      [`GET /${narUrlOf(DEP)} HTTP/1.1\r\n${host}\r\n`, false],
      [`GET /${MIXED}.narinfo HTTP/1.1\r\n${host}Connection: close\r\n\r\n`, false],
    ];
    const data = await rawExchange(url, reqs.map(([r]) => r).join(""));
    const res = splitResponses(
      data,
      reqs.map(([, h]) => h),
    );
    assert.deepEqual(
      res.map((r) => r.status),
      [200, 200, 200, 404, 200, 200],
    );
    assert.match(res[0]!.body.toString(), /^StoreDir: \/nix\/store$/m);
    assert.equal(res[1]!.body.toString(), narinfoText(DEP));
    assert.match(res[2]!.headers, new RegExp(`Content-Length: ${narinfoText(TOP).length}`));
    assert.match(res[3]!.body.toString(), /no store path with hash 1{32}/);
    assert.ok(res[4]!.body.equals(narBytes(DEP)));
    assert.equal(res[5]!.body.toString(), narinfoText(MIXED));

    // The same answers from node:http (a request the fast path does not take: HTTP/1.0).
    const old = await rawExchange(url, `GET /${DEP}.narinfo HTTP/1.0\r\n${host}\r\n`);
    const [r] = splitResponses(old, [false]);
    assert.equal(r!.body.toString(), narinfoText(DEP));
    // A request head split over several packets.
    const split = await new Promise<Buffer>((resolve, reject) => {
      const u = new URL(url);
      const sock = connect(Number(u.port), u.hostname);
      const parts: Buffer[] = [];
      sock.on("data", (b: Buffer) => parts.push(b));
      sock.on("end", () => resolve(Buffer.concat(parts)));
      sock.on("error", reject);
      const whole = `GET /${TOP}.narinfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
      sock.write(whole.slice(0, 10));
      setTimeout(() => sock.write(whole.slice(10, 40)), 20);
      setTimeout(() => sock.write(whole.slice(40)), 40);
    });
    assert.equal(splitResponses(split, [false])[0]!.body.toString(), narinfoText(TOP));
  });

  test("narinfos are signed with the server's keys, on the way out and when stored", async (t) => {
    const sk = parseSecretKey(
      readFileSync(join(FIXTURES, "nix-example/keys/test-1.secret"), "utf8"),
    );
    const unsigned = join(FIXTURES, "nix-example/cache-unsigned-none");
    const { url, stores } = await startTestServer(t, { signingKeys: [sk] });
    for (const h of ORDER) {
      await put(url, narUrlOf(h), narBytes(h));
      await put(url, `${h}.narinfo`, readFileSync(join(unsigned, `${h}.narinfo`)));
      // Stored with our signature, served exactly as Nix signs it.
      const stored = await stores.pathInfos.get(parseNarInfo(narinfoText(h)).storePath.digest);
      assert.equal(stored?.signatures.length, 1);
      const served = (await http("GET", `${url}/${h}.narinfo`)).body.toString();
      assert.equal(served, narinfoText(h));
      const ni = parseNarInfo(served);
      const pk = parsePublicKey(
        readFileSync(join(FIXTURES, "nix-example/keys/test-1.public"), "utf8"),
      );
      assert.ok(
        verify(
          fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references),
          ni.signatures[0]!,
          [pk],
        ),
      );
    }
  });

  test("bad uploads get 400 with the reason, and nothing becomes visible", async (t) => {
    const { url, stores } = await startTestServer(t);
    const depNar = narBytes(DEP);
    const depInfo = narinfoText(DEP);

    // A narinfo for a NAR never sent.
    let r = await put(url, `${DEP}.narinfo`, depInfo, 400);
    assert.match(r.body.toString(), /never uploaded/);

    // A truncated NAR.
    r = await put(url, "nar/truncated.nar", depNar.subarray(0, depNar.length - 20), 400);
    assert.match(r.body.toString(), /NAR/);
    assert.equal((await http("HEAD", `${url}/nar/truncated.nar`)).status, 404);

    // A NAR with an invalid entry name.
    const badName = nar(dir([[b("a/b"), file("x")]]));
    r = await put(url, "nar/bad-name.nar", badName, 400);
    assert.match(r.body.toString(), /a\/b|'\/'/);
    const dotName = nar(dir([[b(".."), file("x")]]));
    await put(url, "nar/dot-name.nar", dotName, 400);

    // A NAR whose name claims another hash.
    r = await put(url, `nar/${nixbase32Encode(sha256(b("x")))}.nar`, depNar, 400);
    assert.match(r.body.toString(), /name says/);

    // Now the right NAR; then narinfos that lie about it.
    await put(url, narUrlOf(DEP), depNar);
    const wrongHash = depInfo.replace(
      /^NarHash: .*$/m,
      `NarHash: sha256:${nixbase32Encode(sha256(b("other")))}`,
    );
    r = await put(url, `${DEP}.narinfo`, wrongHash, 400);
    assert.match(r.body.toString(), /never uploaded/);
    const wrongSize = depInfo.replace(/^NarSize: .*$/m, "NarSize: 137");
    r = await put(url, `${DEP}.narinfo`, wrongSize, 400);
    assert.match(r.body.toString(), /NarSize 137/);
    r = await put(url, `${MIXED}.narinfo`, depInfo, 400);
    assert.match(r.body.toString(), /does not match the hash/);
    r = await put(url, `${DEP}.narinfo`, depInfo.replace("StorePath:", "StorePath :"), 400);
    assert.match(r.body.toString(), /narinfo line 1/);
    // A reference that is not in the cache.
    await put(url, narUrlOf(TOP), narBytes(TOP));
    r = await put(url, `${TOP}.narinfo`, narinfoText(TOP), 400);
    assert.match(
      r.body.toString(),
      /rl2if1g1jkb532k3m8p6h87cv02v0vby-harness-dep is not in this cache/,
    );
    // A CA that does not fit the path.
    await put(url, narUrlOf(MIXED), narBytes(MIXED));
    const badCa = narinfoText(MIXED).replace("-mixed", "-mixet");
    r = await put(url, `${MIXED}.narinfo`, badCa, 400);
    assert.match(r.body.toString(), /content address/);

    for (const h of [DEP, MIXED, TOP]) {
      assert.equal((await http("GET", `${url}/${h}.narinfo`)).status, 404, h);
    }
    assert.equal(stores.pathInfos.count, 0);

    // The good narinfo is accepted; a different one for the same path then conflicts.
    await put(url, `${DEP}.narinfo`, depInfo);
    r = await put(
      url,
      `${DEP}.narinfo`,
      narinfoText(MIXED).replace(/6za9fndkbrar8j768wliyrh7y31732g0-mixed/g, `${DEP}-harness-dep`),
      409,
    );
    assert.match(r.body.toString(), /immutable/);
  });

  test("uploads need credentials (401), are refused when disabled (403), checked before 100-continue", async (t) => {
    const { url } = await startTestServer(t);
    const body = narBytes(DEP);
    let r = await http("PUT", `${url}/${narUrlOf(DEP)}`, { body, expectContinue: true });
    assert.equal(r.status, 401);
    assert.equal(r.continued, false, "no 100 Continue before the credentials were checked");
    assert.match(r.headers["www-authenticate"] ?? "", /^Basic /);
    assert.match(r.body.toString(), /credentials/);
    r = await http("PUT", `${url}/${narUrlOf(DEP)}`, {
      body,
      headers: { Authorization: `Basic ${Buffer.from("alice:wrong").toString("base64")}` },
    });
    assert.equal(r.status, 401);
    assert.match(r.body.toString(), /wrong user name or password/);
    r = await http("PUT", `${url}/${narUrlOf(DEP)}`, { body, headers: AUTH, expectContinue: true });
    assert.equal(r.status, 200);
    assert.equal(r.continued, true);

    const ro = await startTestServer(t, { readOnly: true });
    r = await http("PUT", `${ro.url}/${narUrlOf(DEP)}`, {
      body,
      headers: AUTH,
      expectContinue: true,
    });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /uploads are disabled/);
    assert.equal((await http("POST", `${ro.url}/nix-cache-info`)).status, 405);
    assert.equal((await http("GET", `${ro.url}/nix-cache-info`)).status, 200);
  });

  test("limits: oversized uploads get 413 before the body is sent; huge headers 431", async (t) => {
    const { url } = await startTestServer(t, { limits: { maxNarInfoBytes: 100 } });
    const r = await http("PUT", `${url}/${DEP}.narinfo`, {
      body: narinfoText(DEP),
      headers: AUTH,
      expectContinue: true,
    });
    assert.equal(r.status, 413);
    assert.equal(r.continued, false);
    const big = await http("GET", `${url}/nix-cache-info`, {
      headers: { "X-Big": "x".repeat(20000) },
    });
    assert.equal(big.status, 431);
  });

  test("Range requests return exactly the bytes of the full NAR; beyond the end is 416", async (t) => {
    const { url } = await startTestServer(t);
    await uploadExample(url);
    const full = narBytes(MIXED);
    const n = full.length;
    const nurl = `${url}/${narUrlOf(MIXED)}`;
    const cases: [string, number, number][] = [
      ["bytes=0-0", 0, 1],
      ["bytes=1000-20999", 1000, 21000],
      [`bytes=${n >> 1}-`, n >> 1, n],
      ["bytes=-100", n - 100, n],
      [`bytes=0-${n + 100}`, 0, n],
      [`bytes=${n - 1}-${n - 1}`, n - 1, n],
    ];
    for (const [range, a, z] of cases) {
      const r = await http("GET", nurl, { headers: { Range: range } });
      assert.equal(r.status, 206, range);
      assert.equal(r.headers["content-range"], `bytes ${a}-${z - 1}/${n}`);
      assert.equal(r.headers["content-length"], String(z - a));
      assert.ok(r.body.equals(full.subarray(a, z)), range);
    }
    for (const range of [`bytes=${n}-`, `bytes=${n + 5}-${n + 10}`, "bytes=-0"]) {
      const r = await http("GET", nurl, { headers: { Range: range } });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers["content-range"], `bytes */${n}`);
    }
    // Ignored: multiple ranges, garbage, a stale If-Range.
    for (const headers of [
      { Range: "bytes=0-1,5-6" },
      { Range: "lines=1-2" },
      { Range: "bytes=5-1" },
      { Range: "bytes=0-1", "If-Range": '"other"' },
    ]) {
      const r = await http("GET", nurl, { headers });
      assert.equal(r.status, 200, JSON.stringify(headers));
      assert.ok(r.body.equals(full));
    }
    const etag = (await http("HEAD", nurl)).headers.etag!;
    const r = await http("GET", nurl, { headers: { Range: "bytes=5-9", "If-Range": etag } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(full.subarray(5, 10)));
    const head = await http("HEAD", nurl, { headers: { Range: "bytes=5-9" } });
    assert.equal(head.status, 206);
    assert.equal(head.body.length, 0);
  });

  test("compressed uploads (xz, zstd, bzip2, brotli-less gzip) and compressed downloads", async (t) => {
    if (!requireTool(t, "zstd", "zstd") || !requireTool(t, "xz", "xz-utils")) return;
    if (!requireTool(t, "bzip2", "bzip2")) return;
    const { url } = await startTestServer(t);
    const tool = (argv: string[], input: Uint8Array): Buffer => {
      const r = spawnSync(argv[0]!, argv.slice(1), { input, maxBuffer: 1 << 26 });
      assert.equal(r.status, 0);
      return r.stdout;
    };
    const uploads: [string, string, (x: Buffer) => Buffer][] = [
      [DEP, ".xz", (x) => tool(["xz", "-c"], x)],
      [MIXED, ".zst", (x) => tool(["zstd", "-c", "-q"], x)],
      [TOP, ".bz2", (x) => tool(["bzip2", "-c"], x)],
    ];
    for (const [h, ext, squeeze] of uploads) {
      const compressed = squeeze(narBytes(h));
      const name = `nar/${nixbase32Encode(sha256(compressed))}.nar${ext}`;
      await put(url, name, compressed);
      assert.equal((await http("HEAD", `${url}/${name}`)).status, 200, `HEAD ${name}`);
      await put(url, `${h}.narinfo`, narinfoText(h));
    }
    // gzip is named `.nar` by Nix.
    const gz = gzipSync(narBytes(DEP));
    await put(url, `nar/${nixbase32Encode(sha256(gz))}.nar`, gz);
    // Corrupt compressed data.
    const bad = await put(url, "nar/broken.nar.xz", Buffer.from("not xz at all"), 400);
    assert.match(bad.body.toString(), /xz/);

    const nurl = `${url}/${narUrlOf(MIXED)}`;
    const z = await http("GET", nurl, { headers: { "Accept-Encoding": "gzip, zstd" } });
    assert.equal(z.headers["content-encoding"], "zstd");
    assert.ok(tool(["zstd", "-d", "-c"], z.body).equals(narBytes(MIXED)));
    const plain = await http("GET", nurl, { headers: { "Accept-Encoding": "zstd;q=0" } });
    assert.equal(plain.headers["content-encoding"], undefined);
    assert.ok(plain.body.equals(narBytes(MIXED)));
    for (const [ext, unpack] of [
      [".xz", ["xz", "-d", "-c"]],
      [".zst", ["zstd", "-d", "-c"]],
      [".bz2", ["bzip2", "-d", "-c"]],
    ] as const) {
      const r = await http("GET", `${nurl}${ext}`);
      assert.equal(r.status, 200, ext);
      assert.ok(tool([...unpack], r.body).equals(narBytes(MIXED)), ext);
    }
  });

  test("build logs are stored as blobs and served back; .ls and nix-cache-info uploads are accepted", async (t) => {
    const { url } = await startTestServer(t);
    const drv = "yrxyy9j1bnnxa23994hblf1pgbwra6ki-harness-top.drv";
    assert.equal((await http("GET", `${url}/log/${drv}`)).status, 404);
    await put(url, `log/${drv}`, "building...\ndone\n");
    const r = await http("GET", `${url}/log/${drv}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "building...\ndone\n");
    assert.equal((await put(url, `${TOP}.ls`, readFileSync(join(CACHE, `${TOP}.ls`)))).status, 200);
    await put(url, "nix-cache-info", "StoreDir: /other/store\n", 400);
    await put(url, "something-else", "x", 404);
  });

  test("the NAR index persists uploads across restarts; NARs of paths added otherwise are found", async (t) => {
    const dirPath = tempDir(t);
    const stores = {
      blobs: new MemoryBlobService(),
      directories: new MemoryDirectoryService(),
      pathInfos: new MemoryPathInfoService(),
    };
    const index1 = NarIndex.open(dirPath);
    const first = await startTestServer(t, { stores, index: index1 });
    await put(first.url, narUrlOf(DEP), narBytes(DEP));
    await first.server.close();
    await index1.close();
    const index2 = NarIndex.open(dirPath);
    t.after(() => index2.close());
    const second = await startTestServer(t, { stores, index: index2 });
    assert.equal((await http("HEAD", `${second.url}/${narUrlOf(DEP)}`)).status, 200);
    await put(second.url, `${DEP}.narinfo`, narinfoText(DEP));

    // A path put into the store directly: its NAR URL works without its narinfo being fetched first.
    const { node } = await ingestNar(
      (async function* () {
        yield narBytes(MIXED);
      })(),
      stores,
    );
    await stores.pathInfos.put(pathInfoFromNarInfo(parseNarInfo(narinfoText(MIXED)), node));
    const r = await http("GET", `${second.url}/${narUrlOf(MIXED)}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(narBytes(MIXED)));
  });
});
