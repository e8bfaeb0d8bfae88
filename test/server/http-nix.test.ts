/**
 * `strata serve` as a binary cache for the real Nix 2.8 (issue 7 acceptance
 * 1, 2 and the auth part of 3): `nix copy --to` of a closure with
 * references and of the corpus, `nix copy --from` into a fresh store with
 * the server's key trusted (no --no-check-sigs), `nix store verify`,
 * `nix-store -r` with the cache as substituter, build logs, Range requests
 * on the spawned server's file-backed store.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { lstatSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { defaultStoreEnv } from "../helpers/cli.js";
import { corpusDir, corpusItems, FIXTURES } from "../helpers/corpus.js";
import { CREDENTIALS, http, spawnServe } from "../helpers/http.js";
import { nixBinary, nixEnv, requireNix, tempStoreRoot } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

/** Nix with its own narinfo disk cache (a port may be reused by a later server). */
function nixRunner() {
  const env = { ...nixEnv(), XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), "strata-nix-cache-")) };
  return {
    run(cmd: string, args: readonly string[]): string {
      return execFileSync(cmd, args, { env, encoding: "utf8", maxBuffer: 1 << 30, stdio: "pipe" });
    },
    /** Exit status and output, for commands expected to fail. */
    attempt(cmd: string, args: readonly string[]): { status: number | null; output: string } {
      const r = spawnSync(cmd, args, { env, encoding: "utf8", maxBuffer: 1 << 30 });
      return { status: r.status, output: `${r.stdout}${r.stderr}` };
    },
  };
}

const REFS_NIX = join(FIXTURES, "refs.nix");

describe("strata serve with Nix 2.8", () => {
  test("nix copy to and from the cache, verify, substitute (refs closure and corpus)", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    const n = nixRunner();
    const sk = join(dir, "sk");
    writeFileSync(sk, n.run("nix", ["key", "generate-secret", "--key-name", "strata-http-test"]));
    const pk = execFileSync("nix", ["key", "convert-secret-to-public"], {
      env: nixEnv(),
      input: readFileSync(sk),
      encoding: "utf8",
    }).trim();
    const creds = join(dir, "creds");
    writeFileSync(creds, `# uploaders\n${CREDENTIALS}\n`);
    const netrc = join(dir, "netrc");
    const [user, password] = CREDENTIALS.split(":");
    writeFileSync(netrc, `machine 127.0.0.1 login ${user} password ${password}\n`);
    const srv = await spawnServe(
      t,
      [
        "--allow-upload",
        "--upload-credentials-file",
        creds,
        "--signing-key-file",
        sk,
        "--priority",
        "25",
      ],
      defaultStoreEnv(dir),
    );
    assert.match(srv.banner, new RegExp(`^public key: ${pk.replace(/[+/]/g, "\\$&")}$`, "m"));
    const url = srv.url;

    // Upload: the refs closure (Nix's default, xz) and the corpus (zstd).
    const top = n.run("nix-build", [REFS_NIX, "--no-out-link"]).trim().split("\n").pop()!;
    const refs = n.run("nix-store", ["-qR", top]).trim().split("\n");
    assert.equal(refs.length, 2);
    const root = tempStoreRoot();
    const corpus = n
      .run("nix-store", [
        "--store",
        root,
        "--add",
        ...corpusItems().map((i) => join(corpusDir(), i)),
      ])
      .trim()
      .split("\n");
    n.run("nix", ["copy", "--to", url, "--option", "netrc-file", netrc, top]);
    n.run("nix", [
      "copy",
      "--from",
      root,
      "--to",
      `${url}?compression=zstd&write-nar-listing=true`,
      "--option",
      "netrc-file",
      netrc,
      ...corpus,
    ]);
    const info = await http("GET", `${url}/nix-cache-info`);
    assert.match(info.body.toString(), /^Priority: 25$/m);

    // Download into a fresh store, trusting only the server's key. A fresh
    // Nix disk cache: the uploader's cache holds the narinfos as uploaded,
    // without the server's signature.
    const d = nixRunner();
    const all = [...refs, ...corpus];
    const fresh = tempStoreRoot();
    d.run("nix", [
      "copy",
      "--from",
      url,
      "--to",
      fresh,
      "--trusted-public-keys",
      pk,
      top,
      ...corpus,
    ]);
    for (const store of [fresh, url]) {
      const v = d.attempt("nix", [
        "store",
        "verify",
        "--store",
        store,
        "--trusted-public-keys",
        pk,
        ...all,
      ]);
      assert.equal(v.status, 0, `nix store verify --store ${store}:\n${v.output}`);
      assert.doesNotMatch(v.output, /untrusted|corrupt|error|warning/i);
    }
    const ours = JSON.parse(d.run("nix", ["path-info", "--store", fresh, "--json", ...corpus])) as {
      path: string;
      narHash: string;
      narSize: number;
      ca?: string;
    }[];
    const theirs = JSON.parse(
      d.run("nix", ["path-info", "--store", root, "--json", ...corpus]),
    ) as typeof ours;
    for (const a of theirs) {
      const b = ours.find((x) => x.path === a.path)!;
      assert.deepEqual([b.narHash, b.narSize, b.ca], [a.narHash, a.narSize, a.ca], a.path);
    }

    // Substitution: nix-store -r with the cache as the only substituter.
    const subst = tempStoreRoot();
    d.run("nix-store", [
      "--store",
      subst,
      "-r",
      top,
      ...corpus,
      "--option",
      "substituters",
      url,
      "--option",
      "trusted-public-keys",
      pk,
    ]);
    // lstat: some corpus items are (dangling) symlinks.
    for (const p of all)
      assert.ok(lstatSync(join(subst, p), { throwIfNoEntry: false }), `${p} realised`);

    // Build logs go up with `nix store copy-log` and come back verbatim.
    const log = spawnSync("nix", ["log", top], { env: nixEnv(), encoding: "utf8" });
    if (log.status === 0) {
      n.run("nix", ["store", "copy-log", "--to", url, "--option", "netrc-file", netrc, top]);
      const drv = n.run("nix-store", ["-q", "--deriver", top]).trim().slice("/nix/store/".length);
      const got = await http("GET", `${url}/log/${drv}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.toString(), log.stdout);
      assert.equal(d.run("nix", ["log", "--store", url, top]), log.stdout);
    }

    // Range requests into the 50 MiB file of the corpus, on the file-backed store.
    const big = corpus[corpusItems().indexOf("big")]!;
    const narinfo = (await http("GET", `${url}/${big.slice(11, 43)}.narinfo`)).body.toString();
    const narUrl = `${url}/${/^URL: (.*)$/m.exec(narinfo)![1]}`;
    const full = nixBinary("nix-store", ["--dump", join(root, big)]);
    const size = full.length;
    for (const [range, a, z] of [
      ["bytes=0-0", 0, 1],
      [
        `bytes=${(size >> 1) - 3}-${(size >> 1) + 1_000_000}`,
        (size >> 1) - 3,
        (size >> 1) + 1_000_001,
      ],
      ["bytes=-4096", size - 4096, size],
      [`bytes=${size - 10}-`, size - 10, size],
    ] as const) {
      const r = await http("GET", narUrl, { headers: { Range: range } });
      assert.equal(r.status, 206, range);
      assert.ok(r.body.equals(full.subarray(a, z)), range);
    }
    assert.equal((await http("GET", narUrl, { headers: { Range: `bytes=${size}-` } })).status, 416);

    assert.equal(await srv.stop(), 0, `graceful shutdown:\n${srv.stderr()}`);
  });

  test("nix copy --to without credentials is refused (401); a read-only server refuses uploads (403)", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    const n = nixRunner();
    const creds = join(dir, "creds");
    writeFileSync(creds, `${CREDENTIALS}\n`);
    const top = n.run("nix-build", [REFS_NIX, "--no-out-link"]).trim().split("\n").pop()!;
    const guarded = await spawnServe(
      t,
      ["--allow-upload", "--upload-credentials-file", creds],
      defaultStoreEnv(dir),
    );
    let r = n.attempt("nix", ["copy", "--to", guarded.url, top]);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /401/);
    const ro = await spawnServe(t, [], defaultStoreEnv(join(dir, "ro")));
    assert.match(ro.banner, /^uploads: disabled$/m);
    r = n.attempt("nix", ["copy", "--to", ro.url, top]);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /403/);
    assert.equal((await http("GET", `${guarded.url}/${top.slice(11, 43)}.narinfo`)).status, 404);
  });
});
