/**
 * Runs the DirectoryService conformance suite on every backend, plus what
 * only a persistent backend can show: data surviving a reopen, and corrupt
 * data on disk being reported instead of returned.
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { formatB3 } from "../../src/castore/digest.js";
import { LMDB_DIRECTORIES_DB, LmdbDirectoryService } from "../../src/castore/directory/lmdb.js";
import { Directory } from "../../src/castore/directory.js";
import { IntegrityError, StorageError } from "../../src/errors.js";
import { leaf, parent } from "../conformance/directory.js";
import { writeRaw } from "../helpers/lmdb-raw.js";
import { tempDir } from "../helpers/tmp.js";

describe("LmdbDirectoryService", () => {
  test("data survives close and reopen of the same path", async (t) => {
    const path = tempDir(t);
    const a = leaf("a");
    const b = parent("b", [a]);
    {
      await using s = await LmdbDirectoryService.open({ path });
      const putter = s.putMultiple();
      await putter.put(a);
      await putter.put(b);
      await putter.close();
    }
    await using s = await LmdbDirectoryService.open({ path });
    assert.equal(formatB3((await s.get(b.digest()))!.digest()), formatB3(b.digest()));
    const all: Directory[] = [];
    for await (const d of s.getRecursive(b.digest())) all.push(d);
    assert.equal(all.length, 2);
  });

  test("close waits for a put in flight", async (t) => {
    const path = tempDir(t);
    const a = leaf("in-flight");
    {
      const s = await LmdbDirectoryService.open({ path });
      const put = s.put(a);
      await s.close();
      await put;
    }
    await using s = await LmdbDirectoryService.open({ path });
    assert.ok((await s.get(a.digest())) !== undefined);
  });

  test("a value that does not decode is an IntegrityError naming the digest", async (t) => {
    const path = tempDir(t);
    const a = leaf("a");
    await (await LmdbDirectoryService.open({ path })).close();
    await writeRaw(path, LMDB_DIRECTORIES_DB, a.digest(), new Uint8Array([0xff, 0xff, 0xff, 0x01]));
    await using s = await LmdbDirectoryService.open({ path });
    await assert.rejects(s.get(a.digest()), (err: unknown) => {
      assert.ok(err instanceof IntegrityError);
      assert.ok(err.message.includes(formatB3(a.digest())), err.message);
      assert.ok(err.message.includes(path), err.message);
      return true;
    });
  });

  test("a valid directory under the wrong key is an IntegrityError", async (t) => {
    const path = tempDir(t);
    const a = leaf("a");
    const b = leaf("b");
    await (await LmdbDirectoryService.open({ path })).close();
    await writeRaw(path, LMDB_DIRECTORIES_DB, a.digest(), b.encode());
    await using s = await LmdbDirectoryService.open({ path });
    await assert.rejects(s.get(a.digest()), IntegrityError);
    await assert.rejects(async () => {
      for await (const _ of s.getRecursive(a.digest())) {
        // drain
      }
    }, IntegrityError);
  });

  test("a missing child below a stored root is an IntegrityError in getRecursive", async (t) => {
    const path = tempDir(t);
    const child = leaf("lost");
    const root = parent("root", [child]);
    await (await LmdbDirectoryService.open({ path })).close();
    await writeRaw(path, LMDB_DIRECTORIES_DB, root.digest(), root.encode());
    await using s = await LmdbDirectoryService.open({ path });
    const it = s.getRecursive(root.digest())[Symbol.asyncIterator]();
    assert.equal((await it.next()).done, false);
    await assert.rejects(it.next(), (err: unknown) => {
      assert.ok(err instanceof IntegrityError);
      assert.match(err.message, /missing/);
      assert.ok(err.message.includes(formatB3(child.digest())), err.message);
      return true;
    });
  });

  test("a temporary store lives in a fresh directory that close removes", async () => {
    const s = await LmdbDirectoryService.open();
    assert.ok(existsSync(s.path));
    await s.put(Directory.EMPTY);
    await s.close();
    assert.ok(!existsSync(s.path));
  });

  test("opening a path that is a file is a StorageError naming it", async (t) => {
    const file = join(tempDir(t), "not-a-directory");
    writeFileSync(file, "x");
    await assert.rejects(LmdbDirectoryService.open({ path: file }), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.ok(err.message.includes(file), err.message);
      return true;
    });
  });
});
