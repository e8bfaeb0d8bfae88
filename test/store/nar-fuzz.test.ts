/**
 * Fuzzes readNar with mutants of seed NARs. Every mutant must either parse to
 * a tree whose canonical encoding is exactly the mutant (NAR is canonical),
 * or fail with NarParseError — never another exception, a hang, or an answer
 * that depends on how the input is chunked.
 *
 * Reproduce a failure with STRATA_FUZZ_SEED=<seed> (and STRATA_FUZZ_ONLY=<mutant
 * index> to run one mutant); STRATA_FUZZ_COUNT changes the number of mutants.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NarParseError, readNar } from "../../src/store/nar/reader.js";
import {
  b,
  collectTree,
  compareBytes,
  type DirectoryTree,
  file,
  NarWriter,
  sortedDir,
  symlink,
  type Tree,
} from "../helpers/nar-tree.js";

// --- the seeds' encoding, with where each token starts -----------------------

function encode(tree: Tree): { bytes: Uint8Array; tokens: number[] } {
  const w = new NarWriter().str("nix-archive-1").node(tree);
  w.tokens.push(w.length);
  return { bytes: w.bytes(), tokens: w.tokens };
}

/** The rules of ARCHITECTURE §2, restated independently of the parser. */
function validTree(tree: Tree): boolean {
  if (tree.type === "file") return true;
  if (tree.type === "symlink") {
    return tree.target.length > 0 && tree.target.length <= 4095 && !tree.target.includes(0);
  }
  for (let i = 0; i < tree.entries.length; i++) {
    const [name, child] = tree.entries[i]!;
    if (name.length === 0 || name.length > 255 || name.includes(0) || name.includes(0x2f))
      return false;
    if ((name.length === 1 || name.length === 2) && name.every((c) => c === 0x2e)) return false;
    if (i > 0 && compareBytes(tree.entries[i - 1]![0], name) >= 0) return false;
    if (!validTree(child)) return false;
  }
  return true;
}

// --- seeds -------------------------------------------------------------------

const wide: Record<string, Tree> = {};
for (let i = 0; i < 40; i++)
  wide[`f${String(i).padStart(2, "0")}`] = file("x".repeat(i % 17), i % 5 === 0);

const seeds: Record<string, Tree> = {
  "empty file root": file(""),
  "executable root": file("#!/bin/sh\necho hi\n", true),
  "symlink root": symlink("/nix/store/00000000000000000000000000000000-foo/bin"),
  "empty directory": sortedDir(),
  "nested directories": sortedDir({
    a: sortedDir({ b: sortedDir({ c: file("deep") }), e: sortedDir() }),
    z: file("z"),
  }),
  symlinks: sortedDir({ l1: symlink("x".repeat(4095)), l2: symlink("../a b"), l3: symlink("t") }),
  "unicode and space names": sortedDir({
    "a b": file(" "),
    ü: file("u", true),
    日本: sortedDir({ "😀": file("") }),
    "\u{ff61}": symlink("ü"),
  }),
  "wide directory": sortedDir(wide),
  "single file root": file(new Uint8Array(1000).map((_, i) => (i * 131) & 255)),
  mixed: sortedDir({
    bin: sortedDir({ run: file("#!", true), empty: file("", true) }),
    ["n".repeat(255)]: file(""),
    share: sortedDir({ doc: sortedDir(), link: symlink("../bin/run") }),
  }),
};

// --- mutations -----------------------------------------------------------------

type Rng = () => number;

/** mulberry32: small, fast and good enough to drive mutations reproducibly. */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)]!;

const INTERESTING_LENGTHS = [
  0n,
  1n,
  7n,
  8n,
  9n,
  255n,
  256n,
  4095n,
  4096n,
  2n ** 31n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
];
const KEYWORDS = [
  "(",
  ")",
  "type",
  "regular",
  "directory",
  "symlink",
  "executable",
  "",
  "contents",
].concat(["target", "entry", "name", "node", "nix-archive-1"]);

const token = (s: string): Uint8Array => new NarWriter().str(s).bytes();

function splice(bytes: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length - remove + insert.length);
  out.set(bytes.subarray(0, at));
  out.set(insert, at);
  out.set(bytes.subarray(at + remove), at + insert.length);
  return out;
}

/** One byte-level or token-level mutation; `tokens` are token start offsets of the seed. */
function mutateBytes(rng: Rng, input: Uint8Array, tokens: number[]): [Uint8Array, string] {
  const bytes = input.slice();
  const n = bytes.length;
  const boundary = (): number => Math.min(pick(rng, tokens), n);
  const tokenAt = (): [number, number] => {
    const i = int(rng, tokens.length - 1);
    const at = Math.min(tokens[i]!, n);
    return [at, Math.max(at, Math.min(tokens[i + 1]!, n))];
  };
  if (n === 0) return [token(pick(rng, KEYWORDS)), "replace the empty input by a token"];
  switch (int(rng, 12)) {
    case 0: {
      const at = int(rng, n);
      bytes[at]! ^= 1 << int(rng, 8);
      return [bytes, `flip bit at ${at}`];
    }
    case 1: {
      const at = int(rng, n);
      bytes[at] = pick(rng, [0, 1, 0x2f, 0x2e, 0xff, int(rng, 256)]);
      return [bytes, `overwrite byte ${at}`];
    }
    case 2: {
      const at = int(rng, n + 1);
      return [bytes.subarray(0, at), `truncate at ${at}`];
    }
    case 3: {
      const at = Math.max(0, Math.min(n, boundary() + pick(rng, [0, 0, 1, -1, 4, 7, 8, 9])));
      return [bytes.subarray(0, at), `truncate near boundary at ${at}`];
    }
    case 4: {
      const at = int(rng, n + 1);
      const ins = new Uint8Array(1 + int(rng, 16)).map(() => (rng() < 0.5 ? 0 : int(rng, 256)));
      return [splice(bytes, at, 0, ins), `insert ${ins.length} bytes at ${at}`];
    }
    case 5: {
      const at = int(rng, n);
      const len = 1 + int(rng, Math.min(24, n - at));
      return [splice(bytes, at, len, new Uint8Array(0)), `delete ${len} bytes at ${at}`];
    }
    case 6: {
      const [at, end] = tokenAt();
      if (end - at < 8) return [bytes, "no-op"];
      const v = pick(rng, INTERESTING_LENGTHS);
      const cur = new DataView(bytes.buffer).getBigUint64(at, true);
      const len =
        rng() < 0.5 ? v : BigInt.asUintN(64, cur + pick(rng, [1n, -1n, 8n, -8n, 2n ** 32n]));
      new DataView(bytes.buffer).setBigUint64(at, len, true);
      return [bytes, `length at ${at} := ${len}`];
    }
    case 7: {
      const [at, end] = tokenAt();
      return [splice(bytes, at, end - at, new Uint8Array(0)), `delete token at ${at}`];
    }
    case 8: {
      const [at, end] = tokenAt();
      return [splice(bytes, at, 0, bytes.slice(at, end)), `duplicate token at ${at}`];
    }
    case 9: {
      const i = int(rng, Math.max(1, tokens.length - 2));
      const a = Math.min(tokens[i]!, n);
      const m = Math.max(a, Math.min(tokens[i + 1]!, n));
      const e = Math.max(m, Math.min(tokens[i + 2] ?? n, n));
      const swapped = new Uint8Array(e - a);
      swapped.set(bytes.subarray(m, e), 0);
      swapped.set(bytes.subarray(a, m), e - m);
      return [splice(bytes, a, e - a, swapped), `swap tokens at ${a}`];
    }
    case 10: {
      const at = boundary();
      const kw = pick(rng, KEYWORDS);
      return [splice(bytes, at, 0, token(kw)), `insert token '${kw}' at ${at}`];
    }
    default: {
      const extra = new Uint8Array(1 + int(rng, 16));
      return [splice(bytes, n, 0, extra), `append ${extra.length} bytes`];
    }
  }
}

function cloneTree(t: Tree): Tree {
  if (t.type !== "directory") return t;
  return { type: "directory", entries: t.entries.map(([n, c]) => [n, cloneTree(c)]) };
}

function directories(t: Tree, out: DirectoryTree[] = []): typeof out {
  if (t.type === "directory") {
    out.push(t);
    for (const [, c] of t.entries) directories(c, out);
  }
  return out;
}

const BAD_NAMES = ["", ".", "..", "a/b", "a\0", "z".repeat(256)].map(b);

/** A structural mutation: swapped or duplicated entries, renames, odd targets. */
function mutateTree(rng: Rng, seed: Tree): [Tree, string] {
  const tree = cloneTree(seed);
  const dirs = directories(tree);
  const d = dirs.length > 0 ? pick(rng, dirs) : undefined;
  if (d === undefined || d.entries.length === 0) {
    if (tree.type === "symlink") {
      const target = pick(rng, [b(""), b("a\0b"), new Uint8Array(4096).fill(0x61), b("ok")]);
      return [{ type: "symlink", target }, `symlink root target of ${target.length} bytes`];
    }
    const entry: [Uint8Array, Tree] = [pick(rng, [...BAD_NAMES, b("new")]), file("")];
    if (d !== undefined) d.entries.push(entry);
    return [tree, "add an entry"];
  }
  const i = int(rng, d.entries.length);
  const j = int(rng, d.entries.length);
  switch (int(rng, 4)) {
    case 0: {
      const tmp = d.entries[i]!;
      d.entries[i] = d.entries[j]!;
      d.entries[j] = tmp;
      return [tree, `swap entries ${i} and ${j}`];
    }
    case 1:
      d.entries.splice(i, 0, [d.entries[i]![0], file("dup")]);
      return [tree, `duplicate entry ${i}`];
    case 2: {
      const name =
        rng() < 0.5
          ? pick(rng, BAD_NAMES)
          : new Uint8Array(1 + int(rng, 3)).map(() => int(rng, 256));
      d.entries[i] = [name, d.entries[i]![1]];
      return [tree, `rename entry ${i}`];
    }
    default:
      d.entries.splice(i, 1);
      return [tree, `remove entry ${i}`];
  }
}

// --- running one mutant -----------------------------------------------------------

type Outcome = { ok: true; tree: Tree } | { ok: false; error: NarParseError };

async function* chunks(bytes: Uint8Array, rng: Rng | undefined): AsyncGenerator<Uint8Array> {
  if (rng === undefined) {
    yield bytes;
    return;
  }
  for (let i = 0; i < bytes.length; ) {
    const size = 1 + (rng() < 0.7 ? int(rng, 16) : int(rng, 600));
    yield bytes.subarray(i, i + size);
    i += size;
  }
}

/** Parses `bytes`; with an rng, in random chunks and reading contents only partly. */
async function run(bytes: Uint8Array, rng: Rng | undefined): Promise<Outcome> {
  try {
    const tree = await collectTree(readNar(chunks(bytes, rng)), {
      check: false,
      ...(rng === undefined ? {} : { chunksToRead: () => int(rng, 4) }),
    });
    return { ok: true, tree };
  } catch (err) {
    if (err instanceof NarParseError) return { ok: false, error: err };
    throw err;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const BASE_SEED = Number(process.env.STRATA_FUZZ_SEED ?? 0x5eed2024);
const COUNT = Number(process.env.STRATA_FUZZ_COUNT ?? 12_000);
const ONLY =
  process.env.STRATA_FUZZ_ONLY === undefined ? undefined : Number(process.env.STRATA_FUZZ_ONLY);

test(`readNar survives ${COUNT} mutated NARs (seed ${BASE_SEED})`, {
  timeout: 120_000,
}, async () => {
  const seedList = Object.entries(seeds).map(([label, tree]) => ({ label, tree, ...encode(tree) }));
  for (const s of seedList) {
    assert.ok(validTree(s.tree), `seed ${s.label} is valid`);
    const out = await run(s.bytes, undefined);
    assert.ok(out.ok, `seed ${s.label} parses: ${out.ok ? "" : out.error.message}`);
    assert.deepEqual(out.tree, s.tree);
  }
  const stats = { parsed: 0, rejected: 0 };
  const started = performance.now();
  for (let i = 0; i < COUNT; i++) {
    if (ONLY !== undefined && i !== ONLY) continue;
    const rng = mulberry32(Math.imul(BASE_SEED, 0x9e3779b1) ^ i);
    const seed = seedList[i % seedList.length]!;
    let bytes: Uint8Array;
    let desc: string;
    let treeValid: boolean | undefined;
    if (rng() < 0.15) {
      const [tree, d] = mutateTree(rng, seed.tree);
      bytes = encode(tree).bytes;
      desc = d;
      treeValid = validTree(tree);
    } else {
      [bytes, desc] = mutateBytes(rng, seed.bytes, seed.tokens);
      if (rng() < 0.25) {
        const [more, d2] = mutateBytes(rng, bytes, seed.tokens);
        bytes = more;
        desc += `, then ${d2}`;
      }
    }
    const where = `seed ${BASE_SEED}, mutant ${i} (${seed.label}: ${desc})`;
    try {
      const whole = await withTimeout(run(bytes, undefined), 5000, where);
      const pieces = await withTimeout(run(bytes, mulberry32(i)), 5000, where);
      if (whole.ok) {
        stats.parsed++;
        assert.ok(validTree(whole.tree), "a parsed tree obeys the rules");
        assert.deepEqual(encode(whole.tree).bytes, bytes, "re-encoding gives the mutant back");
        assert.ok(pieces.ok, `chunked parse failed: ${pieces.ok ? "" : pieces.error.message}`);
        if (treeValid === false) assert.fail("an invalid tree parsed");
      } else {
        stats.rejected++;
        assert.ok(
          whole.error.offset >= 0 && whole.error.offset <= bytes.length,
          whole.error.message,
        );
        assert.ok(
          !pieces.ok,
          `chunked parse succeeded where the whole parse failed: ${whole.error.message}`,
        );
        assert.equal(pieces.error.message, whole.error.message, "same error whatever the chunking");
        if (treeValid === true) assert.fail(`a valid tree was rejected: ${whole.error.message}`);
      }
    } catch (err) {
      throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
  }
  const secs = (performance.now() - started) / 1000;
  console.log(`# fuzz: ${stats.parsed} parsed, ${stats.rejected} rejected in ${secs.toFixed(1)} s`);
  if (ONLY === undefined) assert.ok(stats.parsed > 0 && stats.rejected > stats.parsed);
});
