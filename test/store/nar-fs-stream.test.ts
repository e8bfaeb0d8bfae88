/** The worker-thread NAR of a path on disk (fs-nar-stream.ts) against the in-process writer. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AbortedError, InvalidInputError } from "../../src/errors.js";
import { fsNarStream } from "../../src/store/nar/fs-nar-stream.js";
import { fsNarSource } from "../../src/store/nar/fs-source.js";
import { writeNar } from "../../src/store/nar/writer.js";
import { corpusDir } from "../helpers/corpus.js";
import { collectBytes } from "../helpers/nar-tree.js";
import { tempDir } from "../helpers/tmp.js";

/** Copies each transient chunk before the next is asked for, as the contract allows. */
async function collectTransient(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe("NAR of a path on disk, serialised by a worker thread", () => {
  test("same bytes as the in-process writer for the whole corpus (files larger than the ring included)", async () => {
    const root = corpusDir();
    const expected = await collectBytes(writeNar(fsNarSource(root)));
    assert.ok(expected.length > 8 << 20, "the corpus spans several turns of the ring");
    assert.deepEqual(await collectTransient(fsNarStream(root)), expected);
    assert.deepEqual(await collectBytes(fsNarStream(root, { transient: false })), expected);
  });

  test("a small file or symlink as root, and an empty directory", async (t) => {
    const d = tempDir(t);
    writeFileSync(join(d, "f"), "hello");
    symlinkSync("f", join(d, "l"));
    mkdirSync(join(d, "empty"));
    for (const p of ["f", "l", "empty"].map((n) => join(d, n))) {
      assert.deepEqual(
        await collectTransient(fsNarStream(p)),
        await collectBytes(writeNar(fsNarSource(p))),
      );
    }
  });

  test("a fifo inside the tree fails with InvalidInputError naming it, from the worker", async (t) => {
    const d = tempDir(t);
    writeFileSync(join(d, "a"), "x");
    execFileSync("mkfifo", [join(d, "pipe")]);
    await assert.rejects(
      collectTransient(fsNarStream(d)),
      (e: unknown) => e instanceof InvalidInputError && e.message.includes(join(d, "pipe")),
    );
  });

  test("a missing path fails before any thread starts", () => {
    assert.throws(() => fsNarStream("/nonexistent/strata"), { code: "ENOENT" });
  });

  test("a consumer that stops early and an abort both end the worker", async () => {
    const root = corpusDir();
    for await (const _ of fsNarStream(root)) break;
    const ac = new AbortController();
    let chunks = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of fsNarStream(root, { signal: ac.signal })) {
          if (++chunks === 2) ac.abort();
        }
      })(),
      (e: unknown) => e instanceof AbortedError,
    );
    assert.equal(chunks, 2);
  });
});
