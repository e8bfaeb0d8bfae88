/**
 * Runs the PathInfoService conformance suite on every backend, plus what
 * only a persistent backend can show: data surviving a reopen, and corrupt
 * data on disk being reported instead of returned.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { IntegrityError } from "../../src/errors.js";
import { pathInfosEqual } from "../../src/store/path-info.js";
import { encodePathInfo } from "../../src/store/path-info-proto.js";
import { LMDB_PATHINFO_DB, LmdbPathInfoService } from "../../src/store/pathinfo/lmdb.js";
import { samplePathInfo } from "../conformance/pathinfo.js";
import { writeRaw } from "../helpers/lmdb-raw.js";
import { tempDir } from "../helpers/tmp.js";

describe("LmdbPathInfoService", () => {
  test("data survives close and reopen of the same path", async (t) => {
    const path = tempDir(t);
    const infos = [samplePathInfo(1), samplePathInfo(2)];
    {
      await using s = await LmdbPathInfoService.open({ path });
      for (const info of infos) await s.put(info);
    }
    await using s = await LmdbPathInfoService.open({ path });
    for (const info of infos) {
      const got = await s.get(info.storePath.digest);
      assert.ok(got !== undefined && pathInfosEqual(got, info));
    }
  });

  test("a value that does not decode is an IntegrityError on get and list", async (t) => {
    const path = tempDir(t);
    const info = samplePathInfo(3);
    await (await LmdbPathInfoService.open({ path })).close();
    await writeRaw(
      path,
      LMDB_PATHINFO_DB,
      info.storePath.digest,
      new Uint8Array([0x0a, 0xff, 0x01]),
    );
    await using s = await LmdbPathInfoService.open({ path });
    await assert.rejects(s.get(info.storePath.digest), (err: unknown) => {
      assert.ok(err instanceof IntegrityError);
      assert.match(err.message, /corrupt/);
      assert.ok(err.message.includes(path), err.message);
      return true;
    });
    await assert.rejects(async () => {
      for await (const _ of s.list()) {
        // drain
      }
    }, IntegrityError);
  });

  test("the path info of another store path under a key is an IntegrityError", async (t) => {
    const path = tempDir(t);
    const info = samplePathInfo(4);
    await (await LmdbPathInfoService.open({ path })).close();
    await writeRaw(
      path,
      LMDB_PATHINFO_DB,
      info.storePath.digest,
      encodePathInfo(samplePathInfo(5)),
    );
    await using s = await LmdbPathInfoService.open({ path });
    await assert.rejects(s.get(info.storePath.digest), /describes \/nix\/store\//);
  });
});
