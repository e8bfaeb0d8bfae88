import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AbortedError, InvalidInputError, StorageError } from "../../src/errors.js";
import { NarParseError } from "../../src/store/nar/reader.js";
import { restoreNar } from "../../src/store/nar/restore-fs.js";
import { b, chunked, deepNar, dir, file, nar, symlink } from "../helpers/nar-tree.js";
import { nixBinary, requireNix } from "../helpers/nix.js";
import { tempDir } from "../helpers/tmp.js";

const big = randomBytes(300_000);
/** A directory with a big file, an executable, an empty dir, a symlink and a non-UTF-8 name. */
const SAMPLE = nar(
  dir([
    [b("a"), file(big)],
    [b("b"), file("#!/bin/sh\n", true)],
    [b("c"), dir()],
    [b("d"), symlink("../nowhere")],
    [new Uint8Array([0xff, 0x41]), file("")],
  ]),
);
/** A directory with an entry named "..". */
const DOT_DOT = nar(dir({ "..": file("x") }));

const mode = (p: string): number => lstatSync(p).mode & 0o7777;

/** Lists a tree as `path type mode [size|target]` lines, to compare two trees. */
function describeTree(root: string, rel = ""): string[] {
  const p = join(root, rel);
  const st = lstatSync(p);
  const m = (st.mode & 0o7777).toString(8);
  if (st.isSymbolicLink()) return [`${rel} symlink -> ${readlinkSync(p)}`];
  if (st.isFile()) return [`${rel} file ${m} ${st.size}`];
  const out = [`${rel} dir ${m}`];
  for (const name of readdirSync(p).sort()) out.push(...describeTree(root, join(rel, name)));
  return out;
}

function makeTree(root: string): void {
  mkdirSync(root);
  writeFileSync(join(root, "hello.txt"), "hello\n");
  writeFileSync(join(root, "empty"), "");
  writeFileSync(join(root, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "run.sh"), 0o755);
  writeFileSync(join(root, "empty-exec"), "");
  chmodSync(join(root, "empty-exec"), 0o700);
  writeFileSync(join(root, "big.bin"), randomBytes(1_000_003));
  writeFileSync(join(root, "read-only"), "ro");
  chmodSync(join(root, "read-only"), 0o400);
  mkdirSync(join(root, "empty-dir"));
  mkdirSync(join(root, "a", "b", "c"), { recursive: true });
  writeFileSync(join(root, "a", "b", "c", "deep"), "deep");
  mkdirSync(join(root, "ünï cödé 日本 😀"));
  writeFileSync(join(root, "ünï cödé 日本 😀", "with space"), "x".repeat(4097));
  symlinkSync("hello.txt", join(root, "link"));
  symlinkSync("/nonexistent/target", join(root, "dangling"));
  symlinkSync("../../..", join(root, "a", "b", "up"));
  symlinkSync("t".repeat(1000), join(root, "long-link"));
}

/** Entries in `dir` other than those listed. */
function leftovers(dir: string, expected: string[]): string[] {
  return readdirSync(dir).filter((n) => !expected.includes(n));
}

describe("restoreNar against nix-store", () => {
  test("nix-store --dump | restoreNar | nix-store --dump gives the same bytes", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    const src = join(dir, "src");
    makeTree(src);
    const nar = nixBinary("nix-store", ["--dump", src]);
    for (const size of [65536, 4093, 1 << 20]) {
      const dest = join(dir, `out-${size}`);
      await restoreNar(chunked(nar, size), dest);
      assert.ok(nixBinary("nix-store", ["--dump", dest]).equals(nar), `chunk size ${size}`);
    }
    // The same file modes as `nix-store --restore`.
    const byNix = join(dir, "by-nix");
    nixBinary("nix-store", ["--restore", byNix], nar);
    assert.deepEqual(describeTree(join(dir, "out-65536")), describeTree(byNix));
    assert.equal(mode(join(byNix, "run.sh")), 0o755);
    assert.equal(mode(join(byNix, "hello.txt")), 0o644);
    assert.equal(mode(join(byNix, "empty-dir")), 0o755);
    assert.deepEqual(leftovers(dir, ["src", "by-nix", "out-65536", "out-4093", "out-1048576"]), []);
  });

  test("the root may be a file, an executable or a symlink", async (t) => {
    if (!requireNix(t)) return;
    const dir = tempDir(t);
    writeFileSync(join(dir, "f"), "plain");
    writeFileSync(join(dir, "x"), "#!");
    chmodSync(join(dir, "x"), 0o755);
    symlinkSync("somewhere/else", join(dir, "l"));
    for (const name of ["f", "x", "l"]) {
      const nar = nixBinary("nix-store", ["--dump", join(dir, name)]);
      await restoreNar(chunked(nar, 100), join(dir, `${name}.out`));
      nixBinary("nix-store", ["--restore", join(dir, `${name}.nix`)], nar);
      assert.ok(nixBinary("nix-store", ["--dump", join(dir, `${name}.out`)]).equals(nar), name);
      assert.deepEqual(
        describeTree(join(dir, `${name}.out`)),
        describeTree(join(dir, `${name}.nix`)),
      );
    }
  });
});

describe("restoreNar", () => {
  test("restores a hand-built NAR with Nix's modes, whatever the umask", async (t) => {
    const dir = tempDir(t);
    const old = process.umask(0o077);
    try {
      await restoreNar(chunked(SAMPLE, 1000), join(dir, "out"));
    } finally {
      process.umask(old);
    }
    const out = join(dir, "out");
    assert.equal(mode(out), 0o755);
    assert.ok(readFileSync(join(out, "a")).equals(big));
    assert.equal(mode(join(out, "a")), 0o644);
    assert.equal(mode(join(out, "b")), 0o755);
    assert.equal(mode(join(out, "c")), 0o755);
    assert.deepEqual(readdirSync(join(out, "c")), []);
    assert.equal(readlinkSync(join(out, "d")), "../nowhere");
    const names = readdirSync(out, { encoding: "buffer" }).map((n) => n.toString("hex"));
    assert.deepEqual(names.sort(), ["61", "62", "63", "64", "ff41"]);
    // A trailing slash names the same DEST.
    await restoreNar(chunked(SAMPLE, 65536), `${join(dir, "out2")}/`);
    assert.ok(readFileSync(join(dir, "out2", "a")).equals(big));
    assert.deepEqual(leftovers(dir, ["out", "out2"]), []);
  });

  test("a truncated or corrupt NAR leaves neither DEST nor a temporary directory", async (t) => {
    const dir = tempDir(t);
    const dest = join(dir, "out");
    const cuts = [0, 7, 100, 200, 1000, 150_000, SAMPLE.length - 300, SAMPLE.length - 1];
    for (const cut of cuts) {
      await assert.rejects(restoreNar(chunked(SAMPLE.subarray(0, cut), 4096), dest), (e) => {
        assert.ok(e instanceof NarParseError, String(e));
        assert.equal(e.offset, cut);
        return true;
      });
      assert.deepEqual(readdirSync(dir), [], `cut at ${cut}`);
    }
    const corrupt = Buffer.from(SAMPLE);
    corrupt[SAMPLE.length - 20] = 1; // padding of the last entry's ")"
    await assert.rejects(restoreNar(chunked(corrupt, 4096), dest), NarParseError);
    const trailing = Buffer.concat([SAMPLE, Buffer.alloc(8)]);
    await assert.rejects(restoreNar(chunked(trailing, 4096), dest), NarParseError);
    await assert.rejects(restoreNar(chunked(DOT_DOT, 4096), dest), NarParseError);
    assert.deepEqual(readdirSync(dir), []);
  });

  test("source errors and aborts clean up too", async (t) => {
    const dir = tempDir(t);
    const dest = join(dir, "out");
    const boom = new Error("connection reset");
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield* chunked(SAMPLE.subarray(0, 200_000), 65536);
      throw boom;
    }
    await assert.rejects(restoreNar(failing(), dest), (e) => e === boom);
    assert.deepEqual(readdirSync(dir), []);

    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield SAMPLE.subarray(0, 200_000);
      ac.abort();
      yield SAMPLE.subarray(200_000);
    }
    await assert.rejects(restoreNar(slow(), dest, { signal: ac.signal }), AbortedError);
    await assert.rejects(
      restoreNar(chunked(SAMPLE, 10), dest, { signal: ac.signal }),
      AbortedError,
    );
    assert.deepEqual(readdirSync(dir), []);

    await assert.rejects(restoreNar(chunked(SAMPLE, 4096), join(dir, "no", "dest")), StorageError);
    assert.deepEqual(readdirSync(dir), []);
  });

  test("a tree too deep for the file system fails cleanly", async (t) => {
    const dir = tempDir(t);
    const deep = deepNar(3000);
    await assert.rejects(restoreNar(chunked(deep, 65536), join(dir, "out")), (e) => {
      assert.ok(e instanceof StorageError, String(e));
      assert.match(e.message, /longer than 4095 bytes/);
      return true;
    });
    assert.deepEqual(readdirSync(dir), []);
  });

  test("an existing DEST is rejected and left alone", async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, "empty-dir"));
    writeFileSync(join(dir, "file"), "keep");
    symlinkSync("nowhere", join(dir, "dangling"));
    for (const name of ["empty-dir", "file", "dangling"]) {
      await assert.rejects(restoreNar(chunked(SAMPLE, 65536), join(dir, name)), (e) => {
        assert.ok(e instanceof InvalidInputError && !(e instanceof NarParseError), String(e));
        assert.match(e.message, /already exists/);
        return true;
      });
    }
    assert.deepEqual(readdirSync(dir).sort(), ["dangling", "empty-dir", "file"]);
    assert.equal(readFileSync(join(dir, "file"), "utf8"), "keep");
    assert.deepEqual(readdirSync(join(dir, "empty-dir")), []);
  });
});
