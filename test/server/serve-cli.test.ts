/**
 * `strata serve` as a process, without Nix: the banner, the binary cache on
 * the embedded default store, the gRPC side, flag checks, graceful shutdown.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { defaultStoreEnv, runStrata } from "../helpers/cli.js";
import { http, spawnServe } from "../helpers/http.js";
import { tempDir } from "../helpers/tmp.js";

describe("strata serve", () => {
  test("serves the default store over HTTP and gRPC, prints where, stops on SIGTERM", async (t) => {
    const dir = tempDir(t);
    const env = defaultStoreEnv(dir);
    const demo = join(dir, "demo");
    mkdirSync(join(demo, "bin"), { recursive: true });
    writeFileSync(join(demo, "bin", "hello"), "#!/bin/sh\necho hello\n", { mode: 0o755 });
    const imported = await runStrata(["import", demo], undefined, env);
    assert.equal(imported.code, 0, imported.stderr);
    const path = imported.stdout.toString().trim();
    const nar = await runStrata(["nar", "pack", demo], undefined, env);

    const srv = await spawnServe(t, ["--grpc-listen-address", "127.0.0.1:0"], env);
    assert.match(srv.banner, /^binary cache: http:\/\/127\.0\.0\.1:\d+$/m);
    assert.match(srv.banner, /^uploads: disabled$/m);
    const grpc = /^gRPC: (grpc\+http:\/\/127\.0\.0\.1:\d+)$/m.exec(srv.banner)?.[1];
    assert.ok(grpc !== undefined, srv.banner);

    const narinfo = await http("GET", `${srv.url}/${path.slice(11, 43)}.narinfo`);
    assert.equal(narinfo.status, 200);
    assert.match(narinfo.body.toString(), new RegExp(`^StorePath: ${path}$`, "m"));
    const url = /^URL: (.*)$/m.exec(narinfo.body.toString())![1]!;
    const got = await http("GET", `${srv.url}/${url}`);
    assert.ok(got.body.equals(nar.stdout));

    // The same store through the gRPC side.
    const info = await runStrata(["path-info", "--json", path], undefined, {
      ...env,
      PATH_INFO_SERVICE_ADDR: grpc,
    });
    assert.equal(info.code, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout.toString()) as { path: string }[])[0]!.path, path);

    assert.equal(await srv.stop(), 0, srv.stderr());
  });

  test("rejects inconsistent flags before opening anything", async (t) => {
    const dir = tempDir(t);
    const env = defaultStoreEnv(dir);
    const cases: [string[], RegExp][] = [
      [["--allow-upload"], /--allow-upload needs --upload-credentials-file/],
      [["--upload-credentials-file", join(dir, "x")], /only used with --allow-upload/],
      [
        ["--allow-upload", "--upload-credentials-file", join(dir, "missing")],
        /cannot read the upload credentials file/,
      ],
      [["--priority", "high"], /--priority 'high'/],
      [["--listen-address", "nowhere"], /listen address 'nowhere'/],
      [["--grpc-listen-address", "nowhere"], /listen address 'nowhere'/],
      [["--signing-key-file", join(dir, "missing")], /cannot read the signing key file/],
    ];
    for (const [args, message] of cases) {
      const r = await runStrata(["serve", ...args], undefined, env);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, message, args.join(" "));
    }
    writeFileSync(join(dir, "creds"), "no colon here\n");
    const r = await runStrata(
      ["serve", "--allow-upload", "--upload-credentials-file", join(dir, "creds")],
      undefined,
      env,
    );
    assert.match(r.stderr, /line 1: expected 'user:password'/);
  });
});
