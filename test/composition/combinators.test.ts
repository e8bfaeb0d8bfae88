/**
 * Behaviour of the combinators beyond the conformance suites (issue 4,
 * acceptance 2): cache fills near from far (and a second read never touches
 * far), priority skips a failing store, race answers at about the fastest
 * store's latency and aborts the slow one, the negative cache expires and is
 * cleared by a put, retry repeats Unavailable only, lru answers from memory.
 *
 * Stores are counted and slowed with the test-only `latency` and `faulty`
 * types (test/helpers/test-types.ts). Timing assertions are one-sided with
 * wide margins: "faster than the slow store" (200 ms) for a 5 ms store.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CacheBlobService } from "../../src/castore/blob/combinators/cache.js";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import type { BlobReader, BlobService } from "../../src/castore/blob/service.js";
import { bytesEqual, concatBytes } from "../../src/castore/bytes.js";
import { prioritySelector } from "../../src/castore/combinators/select.js";
import { silentLogger } from "../../src/castore/combinators/support.js";
import { type B3Digest, digestKey, hashB3 } from "../../src/castore/digest.js";
import type { DirectoryService } from "../../src/castore/directory/service.js";
import { UnavailableError } from "../../src/errors.js";
import { CachePathInfoService } from "../../src/store/pathinfo/combinators/cache.js";
import { SelectPathInfoService } from "../../src/store/pathinfo/combinators/select.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";
import type { PathInfoService } from "../../src/store/pathinfo/service.js";
import { testBytes } from "../conformance/blob.js";
import { leaf, parent } from "../conformance/directory.js";
import { samplePathInfo } from "../conformance/pathinfo.js";
import { collect } from "../helpers/collect.js";
import { compose, settle } from "../helpers/composition.js";
import { strataError } from "../helpers/error-matchers.js";
import { statsOf, totalCalls } from "../helpers/test-types.js";

async function writeBlob(service: BlobService, data: Uint8Array): Promise<B3Digest> {
  const w = service.openWrite();
  for (let off = 0; off < data.length; off += 100_000)
    await w.write(data.subarray(off, off + 100_000));
  return w.close();
}

async function readAll(reader: BlobReader): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of reader.stream()) parts.push(c);
  await reader.close();
  return concatBytes(parts);
}

/** A cache whose far tier is counted (`latency` with no delay). */
function cacheSection(section: string): string {
  return `
[${section}.root]
type = "cache"
near = "near"
far = "far"
[${section}.near]
type = "memory"
[${section}.far]
type = "latency"
inner = "memory://"
delay_ms = 0
`;
}

describe("cache fills near from far", () => {
  test("blobs: streamed through into near; the second read never touches far", async (t) => {
    const { composition } = compose(cacheSection("blobservices"));
    t.after(() => composition.close());
    const root = await composition.service("blob");
    const near = await composition.service("blob", "near");
    const far = await composition.service("blob", "far");
    const data = testBytes(3 * 1024 * 1024 + 5, 1);
    const digest = await writeBlob(far, data);
    const farCalls = totalCalls(far);

    const reader = await root.openRead(digest);
    assert.ok(reader !== undefined);
    const it = reader.stream()[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    assert.equal(await near.has(digest), false, "nothing is in near before the stream ends");
    const parts = [first.value as Uint8Array];
    for (let n = await it.next(); n.done !== true; n = await it.next()) parts.push(n.value);
    await reader.close();
    assert.ok(bytesEqual(concatBytes(parts), data));
    assert.equal(await near.has(digest), true, "near was filled by the stream");
    const afterFill = totalCalls(far);
    assert.ok(afterFill > farCalls);

    const again = await root.openRead(digest);
    assert.ok(again !== undefined);
    assert.ok(bytesEqual(await readAll(again), data));
    assert.equal(await root.has(digest), true);
    assert.equal(totalCalls(far), afterFill, "the second read did not touch far");
  });

  test("blobs: a reader that stops early leaves nothing in near", async (t) => {
    const { composition } = compose(cacheSection("blobservices"));
    t.after(() => composition.close());
    const root = await composition.service("blob");
    const near = await composition.service("blob", "near");
    const far = await composition.service("blob", "far");
    const digest = await writeBlob(far, testBytes(3 * 1024 * 1024, 2));
    const reader = await root.openRead(digest);
    for await (const _ of reader!.stream()) break;
    await reader!.close();
    assert.equal(await near.has(digest), false);
    // A range read is served from far and fills nothing either.
    const r2 = await root.openRead(digest);
    assert.equal((await r2!.read(10, 10)).length, 10);
    await r2!.close();
    assert.equal(await near.has(digest), false);
  });

  test("blobs: far sending other bytes than the digest promises fails the stream", async () => {
    const near = new MemoryBlobService();
    const store = new MemoryBlobService();
    const real = await writeBlob(store, testBytes(1000, 3));
    const claimed = hashB3(new TextEncoder().encode("something else"));
    // A far store that answers every digest with the same (wrong) blob.
    const lying: BlobService = Object.assign(Object.create(store) as BlobService, {
      openRead: (_d: B3Digest) => store.openRead(real),
    });
    const cache = new CacheBlobService(
      { near: { name: "near", service: near }, far: { name: "liar", service: lying } },
      { instanceName: "root", log: silentLogger() },
    );
    const reader = await cache.openRead(claimed);
    assert.ok(reader !== undefined);
    await assert.rejects(
      readAll(reader),
      strataError("Integrity", /far tier 'liar' sent blob b3:/),
    );
    assert.equal(await near.has(claimed), false);
  });

  test("directories: the closure is fetched, validated and stored leaves first", async (t) => {
    const { composition } = compose(cacheSection("directoryservices"));
    t.after(() => composition.close());
    const root = await composition.service("directory");
    const near = await composition.service("directory", "near");
    const far: DirectoryService = await composition.service("directory", "far");
    // A diamond plus a directory that is nearer to the root than one of its parents.
    const shared = leaf("shared");
    const a = parent("a", [shared]);
    const b = parent("b", [a]);
    const top = parent("top", [shared, b, leaf("x")]);
    const putter = far.putMultiple();
    for (const d of [shared, a, b, leaf("x"), top]) await putter.put(d);
    await putter.close();
    const farCalls = totalCalls(far);

    const got = await root.get(top.digest());
    assert.equal(got?.size, top.size);
    for (const d of [shared, a, b, leaf("x"), top]) {
      assert.ok((await near.get(d.digest())) !== undefined, "the whole closure is in near");
    }
    const afterFill = totalCalls(far);
    assert.equal(afterFill, farCalls + 1, "one getRecursive from far");
    assert.equal((await collect(root.getRecursive(top.digest()))).length, 5);
    assert.ok((await root.get(a.digest())) !== undefined);
    assert.equal(totalCalls(far), afterFill, "later reads did not touch far");
  });

  test("directories: concurrent reads of a missing root share one fetch", async (t) => {
    const { composition } = compose(
      cacheSection("directoryservices").replace("delay_ms = 0", "delay_ms = 20"),
    );
    t.after(() => composition.close());
    const root = await composition.service("directory");
    const far = await composition.service("directory", "far");
    const d = parent("p", [leaf("c")]);
    await far.put(leaf("c"));
    await far.put(d);
    const before = totalCalls(far);
    const got = await Promise.all([1, 2, 3, 4].map(() => root.get(d.digest())));
    assert.ok(got.every((x) => x !== undefined));
    assert.equal(totalCalls(far), before + 1);
  });

  test("path infos: put into near on the way; the second get never touches far", async (t) => {
    const { composition } = compose(cacheSection("pathinfoservices"));
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    const near = await composition.service("pathinfo", "near");
    const far = await composition.service("pathinfo", "far");
    const info = samplePathInfo(1);
    await far.put(info);
    const farCalls = totalCalls(far);
    assert.equal((await root.get(info.storePath.digest))?.narSize, info.narSize);
    assert.ok((await near.get(info.storePath.digest)) !== undefined);
    const afterFill = totalCalls(far);
    assert.ok((await root.get(info.storePath.digest)) !== undefined);
    assert.equal(totalCalls(far), afterFill);
    assert.equal(afterFill, farCalls + 1);
  });

  test("write = through writes both tiers", async (t) => {
    const { composition } = compose(
      cacheSection("pathinfoservices").replace('far = "far"', 'far = "far"\nwrite = "through"'),
    );
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    const info = samplePathInfo(2);
    await root.put(info);
    for (const name of ["near", "far"]) {
      const s = await composition.service("pathinfo", name);
      assert.ok((await s.get(info.storePath.digest)) !== undefined, name);
    }
  });
});

describe("priority", () => {
  const config = `
[pathinfoservices.root]
type = "priority"
stores = ["broken", "good", "never"]

[pathinfoservices.broken]
type = "faulty"
inner = "memory://"
fail_fraction = 1

[pathinfoservices.good]
type = "latency"
inner = "memory://"
delay_ms = 0

[pathinfoservices.never]
type = "latency"
inner = "memory://"
delay_ms = 0
`;

  test("skips a failing store with a warning naming it, and answers from the next", async (t) => {
    const { composition, logs } = compose(config);
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    const good = await composition.service("pathinfo", "good");
    const never = await composition.service("pathinfo", "never");
    const info = samplePathInfo(3);
    await good.put(info);
    const got = await root.get(info.storePath.digest);
    assert.equal(got?.storePath.absolute, info.storePath.absolute);
    assert.equal(totalCalls(never), 0, "the store after the hit was not asked");
    const warnings = logs.filter((r) => r.level === "warn");
    assert.equal(warnings.length, 1);
    const w = warnings[0]!;
    assert.equal(w.module, "store.pathinfo.priority");
    assert.equal(w.fields.instance, "root");
    assert.equal(w.fields.store, "broken");
    assert.match(w.msg, /store 'broken' failed, trying the next/);
    assert.match(
      String((w.fields.error as Error).message),
      /path info priority 'root': store 'broken' failed/,
    );
  });

  test("a miss with a failed store is a miss; all stores failing is Unavailable", async (t) => {
    const { composition } = compose(config);
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    assert.equal(await root.get(samplePathInfo(4).storePath.digest), undefined);
    const { composition: c2 } = compose(
      config.replace('stores = ["broken", "good", "never"]', 'stores = ["broken", "broken"]'),
    );
    t.after(() => c2.close());
    const allBroken = await c2.service("pathinfo");
    await assert.rejects(allBroken.get(samplePathInfo(4).storePath.digest), (err: unknown) => {
      strataError("Unavailable", /^path info priority 'root': get .*: all 2 stores failed$/)(err);
      const cause = (err as Error).cause;
      assert.ok(cause instanceof AggregateError && cause.errors.length === 2);
      return true;
    });
    // Writes go to the first store: here it fails, and says which.
    await assert.rejects(
      allBroken.put(samplePathInfo(5)),
      strataError("Unavailable", /first store 'broken' failed \(put\)/),
    );
  });

  test("a store that times out (common option timeout_ms) is skipped", async (t) => {
    const { composition, logs } = compose(`
[pathinfoservices.root]
type = "priority"
stores = ["limited", "good"]
# The timeout is set on an lru in front of the slow store, so that the test
# can still look at the latency wrapper's counters.
[pathinfoservices.limited]
type = "lru"
inner = "slow"
capacity = 10
timeout_ms = 20
[pathinfoservices.slow]
type = "latency"
inner = "memory://"
delay_ms = 5000
[pathinfoservices.good]
type = "memory"
`);
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    const good = await composition.service("pathinfo", "good");
    const info = samplePathInfo(6);
    await good.put(info);
    const start = performance.now();
    assert.ok((await root.get(info.storePath.digest)) !== undefined);
    assert.ok(performance.now() - start < 4000, "did not wait for the slow store");
    const w = logs.find((r) => r.level === "warn");
    assert.ok(w !== undefined);
    assert.match(
      String((w.fields.error as Error).cause),
      /path info service 'limited': get timed out after 20 ms/,
    );
    await settle();
    assert.equal(statsOf(await composition.service("pathinfo", "slow")).aborted, 1);
  });
});

describe("race", () => {
  const config = (hedge = "") => `
[pathinfoservices.root]
type = "race"
stores = ["slow", "fast"]
${hedge}
[pathinfoservices.slow]
type = "latency"
inner = "slow-data"
delay_ms = 200
[pathinfoservices.fast]
type = "latency"
inner = "fast-data"
delay_ms = 5
[pathinfoservices.slow-data]
type = "memory"
[pathinfoservices.fast-data]
type = "memory"
`;

  async function setup(t: { after: (fn: () => Promise<void>) => void }, hedge?: string) {
    const { composition, logs } = compose(config(hedge));
    t.after(() => composition.close());
    const info = samplePathInfo(7);
    for (const name of ["slow-data", "fast-data"]) {
      await (await composition.service("pathinfo", name)).put(info);
    }
    return {
      root: await composition.service("pathinfo"),
      slow: await composition.service("pathinfo", "slow"),
      fast: await composition.service("pathinfo", "fast"),
      info,
      logs,
    };
  }

  test("answers at about the fastest store's latency and aborts the slow one", async (t) => {
    const { root, slow, fast, info } = await setup(t);
    const start = performance.now();
    const got = await root.get(info.storePath.digest);
    const elapsed = performance.now() - start;
    assert.equal(got?.storePath.absolute, info.storePath.absolute);
    assert.ok(elapsed < 200, `answered after ${elapsed.toFixed(1)} ms, the slow store takes 200`);
    await settle();
    assert.equal(statsOf(slow).calls.get, 1, "both stores were asked");
    assert.equal(statsOf(fast).calls.get, 1);
    assert.equal(statsOf(slow).aborted, 1, "the slow store's call was aborted");
    assert.equal(statsOf(fast).aborted, 0);
  });

  test("hedge_after_ms: the next store is asked only after the delay", async (t) => {
    const { root, slow, fast, info } = await setup(t, "hedge_after_ms = 40");
    const start = performance.now();
    assert.ok((await root.get(info.storePath.digest)) !== undefined);
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 35, `the second store was asked after the hedge delay (${elapsed} ms)`);
    assert.ok(elapsed < 200);
    await settle();
    assert.equal(statsOf(fast).calls.get, 1);
    assert.equal(statsOf(slow).aborted, 1);
  });

  test("hedge_after_ms: a fast first store means the others are never asked", async (t) => {
    const { composition } = compose(
      config("hedge_after_ms = 150").replace(
        'stores = ["slow", "fast"]',
        'stores = ["fast", "slow"]',
      ),
    );
    t.after(() => composition.close());
    const info = samplePathInfo(8);
    await (await composition.service("pathinfo", "fast-data")).put(info);
    const root = await composition.service("pathinfo");
    assert.ok((await root.get(info.storePath.digest)) !== undefined);
    await settle();
    assert.equal(totalCalls(await composition.service("pathinfo", "slow")), 0);
  });

  test("blob readers that lose the race are closed", async (t) => {
    const { composition } = compose(`
[blobservices.root]
type = "race"
stores = ["a", "b"]
[blobservices.a]
type = "memory"
[blobservices.b]
type = "memory"
`);
    t.after(() => composition.close());
    const data = testBytes(5000, 9);
    let digest: B3Digest | undefined;
    for (const name of ["a", "b"])
      digest = await writeBlob(await composition.service("blob", name), data);
    const root = await composition.service("blob");
    const reader = await root.openRead(digest!);
    assert.ok(reader !== undefined);
    assert.ok(bytesEqual(await readAll(reader), data));
  });
});

describe("negative cache (negative_ttl_ms)", () => {
  test("a remembered miss expires after the TTL", async () => {
    let now = 1_000_000;
    const near = new MemoryPathInfoService();
    const far = new MemoryPathInfoService();
    const cache = new CachePathInfoService(
      {
        near: { name: "near", service: near },
        far: { name: "far", service: far },
        negativeTtlMs: 1000,
      },
      { instanceName: "root", log: silentLogger(), now: () => now },
    );
    const info = samplePathInfo(10);
    assert.equal(await cache.get(info.storePath.digest), undefined);
    await far.put(info); // behind the cache's back
    now += 999;
    assert.equal(await cache.get(info.storePath.digest), undefined, "the miss is remembered");
    now += 2;
    assert.ok(
      (await cache.get(info.storePath.digest)) !== undefined,
      "and forgotten after the TTL",
    );
  });

  test("only clean misses are remembered (not those with a failing store)", async () => {
    let failing = true;
    const real = new MemoryPathInfoService();
    const flaky = Object.assign(Object.create(real) as PathInfoService, {
      get: (d: Uint8Array) =>
        failing ? Promise.reject(new UnavailableError("down")) : real.get(d),
    });
    const other = new MemoryPathInfoService();
    const priority = new SelectPathInfoService(
      {
        stores: [
          { name: "flaky", service: flaky },
          { name: "other", service: other },
        ],
        selector: prioritySelector,
        negativeTtlMs: 60_000,
      },
      { instanceName: "root", log: silentLogger() },
    );
    const info = samplePathInfo(11);
    assert.equal(await priority.get(info.storePath.digest), undefined);
    await real.put(info);
    failing = false;
    assert.ok((await priority.get(info.storePath.digest)) !== undefined);
  });

  for (const [section, kind] of [
    ["pathinfoservices", "pathinfo"],
    ["blobservices", "blob"],
    ["directoryservices", "directory"],
  ] as const) {
    test(`${kind}: a miss is forgotten as soon as the item is put through the composition`, async (t) => {
      const { composition } = compose(`
[${section}.root]
type = "priority"
stores = ["a", "b"]
negative_ttl_ms = 3600000
[${section}.a]
type = "memory"
[${section}.b]
type = "latency"
inner = "memory://"
delay_ms = 0
`);
      t.after(() => composition.close());
      const b = await composition.service(kind, "b");
      if (kind === "pathinfo") {
        const root = await composition.service("pathinfo");
        const info = samplePathInfo(12);
        assert.equal(await root.get(info.storePath.digest), undefined);
        const asked = totalCalls(b);
        assert.equal(await root.get(info.storePath.digest), undefined);
        assert.equal(totalCalls(b), asked, "the remembered miss asks nobody");
        await root.put(info);
        assert.ok((await root.get(info.storePath.digest)) !== undefined);
      } else if (kind === "blob") {
        const root = await composition.service("blob");
        const data = testBytes(100, 13);
        const digest = hashB3(data);
        assert.equal(await root.has(digest), false);
        const asked = totalCalls(b);
        assert.equal(await root.openRead(digest), undefined);
        assert.equal(totalCalls(b), asked);
        assert.equal(digestKey(await writeBlob(root, data)), digestKey(digest));
        assert.equal(await root.has(digest), true);
      } else {
        const root = await composition.service("directory");
        const d = leaf("negative");
        assert.equal(await root.get(d.digest()), undefined);
        const asked = totalCalls(b);
        assert.deepEqual(await collect(root.getRecursive(d.digest())), []);
        assert.equal(totalCalls(b), asked);
        const putter = root.putMultiple();
        await putter.put(d);
        await putter.close();
        assert.ok((await root.get(d.digest())) !== undefined);
      }
    });
  }
});

describe("retry", () => {
  const config = (attempts: number, fraction: number) => `
[pathinfoservices.root]
type = "retry"
inner = "flaky"
attempts = ${attempts}
backoff_ms = 1
[pathinfoservices.flaky]
type = "faulty"
inner = "memory://"
fail_fraction = ${fraction}
`;

  test("repeats Unavailable failures until a call succeeds", async (t) => {
    const { composition } = compose(config(2, 0.5));
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    for (let i = 0; i < 10; i++) await root.put(samplePathInfo(20 + i));
    for (let i = 0; i < 10; i++)
      assert.ok((await root.get(samplePathInfo(20 + i).storePath.digest)) !== undefined);
    assert.equal((await collect(root.list())).length, 10);
    assert.ok(statsOf(await composition.service("pathinfo", "flaky")).failed >= 10);
  });

  test("gives up after `attempts`, saying so", async (t) => {
    const { composition } = compose(config(3, 1));
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    await assert.rejects(
      root.get(samplePathInfo(1).storePath.digest),
      strataError(
        "Unavailable",
        /^path info retry 'root': get .* on 'flaky': giving up after 3 attempts$/,
      ),
    );
    assert.equal(statsOf(await composition.service("pathinfo", "flaky")).calls.get, 3);
  });

  test("other errors are not retried", async (t) => {
    const { composition } = compose(config(5, 0));
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    await assert.rejects(root.get(new Uint8Array(19)), strataError("InvalidInput"));
    assert.equal(statsOf(await composition.service("pathinfo", "flaky")).calls.get, 1);
  });
});

describe("lru", () => {
  test("a second get is answered from memory", async (t) => {
    const { composition } = compose(`
[pathinfoservices.root]
type = "lru"
inner = "counted"
capacity = 2
[pathinfoservices.counted]
type = "latency"
inner = "memory://"
delay_ms = 0
`);
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    const counted = await composition.service("pathinfo", "counted");
    const infos = [samplePathInfo(30), samplePathInfo(31), samplePathInfo(32)];
    for (const info of infos) await counted.put(info);
    assert.ok((await root.get(infos[0]!.storePath.digest)) !== undefined);
    const calls = statsOf(counted).calls.get ?? 0;
    const again = await root.get(infos[0]!.storePath.digest);
    assert.ok(again !== undefined);
    again.references.length = 0; // callers cannot change what is held
    assert.equal((await root.get(infos[0]!.storePath.digest))?.references.length, 2);
    assert.equal(statsOf(counted).calls.get, calls);
    // Capacity 2: the least recently used entry is evicted.
    await root.get(infos[1]!.storePath.digest);
    await root.get(infos[2]!.storePath.digest);
    await root.get(infos[0]!.storePath.digest);
    assert.equal(statsOf(counted).calls.get, calls + 3);
  });
});
