import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { describe, test } from "node:test";
import { utf8 } from "../../src/castore/bytes.js";
import { b3Digest } from "../../src/castore/digest.js";
import { IntegrityError, InvalidInputError } from "../../src/errors.js";
import { castoreNarSource } from "../../src/store/nar/castore-source.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { hashNarStream } from "../../src/store/nar/hash.js";
import { type NarSourceNode, writeNar } from "../../src/store/nar/writer.js";
import { ingest, memCastore } from "../helpers/castore-tree.js";
import { corpusDir, corpusItems, expectedItems } from "../helpers/corpus.js";
import { collectBytes } from "../helpers/nar-tree.js";

const sha256hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("NAR writer", () => {
  test("a castore root renders the same NAR as the tree on disk (every corpus item)", async () => {
    const expected = expectedItems();
    for (const item of corpusItems()) {
      const store = memCastore();
      const root = ingest(join(corpusDir(), item), store);
      const nar = await collectBytes(writeNar(castoreNarSource(root, store)));
      assert.equal(sha256hex(nar), expected.get(item)!.narSha256Hex, item);
    }
  });

  test("transient mode (recycled buffers) gives the same hash as fresh buffers", async () => {
    for (const item of ["big", "wide", "sizes", "weird-names"]) {
      const path = join(corpusDir(), item);
      const a = await hashNarStream(writeNar(fsNarSource(path)));
      const b = await hashNarStream(
        writeNar(fsNarSource(path, { reuseBuffer: true, readChunk: 4096 }), { transient: true }),
      );
      assert.deepEqual(a, b, item);
      assert.equal(Buffer.from(a.sha256).toString("hex"), expectedItems().get(item)!.narSha256Hex);
    }
  });

  test("chunks may be kept by the consumer unless transient", async () => {
    const path = join(corpusDir(), "sizes");
    const kept = await collectBytes(writeNar(fsNarSource(path)));
    assert.equal(sha256hex(kept), expectedItems().get("sizes")!.narSha256Hex);
  });

  test("a missing blob or directory is an IntegrityError naming the digest", async () => {
    const store = memCastore();
    const digest = b3Digest(new Uint8Array(32).fill(9));
    await assert.rejects(
      collectBytes(
        writeNar(castoreNarSource({ type: "file", digest, size: 3, executable: false }, store)),
      ),
      (e: unknown) => e instanceof IntegrityError && /blob b3:CQkJ.* is missing/.test(e.message),
    );
    await assert.rejects(
      collectBytes(writeNar(castoreNarSource({ type: "directory", digest, size: 3 }, store))),
      (e: unknown) => e instanceof IntegrityError && /directory b3:.* is missing/.test(e.message),
    );
  });

  test("a blob shorter or longer than its declared size is rejected", async () => {
    const mk = (data: string, size: number): NarSourceNode => ({
      type: "file",
      executable: false,
      size,
      contents: async function* () {
        yield utf8(data);
      },
    });
    await assert.rejects(
      collectBytes(writeNar(mk("abc", 4))),
      (e: unknown) => e instanceof IntegrityError && /fewer bytes/.test(e.message),
    );
    await assert.rejects(
      collectBytes(writeNar(mk("abcde", 4))),
      (e: unknown) => e instanceof IntegrityError && /more bytes/.test(e.message),
    );
  });

  test("entries out of order are rejected", async () => {
    const leaf: NarSourceNode = { type: "symlink", target: utf8("x") };
    const dir: NarSourceNode = {
      type: "directory",
      entries: () => [
        { name: utf8("b"), node: leaf },
        { name: utf8("a"), node: leaf },
      ],
    };
    await assert.rejects(
      collectBytes(writeNar(dir)),
      (e: unknown) =>
        e instanceof InvalidInputError && /"a" is not in strictly increasing/.test(e.message),
    );
  });

  test("abort stops the stream", async () => {
    const ac = new AbortController();
    const it = writeNar(fsNarSource(join(corpusDir(), "wide")), { signal: ac.signal });
    await it.next();
    ac.abort();
    await assert.rejects(
      collectBytes(it),
      (e: unknown) => (e as { code?: string }).code === "Aborted",
    );
  });

  test("a device node is rejected with its path", () => {
    assert.throws(
      () => fsNarSource("/dev/null"),
      (e: unknown) => e instanceof InvalidInputError && /\/dev\/null/.test(e.message),
    );
  });
});
