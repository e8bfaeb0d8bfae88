/**
 * The store commands against real Nix 2.8 (issue 5 acceptance): the corpus
 * through the default store, a closure with references and signatures copied
 * from the local Nix store, and interrupted imports.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { defaultStoreEnv, runStrata } from "../helpers/cli.js";
import { corpusDir, corpusItems, expectedItems } from "../helpers/corpus.js";
import { nix, nixBinary, requireNix, tempStoreRoot } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

/** Runs `fn` over `items`, `limit` at a time (each strata call is a process start). */
async function pmap<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

async function ok(args: string[], env: NodeJS.ProcessEnv, input?: Uint8Array): Promise<Buffer> {
  const r = await runStrata(args, input, env);
  assert.equal(r.code, 0, `strata ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

describe("store commands on the embedded default store", () => {
  test("import prints what the recording says nix-store --add creates; dump/path-info/export agree", async (t) => {
    const env = defaultStoreEnv(tempDir(t));
    const items = corpusItems();
    const expected = expectedItems();
    const paths = (await ok(["import", "--quiet", ...items.map((i) => join(corpusDir(), i))], env))
      .toString()
      .trim()
      .split("\n");
    assert.deepEqual(
      paths,
      items.map((i) => expected.get(i)!.storePath),
    );
    const json = JSON.parse((await ok(["path-info", "--json", ...paths], env)).toString()) as {
      path: string;
      narHash: string;
      narSize: number;
      ca: string;
    }[];
    for (const [i, item] of items.entries()) {
      const e = expected.get(item)!;
      assert.deepEqual(
        {
          path: json[i]!.path,
          narHash: json[i]!.narHash,
          narSize: json[i]!.narSize,
          ca: json[i]!.ca,
        },
        { path: e.storePath, narHash: e.narHashSri, narSize: e.narSize, ca: e.ca },
      );
    }
  });

  test("corpus vs live Nix: import, nar dump, path-info --json, nar import, export", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    const env = defaultStoreEnv(dir);
    const root = tempStoreRoot();
    const items = corpusItems();
    const sources = items.map((i) => join(corpusDir(), i));
    const nixPaths = nix("nix-store", ["--store", root, "--add", ...sources])
      .trim()
      .split("\n");
    const ours = (await ok(["import", ...sources], env)).toString().trim().split("\n");
    assert.deepEqual(ours, nixPaths);
    const theirsJson = JSON.parse(
      nix("nix", ["path-info", "--store", root, "--json", ...nixPaths]),
    ) as Record<string, unknown>[];
    const oursJson = JSON.parse(
      (await ok(["path-info", "--json", ...ours], env)).toString(),
    ) as Record<string, unknown>[];
    await pmap(nixPaths, 4, async (p, i) => {
      const a = theirsJson.find((x) => x.path === p)!;
      const b = oursJson[i]!;
      assert.deepEqual(
        [b.narHash, b.narSize, b.ca, b.references],
        [a.narHash, a.narSize, a.ca, a.references],
        p,
      );
      const nixNar = nixBinary("nix-store", ["--dump", join(root, p)]);
      assert.ok((await ok(["nar", "dump", p], env)).equals(nixNar), `${p}: nar dump`);
      // Nix's NAR into a second store via nar import, then dumped again.
      const env2 = defaultStoreEnv(join(dir, `second-${i}`));
      const imported = (await ok(["nar", "import", "--name", items[i]!], env2, nixNar))
        .toString()
        .trim();
      assert.equal(imported, p);
      assert.ok((await ok(["nar", "dump", p], env2)).equals(nixNar), `${p}: nar import + dump`);
      const dest = join(dir, `export-${i}`);
      await ok(["export", p, dest], env);
      assert.equal(nix("nix", ["hash", "path", dest]).trim(), a.narHash, `${p}: export`);
    });
  });

  test("copy keeps store paths, references, deriver and signatures of a Nix-built closure", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    const env = defaultStoreEnv(dir);
    const expr = join(import.meta.dirname, "../../../test/fixtures/refs.nix");
    const top = nix("nix-build", [expr, "--no-out-link"]).trim().split("\n").pop()!;
    const key = join(dir, "sk");
    writeFileSync(key, nix("nix", ["key", "generate-secret", "--key-name", "strata-test-1"]));
    nix("nix", ["store", "sign", "--key-file", key, "-r", top]);
    const closureFile = join(dir, "closure.json");
    const closure = nix("nix", ["path-info", "--json", "-r", top]);
    writeFileSync(closureFile, closure);
    const copied = (await ok(["copy", closureFile], env)).toString().trim().split("\n");
    const theirs = JSON.parse(closure) as {
      path: string;
      references: string[];
      deriver?: string;
      signatures?: string[];
      narHash: string;
    }[];
    assert.deepEqual([...copied].sort(), theirs.map((x) => x.path).sort());
    const ours = JSON.parse(
      (await ok(["path-info", "--json", "--recursive", top], env)).toString(),
    ) as typeof theirs;
    assert.equal(ours.length, theirs.length);
    for (const a of theirs) {
      const b = ours.find((x) => x.path === a.path)!;
      assert.deepEqual(b.references, [...a.references].sort());
      assert.equal(b.deriver, a.deriver);
      assert.equal(b.narHash, a.narHash);
      assert.deepEqual([...(b.signatures ?? [])].sort(), [...(a.signatures ?? [])].sort());
      assert.ok(
        (a.signatures ?? []).some((s) => s.startsWith("strata-test-1:")),
        "signed by the test key",
      );
    }
    assert.ok(
      (await ok(["nar", "dump", top], env)).equals(nixBinary("nix-store", ["--dump", top])),
    );
    // Reading the closure from stdin works too, and copying again is a no-op.
    assert.deepEqual(
      (await ok(["copy", "-"], env, Buffer.from(closure))).toString().trim().split("\n").sort(),
      [...copied].sort(),
    );
  });

  test("an interrupted import leaves a consistent store; rerunning completes", async (t) => {
    const dir = tempDir(t);
    const env = defaultStoreEnv(dir);
    const sources = corpusItems().map((i) => join(corpusDir(), i));
    for (const signal of ["SIGINT", "SIGKILL"] as const) {
      const child = spawn(
        process.execPath,
        [join(import.meta.dirname, "../../src/cli/main.js"), "import", "--quiet", ...sources],
        {
          env: { ...process.env, ...env },
          stdio: "ignore",
        },
      );
      const closed = new Promise((r) => child.on("close", r));
      await new Promise((r) => setTimeout(r, 300));
      child.kill(signal);
      await closed;
    }
    // Every PathInfo that exists must render completely (no missing blob or directory).
    const done = (await ok(["import", "--quiet", ...sources], env)).toString().trim().split("\n");
    for (const p of done) await ok(["nar", "dump", p], env);
    const expected = expectedItems();
    assert.deepEqual(
      done,
      corpusItems().map((i) => expected.get(i)!.storePath),
    );
  });
});
