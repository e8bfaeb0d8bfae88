/**
 * Building a composition (issue 4): lazily, one instance per (kind, name)
 * also under concurrent requests, handles whose close does nothing, every
 * instance closed exactly once by the composition, cycles through types
 * that do not declare their references, instance names in logs and errors,
 * common options as decorators, and `?cache=` / URL references building the
 * same graphs as config tables.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import { CacheBlobService } from "../../src/castore/blob/combinators/cache.js";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import type { BlobService } from "../../src/castore/blob/service.js";
import { sleep } from "../../src/castore/combinators/support.js";
import { hashB3 } from "../../src/castore/digest.js";
import { defineServiceType, type Registry } from "../../src/composition/registry.js";
import { ConfigError, StorageError } from "../../src/errors.js";
import { samplePathInfo } from "../conformance/pathinfo.js";
import { compose } from "../helpers/composition.js";
import { statsOf, testRegistry } from "../helpers/test-types.js";
import { tempDir } from "../helpers/tmp.js";

/** Counters of the `probe` test type: builds and closes per instance name. */
interface Probes {
  builds: Map<string, number>;
  closes: Map<string, number>;
}

/**
 * A registry with `probe` (a memory blob store that counts its builds and
 * closes, and takes 10 ms to build, widening the window for races) and
 * `undeclared` (a blob wrapper whose `inner` reference is not declared
 * through `references`, so only building finds it).
 */
function probeRegistry(): { registry: Registry; probes: Probes } {
  const probes: Probes = { builds: new Map(), closes: new Map() };
  const bump = (m: Map<string, number>, k: string): void => {
    m.set(k, (m.get(k) ?? 0) + 1);
  };
  const registry = testRegistry()
    .register(
      defineServiceType({
        kind: "blob",
        tag: "probe",
        description: "test",
        schema: z.strictObject({ type: z.literal("probe") }),
        fromUrl: () => ({ type: "probe" as const }),
        async build(_config, ctx) {
          bump(probes.builds, ctx.instanceName);
          await sleep(10);
          const service = new MemoryBlobService();
          const close = service.close.bind(service);
          return Object.assign(service, {
            close: async () => {
              bump(probes.closes, ctx.instanceName);
              await close();
            },
          });
        },
      }),
    )
    .register(
      defineServiceType({
        kind: "blob",
        tag: "undeclared",
        description: "test",
        schema: z.strictObject({ type: z.literal("undeclared"), inner: z.string() }),
        fromUrl: () => {
          throw new ConfigError("no URL form");
        },
        async build(config, ctx) {
          await sleep(5);
          return ctx.resolve("blob", config.inner, "inner");
        },
      }),
    );
  return { registry, probes };
}

const SHARED = `
[blobservices.root]
type = "priority"
stores = ["shared", "tiered"]

[blobservices.tiered]
type = "cache"
near = "probe://"
far = "shared"

[blobservices.shared]
type = "probe"

[blobservices.spare]
type = "probe"
`;

describe("Composition", () => {
  test("one instance per name, also under concurrent requests; lazy; closed once", async () => {
    const { registry, probes } = probeRegistry();
    const { composition } = compose(SHARED, registry);
    const [root, shared1, shared2] = await Promise.all([
      composition.service("blob"),
      composition.service("blob", "shared"),
      composition.service("blob", "shared"),
      composition.service("blob", "tiered"),
      composition.service("blob"),
    ]);
    assert.equal(probes.builds.get("shared"), 1, "built once");
    assert.equal(probes.builds.get("probe://"), 1, "the ad-hoc URL of tiered.near");
    assert.equal(probes.builds.get("spare"), undefined, "nothing asked for spare: not built");
    // Handles of one instance share its state.
    const w = shared1!.openWrite();
    await w.write(new Uint8Array([1, 2, 3]));
    const digest = await w.close();
    assert.equal(await shared2!.has(digest), true);
    assert.equal(await root!.has(digest), true);
    // A handle's close does nothing: the composition owns the instance.
    await shared1!.close();
    await root!.close();
    assert.equal(await shared2!.has(digest), true);
    assert.deepEqual(probes.closes, new Map());

    await composition.close();
    assert.deepEqual(
      Object.fromEntries(probes.closes),
      { shared: 1, "probe://": 1 },
      "every built instance closed exactly once",
    );
    await composition.close(); // idempotent
    assert.equal(probes.closes.get("shared"), 1);
    await assert.rejects(composition.service("blob"), StorageError);
  });

  test("closing waits for builds in flight", async () => {
    const { registry, probes } = probeRegistry();
    const { composition } = compose(SHARED, registry);
    const pending = composition.service("blob", "spare");
    await composition.close();
    await pending.catch(() => undefined);
    assert.equal(probes.closes.get("spare") ?? 0, probes.builds.get("spare") ?? 0);
  });

  test("instances are the registry's classes behind the handles", async (t) => {
    const { composition } = compose(
      '[blobservices.root]\ntype = "cache"\nnear = "memory://"\nfar = "memory://"\n',
    );
    t.after(() => composition.close());
    const root: BlobService = await composition.service("blob");
    assert.ok(root instanceof CacheBlobService);
  });

  test("a cycle through a type that does not declare its references is found while building", async () => {
    const { registry } = probeRegistry();
    const { composition } = compose(
      `
[blobservices.root]
type = "undeclared"
inner = "a"
[blobservices.a]
type = "undeclared"
inner = "b"
[blobservices.b]
type = "undeclared"
inner = "a"
`,
      registry,
    );
    await assert.rejects(composition.service("blob"), (err: unknown) => {
      // The registry adds which instance failed; the cause has the path.
      let cur: unknown = err;
      while (cur instanceof Error && !/cycle/.test(cur.message)) cur = cur.cause;
      assert.ok(cur instanceof ConfigError, String(err));
      assert.equal(
        cur.message,
        "cycle: blobservices.root.inner -> blobservices.a.inner -> blobservices.b.inner -> blobservices.a",
      );
      return true;
    });
    // Requested concurrently from both ends: an error, not a deadlock.
    const { composition: c2 } = compose(
      '[blobservices.root]\ntype = "undeclared"\ninner = "a"\n[blobservices.a]\ntype = "undeclared"\ninner = "root"\n',
      registry,
    );
    const results = await Promise.allSettled([c2.service("blob", "root"), c2.service("blob", "a")]);
    assert.ok(results.every((r) => r.status === "rejected"));
    await c2.close();
  });

  test("an unknown name found only while building names the path", async () => {
    const { registry } = probeRegistry();
    const { composition } = compose(
      '[blobservices.root]\ntype = "undeclared"\ninner = "nowhere"\n',
      registry,
    );
    await assert.rejects(composition.service("blob"), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, "opening blob service 'root' (type undeclared)");
      assert.equal(
        (err.cause as Error).message,
        "blobservices.root.inner -> blobservices.nowhere: not defined (blobservices has: root)",
      );
      return true;
    });
  });

  test("errors of an inner instance name it, through every level", async (t) => {
    const { composition } = compose(`
[pathinfoservices.root]
type = "cache"
near = "memory://"
far = "upstream"
[pathinfoservices.upstream]
type = "retry"
inner = "flaky"
attempts = 2
backoff_ms = 0
[pathinfoservices.flaky]
type = "faulty"
inner = "memory://"
fail_fraction = 1
`);
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    await assert.rejects(root.get(samplePathInfo(1).storePath.digest), (err: unknown) => {
      const chain: string[] = [];
      for (let cur: unknown = err; cur instanceof Error; cur = cur.cause) chain.push(cur.message);
      assert.match(chain[0]!, /^path info cache 'root': far tier 'upstream' failed \(get /);
      assert.match(
        chain[1]!,
        /^path info retry 'upstream': get .* on 'flaky': giving up after 2 attempts$/,
      );
      assert.match(chain[2]!, /^faulty 'flaky': injected failure of get$/);
      return true;
    });
  });

  test("max_concurrency: requests beyond the limit wait their turn", async (t) => {
    const { composition } = compose(`
[pathinfoservices.root]
type = "lru"
inner = "slow"
capacity = 10
max_concurrency = 1
[pathinfoservices.slow]
type = "latency"
inner = "memory://"
delay_ms = 30
`);
    t.after(() => composition.close());
    const root = await composition.service("pathinfo");
    const start = performance.now();
    await Promise.all([1, 2, 3].map((i) => root.get(samplePathInfo(i).storePath.digest)));
    // One after another: at least 3 x 30 ms (a lower bound, never flaky).
    assert.ok(performance.now() - start >= 85);
    assert.equal(statsOf(await composition.service("pathinfo", "slow")).calls.get, 3);
  });

  test("common options keep the optional blob fast paths exactly when the inner store has them", async (t) => {
    const dir = tempDir(t);
    const { composition } = compose(`
[blobservices.root]
type = "objectstore"
object_store_url = "file://${dir}"
timeout_ms = 5000
[blobservices.mem]
type = "memory"
timeout_ms = 5000
`);
    t.after(() => composition.close());
    const root = await composition.service("blob");
    const data = new TextEncoder().encode("through the guard");
    assert.ok(root.putBytes !== undefined && root.hasLocal !== undefined);
    const digest = await root.putBytes(data);
    assert.deepEqual(digest, hashB3(data));
    assert.equal(root.hasLocal(digest, data.length), true);
    assert.equal(await root.has(digest), true);
    assert.ok(root.readSmallInto !== undefined);
    const small = new Uint8Array(data.length + 1);
    assert.equal(root.readSmallInto(digest, small, 1), data.length);
    assert.deepEqual(small.subarray(1), data);
    const reader = await root.openRead(digest);
    assert.ok(reader?.readInto !== undefined, "a guarded reader keeps readInto");
    const into = new Uint8Array(data.length + 2);
    await reader.readInto(into, 1, data.length, 0);
    assert.deepEqual(into.subarray(1, 1 + data.length), data);
    await reader.close();
    const mem = await composition.service("blob", "mem");
    assert.equal(mem.putBytes, undefined);
    assert.equal(mem.hasLocal, undefined);
    assert.equal(mem.readSmallInto, undefined);
  });

  test("a blob cache offers its near store's fast paths (putBytes only when not writing through)", async (t) => {
    const dir = tempDir(t);
    const { composition } = compose(`
[blobservices.root]
type = "cache"
near = "near"
far = "far"
negative_ttl_ms = 60000
[blobservices.through]
type = "cache"
near = "near"
far = "far"
write = "through"
[blobservices.near]
type = "objectstore"
object_store_url = "file://${dir}"
[blobservices.far]
type = "memory"
`);
    t.after(() => composition.close());
    const root = await composition.service("blob");
    const data = new TextEncoder().encode("into near");
    const digest = hashB3(data);
    assert.equal(await root.has(digest), false, "remembered as a miss");
    assert.ok(root.putBytes !== undefined && root.hasLocal !== undefined);
    assert.ok(root.readSmallInto !== undefined);
    assert.deepEqual(await root.putBytes(data), digest);
    assert.equal(await root.has(digest), true, "putBytes forgets the remembered miss");
    assert.equal(root.hasLocal(digest, data.length), true);
    const small = new Uint8Array(data.length);
    assert.equal(root.readSmallInto(digest, small, 0), data.length);
    assert.deepEqual(small, data);
    assert.equal(root.readSmallInto(digest, small, 1), data.length, "too little room: length only");
    assert.equal(await (await composition.service("blob", "far")).has(digest), false);
    const through = await composition.service("blob", "through");
    assert.equal(
      through.putBytes,
      undefined,
      "writing through needs both tiers: no near-only shortcut",
    );
    assert.ok(through.hasLocal !== undefined);
  });

  test("a URL entry with ?cache= builds the same graph as the table", async (t) => {
    const { composition } = compose('[pathinfoservices]\nroot = "lmdb://?cache=memory://"\n');
    t.after(() => composition.close());
    const root = composition.config.entry("pathinfo", "root")!;
    assert.deepEqual(root.config, { type: "cache", near: "memory://", far: "lmdb://" });
    assert.deepEqual(
      root.edges.map((e) => [e.field, e.target.name, e.target.config.type]),
      [
        ["near", "memory://", "memory"],
        ["far", "lmdb://", "lmdb"],
      ],
    );
    const service = await composition.service("pathinfo");
    const info = samplePathInfo(3);
    await service.put(info);
    assert.ok((await service.get(info.storePath.digest)) !== undefined);
  });
});
