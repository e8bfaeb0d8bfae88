/**
 * Acceptance (issue 3): a service type defined outside the package — here,
 * in this file — registered on a clone of the default registry, builds from
 * its URL and from a config object; the default registry is unaffected; an
 * unknown scheme lists the known ones.
 *
 * The type, `counting`, wraps another blob service (`inner`, a URL or an
 * inline config; default memory://) and counts calls: the shape of the
 * combinators of issue 4, resolved through `BuildContext.resolve`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import type {
  BlobReader,
  BlobService,
  BlobWriter,
  ChunkMeta,
} from "../../src/castore/blob/service.js";
import type { CallOptions } from "../../src/castore/call-options.js";
import type { B3Digest } from "../../src/castore/digest.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import { defineServiceType, type Registry } from "../../src/composition/registry.js";
import {
  checkQuery,
  rejectFragment,
  rejectHost,
  rejectPath,
  rejectVariant,
} from "../../src/composition/types/url-parts.js";
import { ConfigError } from "../../src/errors.js";

class CountingBlobService implements BlobService {
  readonly calls = { has: 0, openRead: 0, openWrite: 0, chunks: 0, sync: 0 };
  constructor(
    readonly inner: BlobService,
    readonly instanceName: string,
  ) {}
  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    this.calls.has++;
    return this.inner.has(digest, options);
  }
  openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    this.calls.openRead++;
    return this.inner.openRead(digest, options);
  }
  openWrite(options?: CallOptions): BlobWriter {
    this.calls.openWrite++;
    return this.inner.openWrite(options);
  }
  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    this.calls.chunks++;
    return this.inner.chunks(digest, options);
  }
  sync(options?: CallOptions): Promise<void> {
    this.calls.sync++;
    return this.inner.sync(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const countingSchema = z.strictObject({
  type: z.literal("counting"),
  inner: z.union([z.string(), z.looseObject({ type: z.string() })]).optional(),
});

type CountingConfig = z.infer<typeof countingSchema>;

/** `counting://[?inner=<percent-encoded blob service URL>]` */
const countingBlobType = defineServiceType({
  kind: "blob",
  tag: "counting",
  description: "Counts calls to an inner blob service (test only).",
  schema: countingSchema,
  fromUrl(url): CountingConfig {
    const form = "counting://";
    rejectVariant(url, form);
    rejectHost(url, form);
    rejectPath(url, form);
    rejectFragment(url, form);
    const inner = checkQuery(url, form, ["inner"]).get("inner");
    return inner === undefined ? { type: "counting" } : { type: "counting", inner };
  },
  async build(config, ctx) {
    const inner = await ctx.resolve("blob", config.inner ?? "memory://", "inner");
    return new CountingBlobService(inner, ctx.instanceName);
  },
});

async function roundTrip(service: BlobService): Promise<void> {
  const w = service.openWrite();
  await w.write(new TextEncoder().encode("hello"));
  const digest = await w.close();
  assert.equal(await service.has(digest), true);
  const r = await service.openRead(digest);
  assert.ok(r !== undefined);
  assert.equal(new TextDecoder().decode(await r.read(0, 5)), "hello");
  await r.close();
}

function extended(): { base: Registry; registry: Registry } {
  const base = defaultRegistry();
  return { base, registry: base.clone().register(countingBlobType) };
}

describe("a service type registered from outside", () => {
  test("builds from its URL", async () => {
    const { registry } = extended();
    const service = await registry.build("blob", "counting://");
    assert.ok(service instanceof CountingBlobService);
    await roundTrip(service);
    assert.deepEqual(service.calls, { has: 1, openRead: 1, openWrite: 1, chunks: 0, sync: 0 });
    assert.equal(service.instanceName, "root");
    await service.close();
  });

  test("builds from a URL whose inner service is another URL", async () => {
    const { registry } = extended();
    const url = `counting://?inner=${encodeURIComponent("lmdb://")}`;
    // lmdb is no blob type: the inner URL is checked as a blob service URL.
    await assert.rejects(registry.build("blob", url), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^opening blob service 'root' \(type counting\)$/);
      assert.ok(err.cause instanceof ConfigError);
      assert.match(err.cause.message, /^blob service URL 'lmdb:\/\/': unknown scheme 'lmdb:\/\/'/);
      return true;
    });
    const ok = await registry.build(
      "blob",
      `counting://?inner=${encodeURIComponent("counting://")}`,
    );
    assert.ok(ok instanceof CountingBlobService && ok.inner instanceof CountingBlobService);
    // The inner instance is named after its URL.
    assert.equal(ok.inner.instanceName, "counting://");
    await ok.close();
  });

  test("builds from a config object, with an inline inner config", async () => {
    const { registry } = extended();
    const service = await registry.build(
      "blob",
      { type: "counting", inner: { type: "memory" } },
      { instanceName: "local" },
    );
    assert.ok(service instanceof CountingBlobService);
    assert.equal(service.instanceName, "local");
    await roundTrip(service);
    await service.close();
  });

  test("its config is validated with field paths, nested ones too", async () => {
    const { registry } = extended();
    assert.throws(
      () => registry.parseConfig("blob", { type: "counting", limit: 3 }, "blobservices.root"),
      /blobservices\.root\.limit: unknown field/,
    );
    await assert.rejects(
      registry.build("blob", { type: "counting", inner: { type: "memory", x: 1 } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.ok(err.cause instanceof ConfigError);
        assert.equal(err.cause.message, "blobservices.root.inner.x: unknown field");
        return true;
      },
    );
    // A bare name needs a composition config (issue 4).
    await assert.rejects(
      registry.build("blob", { type: "counting", inner: "local" }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.cause instanceof ConfigError &&
        /blobservices\.root\.inner: 'local' names another instance/.test(err.cause.message),
    );
    assert.throws(
      () => registry.configFromUrl("blob", "counting://?inner=memory://&limit=3"),
      /^ConfigError: blob service URL 'counting:\/\/\?inner=memory:\/\/&limit=3': counting:\/\/: unknown query parameter 'limit' \(known: 'inner'\)$/,
    );
  });

  test("the default registry stays untouched", () => {
    const { base, registry } = extended();
    assert.deepEqual(registry.tags("blob"), [...base.tags("blob"), "counting"].sort());
    assert.ok(!base.tags("blob").includes("counting"));
    assert.deepEqual(defaultRegistry().tags("blob"), base.tags("blob"));
    assert.equal(base.lookup("blob", "counting"), undefined);
    // Registered for blobs only.
    assert.equal(registry.lookup("directory", "counting"), undefined);
    assert.throws(
      () => base.configFromUrl("blob", "counting://"),
      /unknown scheme 'counting:\/\/'/,
    );
  });

  test("an unknown scheme fails with a message listing the known ones", () => {
    const { registry } = extended();
    assert.throws(
      () => registry.configFromUrl("blob", "nope://x"),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.message,
          /^blob service URL 'nope:\/\/x': unknown scheme 'nope:\/\/' \(known schemes: (.+)\)$/,
        );
        // Each registered type's URL forms, in tag order.
        for (const form of ["counting://", "memory://", "objectstore+file:///ABSOLUTE/DIR"]) {
          assert.ok(err.message.includes(`${form}, `) || err.message.endsWith(`${form})`), form);
        }
        assert.ok(err.message.indexOf("counting://") < err.message.indexOf("memory://"));
        return true;
      },
    );
    assert.throws(
      () => registry.configFromUrl("pathinfo", "counting://"),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.message,
          /^path info service URL 'counting:\/\/': unknown scheme 'counting:\/\/' \(known schemes: .*lmdb:\/\/\/ABSOLUTE\/PATH, lmdb:\/\/, .*memory:\/\/.*\)$/,
        );
        assert.doesNotMatch(err.message, /counting:\/\/,/);
        return true;
      },
    );
  });
});
