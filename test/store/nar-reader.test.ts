import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AbortedError, InvalidInputError } from "../../src/errors.js";
import { NarParseError, type ReadNarOptions, readNar } from "../../src/store/nar/reader.js";
import {
  b,
  chunked,
  collectTree,
  deepNar,
  dir,
  file,
  NarWriter,
  nar,
  symlink,
  type Tree,
} from "../helpers/nar-tree.js";

const CHUNKINGS = [1, 3, 7, 8, 13, 64, 4096, Number.MAX_SAFE_INTEGER];

/** Parses `bytes` in chunks of `size`; it must fail with a NarParseError, which is returned. */
async function parseFailure(
  bytes: Uint8Array,
  size: number,
  options: ReadNarOptions = {},
  what = `chunk size ${size}`,
): Promise<NarParseError> {
  const err = await collectTree(readNar(chunked(bytes, size), options)).then(
    () => assert.fail(`parsed (${what})`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof NarParseError, `${what}: ${String(err)}`);
  return err;
}

/** Parses with several chunkings; all must give the same error, which is returned. */
async function parseError(bytes: Uint8Array): Promise<NarParseError> {
  let first: NarParseError | undefined;
  for (const size of CHUNKINGS) {
    const err = await parseFailure(bytes, size);
    if (first === undefined) first = err;
    else assert.equal(err.message, first.message, `chunk size ${size}`);
  }
  return first!;
}

async function expectError(bytes: Uint8Array, offset: number, re?: RegExp): Promise<void> {
  const err = await parseError(bytes);
  assert.equal(err.offset, offset, err.message);
  assert.ok(err.message.endsWith(` at byte ${offset}`), err.message);
  assert.ok(err instanceof InvalidInputError);
  if (re !== undefined) assert.match(err.message, re);
}

// --- round trips ------------------------------------------------------------

const long = new Uint8Array(20_000).map((_, i) => (i * 7) & 255);
const trees: Record<string, Tree> = {
  "empty file": file(""),
  "file with contents": file("hello\n"),
  "executable file": file("#!/bin/sh\n", true),
  "file of 8 bytes": file("12345678"),
  "large file": file(long),
  "symlink root": symlink("/nix/store/abc"),
  "long symlink target": symlink("x".repeat(4095)),
  "empty directory": dir(),
  nested: dir({
    a: dir({ b: dir({ c: file("deep") }), e: dir() }),
    "b c": file("space", true),
    z: file(""),
    "é ü": symlink("../a"),
  }),
  "max-length name": dir({ ["n".repeat(255)]: file("x") }),
  "bytewise order (not UTF-16)": dir([
    [b("Z"), file("")],
    [b("a"), file("")],
    [b("\u{ff61}"), file("")],
    [b("\u{1f600}"), file("")],
  ]),
  "non-UTF-8 name": dir([[new Uint8Array([0xff, 0xfe]), file("")]]),
};

describe("readNar round trips", () => {
  for (const [label, tree] of Object.entries(trees)) {
    test(label, async () => {
      const bytes = nar(tree);
      for (const size of CHUNKINGS) {
        assert.deepEqual(
          await collectTree(readNar(chunked(bytes, size))),
          tree,
          `chunk size ${size}`,
        );
      }
    });
  }

  test("events come in NAR order with paths from the root", async () => {
    const tree = dir({ a: dir({ x: file("1", true) }), b: symlink("a") });
    const seen: string[] = [];
    const dec = new TextDecoder();
    for await (const ev of readNar(chunked(nar(tree), 5))) {
      const p = `/${ev.path.map((c) => dec.decode(c)).join("/")}`;
      if (ev.type === "file") seen.push(`file ${p} ${ev.executable} ${ev.size}`);
      else if (ev.type === "symlink") seen.push(`symlink ${p} -> ${dec.decode(ev.target)}`);
      else seen.push(`${ev.type} ${p}`);
    }
    assert.deepEqual(seen, [
      "directory /",
      "directory /a",
      "file /a/x true 1",
      "end /a",
      "symlink /b -> a",
      "end /",
    ]);
  });

  test("unread or partly read contents are skipped", async () => {
    const tree = dir({ a: file(long), b: file(long.subarray(0, 1001), true), c: symlink("t") });
    const types: string[] = [];
    let i = 0;
    for await (const ev of readNar(chunked(nar(tree), 4096))) {
      types.push(ev.type);
      if (ev.type === "file" && i++ === 1) {
        for await (const _ of ev.contents) break;
      }
    }
    assert.deepEqual(types, ["directory", "file", "file", "symlink", "end"]);
  });

  test("contents are views of the source chunks, not copies", async () => {
    const bytes = nar(file(long));
    for await (const ev of readNar(chunked(bytes, bytes.length))) {
      assert.equal(ev.type, "file");
      if (ev.type !== "file") continue;
      for await (const c of ev.contents) assert.equal(c.buffer, bytes.buffer);
    }
  });

  test("contents cannot be read after the next event was requested", async () => {
    const gen = readNar(chunked(nar(dir({ a: file("x"), b: file("y") })), 3));
    await gen.next();
    const first = await gen.next();
    assert.ok(!first.done && first.value.type === "file");
    await gen.next();
    const it = first.value.contents[Symbol.asyncIterator]();
    await assert.rejects(it.next(), InvalidInputError);
    await gen.return();
  });

  test("5,000 nested directories parse without deep recursion", async () => {
    const depth = 5000;
    const bytes = deepNar(depth, ["f", file("bottom")]);
    let dirs = 0;
    let ends = 0;
    let deepest = 0;
    for await (const ev of readNar(chunked(bytes, 65536))) {
      if (ev.type === "directory") dirs++;
      if (ev.type === "end") ends++;
      if (ev.type === "file") deepest = ev.path.length;
    }
    assert.equal(dirs, depth + 1);
    assert.equal(ends, depth + 1);
    assert.equal(deepest, depth + 1);
    // The same depth with an error at the bottom still reports it.
    const err = await parseFailure(bytes.subarray(0, bytes.length - 8), 4096);
    assert.equal(err.offset, bytes.length - 8);
  });

  test("nesting beyond maxDepth is rejected at the entry that goes too deep", async () => {
    const tree = dir({ a: dir({ b: dir({ c: file("") }) }) });
    assert.deepEqual(await collectTree(readNar(chunked(nar(tree), 8), { maxDepth: 3 })), tree);
    const w = new NarWriter().strs("nix-archive-1", "(", "type", "directory");
    w.strs("entry", "(", "name", "a", "node", "(", "type", "directory");
    w.strs("entry", "(", "name", "b", "node", "(", "type", "directory");
    const at = w.length;
    w.strs("entry", "(", "name", "c", "node").node(file("")).strs(")", ")", ")", ")", ")", ")");
    const err = await parseFailure(w.bytes(), 8, { maxDepth: 2 });
    assert.equal(err.offset, at);
    assert.match(err.message, /deeper than 2 levels/);
  });
});

// --- malformed input ----------------------------------------------------------

/** The offset right after the magic, `(`, `type`: where the node type token starts. */
const TYPE_AT = 24 + 16 + 16;

describe("readNar rejects malformed input with the byte offset", () => {
  test("bad magic", async () => {
    await expectError(new Uint8Array(0), 0, /end of input/);
    await expectError(new NarWriter().str("nix-archive-2").node(file("")).bytes(), 0, /magic/);
    await expectError(new NarWriter().str("nix-archive").node(file("")).bytes(), 0, /magic/);
    await expectError(new NarWriter().u64(1n << 40n).bytes(), 0, /magic/);
    await expectError(b("nix-archive-1"), 0);
  });

  test("wrong and unknown tokens", async () => {
    const w = () => new NarWriter().str("nix-archive-1");
    await expectError(w().strs("[", "type").bytes(), 24, /expected '\('/);
    await expectError(w().strs("(", "typ", "regular").bytes(), 40, /expected 'type', got "typ"/);
    await expectError(w().strs("(", "type", "fifo").bytes(), TYPE_AT, /expected 'regular' or/);
    await expectError(w().strs("(", "type", "regular", "size").bytes(), TYPE_AT + 16);
    await expectError(
      w().strs("(", "type", "regular", "executable", "1").bytes(),
      TYPE_AT + 16 + 24,
      /expected ''/,
    );
    await expectError(
      w().strs("(", "type", "regular", "contents", "").strs("executable").bytes(),
      TYPE_AT + 16 + 16 + 8,
      /expected '\)'/,
    );
    await expectError(w().strs("(", "type", "symlink", "link", "x").bytes(), TYPE_AT + 16);
    await expectError(w().strs("(", "type", "directory", "entries").bytes(), TYPE_AT + 24);
    const entry = (...ss: string[]) =>
      w()
        .strs("(", "type", "directory", "entry", ...ss)
        .bytes();
    await expectError(entry("[", "name"), TYPE_AT + 40, /expected '\('/);
    await expectError(entry("(", "nom"), TYPE_AT + 56, /expected 'name'/);
    await expectError(entry("(", "name", "a", "nod"), TYPE_AT + 88, /expected 'node'/);
    // The entry's ")" after its node.
    const noClose = w()
      .strs("(", "type", "directory", "entry", "(", "name", "a", "node")
      .node(file(""))
      .strs("entry")
      .bytes();
    await expectError(noClose, noClose.length - 16, /expected '\)'/);
  });

  test("entries out of order and duplicates", async () => {
    /** A directory of two entries, in this order: `x` (an empty file), then `y`. */
    const twoEntries = (x: string, y: string, yNode = file("")): Uint8Array =>
      nar(
        dir([
          [b(x), file("")],
          [b(y), yNode],
        ]),
      );
    const second = nar(dir([[b("b"), file("")]])).length - 16 + 16 + 16 + 16;
    await expectError(twoEntries("b", "a"), second, /not sorted/);
    await expectError(twoEntries("a", "a", dir()), second, /duplicate/);
    // Bytewise, not by UTF-16 code units: U+FF61 (ef bd a1) sorts before U+1F600 (f0 ...).
    await expectError(twoEntries("\u{1f600}", "\u{ff61}"), second, /not sorted/);
    // A prefix sorts first.
    await expectError(twoEntries("ab", "a"), second, /not sorted/);
  });

  test("invalid entry names", async () => {
    const nameAt = TYPE_AT + 24 + 16 + 16 + 16;
    const bad: [Uint8Array, RegExp][] = [
      [b(""), /empty/],
      [b("."), /'\.'/],
      [b(".."), /'\.\.'/],
      [b("a/b"), /'\/'/],
      [b("/"), /'\/'/],
      [new Uint8Array([0x61, 0, 0x62]), /NUL/],
      [b("n".repeat(256)), /longer than 255/],
    ];
    for (const [name, re] of bad) await expectError(nar(dir([[name, file("")]])), nameAt, re);
    // Too long is decided from the length alone, before any name byte is read.
    await expectError(
      new NarWriter()
        .strs("nix-archive-1", "(", "type", "directory", "entry", "(", "name")
        .u64(100_000_000)
        .bytes(),
      nameAt,
      /longer than 255/,
    );
  });

  test("invalid symlink targets", async () => {
    const targetAt = TYPE_AT + 16 + 16;
    await expectError(nar(symlink("")), targetAt, /empty/);
    await expectError(nar(symlink(new Uint8Array([0x61, 0]))), targetAt, /NUL/);
    await expectError(nar(symlink("x".repeat(4096))), targetAt, /longer than 4095/);
    await expectError(
      new NarWriter()
        .strs("nix-archive-1", "(", "type", "symlink", "target")
        .u64(1n << 52n)
        .bytes(),
      targetAt,
      /longer than 4095/,
    );
  });

  test("non-zero padding", async () => {
    const typeTok = nar(file("abc"));
    typeTok[TYPE_AT + 8 + 7] = 1; // the padding byte after "regular"
    await expectError(typeTok, TYPE_AT + 15, /padding/);
    const contents = nar(file("abc"));
    const padAt = TYPE_AT + 16 + 16 + 8 + 3;
    contents[padAt + 2] = 0x80;
    await expectError(contents, padAt + 2, /padding/);
    const name = nar(dir({ abc: file("") }));
    const nameAt = TYPE_AT + 24 + 16 + 16 + 16;
    name[nameAt + 8 + 3] = 0x20;
    await expectError(name, nameAt + 11, /padding/);
    const magic = nar(file(""));
    magic[8 + 13] = 1;
    await expectError(magic, 21, /padding/);
  });

  test("truncation anywhere reports where the input ended", async () => {
    const bytes = nar(dir({ a: file("hello", true), b: symlink("x"), c: dir({ d: file("") }) }));
    for (let n = 0; n < bytes.length; n++) {
      const err = await parseFailure(bytes.subarray(0, n), 5, {}, `prefix of ${n} bytes`);
      assert.equal(err.offset, n, err.message);
      assert.match(err.message, /unexpected end of input/);
    }
    const big = nar(file(long));
    await expectError(big.subarray(0, 5000), 5000, /end of input in file contents/);
  });

  test("trailing bytes after the root node", async () => {
    for (const tree of [file("x"), symlink("y"), dir({ a: dir() })]) {
      const bytes = nar(tree);
      const extended = new NarWriter().raw(bytes).raw(new Uint8Array(8)).bytes();
      await expectError(extended, bytes.length, /trailing bytes/);
      await expectError(
        new NarWriter()
          .raw(bytes)
          .raw(new Uint8Array([1]))
          .bytes(),
        bytes.length,
      );
    }
  });

  test("absurd lengths are rejected before allocating", async () => {
    const w = () => new NarWriter().str("nix-archive-1");
    for (const n of [2n ** 32n, 2n ** 52n, 2n ** 53n - 1n, 100_000_000n]) {
      await expectError(w().strs("(").u64(n).bytes(), 40, /expected 'type'/);
    }
    for (const n of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
      await expectError(w().strs("(").u64(n).bytes(), 40, /exceeds 2\^53-1/);
      await expectError(
        w().strs("(", "type", "regular", "contents").u64(n).bytes(),
        TYPE_AT + 32,
        /exceeds 2\^53-1/,
      );
    }
    // The largest allowed file is streamed: it fails only where the input ends.
    const huge = w()
      .strs("(", "type", "regular", "contents")
      .u64(2n ** 53n - 1n);
    huge.raw(new Uint8Array(1000));
    await expectError(huge.bytes(), huge.length, /end of input in file contents/);
  });
});

// --- the source and cancellation ------------------------------------------------

describe("readNar and its source", () => {
  test("an aborted signal stops parsing with AbortedError", async () => {
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await assert.rejects(
      collectTree(readNar(chunked(nar(file("x")), 8), { signal: ac.signal })),
      AbortedError,
    );

    const ac2 = new AbortController();
    const gen = readNar(chunked(nar(dir({ a: file("x"), b: file("y") })), 8), {
      signal: ac2.signal,
    });
    await gen.next();
    ac2.abort();
    await assert.rejects(gen.next(), AbortedError);
  });

  test("abort interrupts a source that never yields", async () => {
    let released = false;
    const stuck: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: () => new Promise<IteratorResult<Uint8Array>>(() => {}),
        return: async () => {
          released = true;
          return { done: true, value: undefined };
        },
      }),
    };
    const ac = new AbortController();
    const p = collectTree(readNar(stuck, { signal: ac.signal }));
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, AbortedError);
    assert.ok(released, "the source was released");
  });

  test("the source is released on errors and early exits; its errors pass through", async () => {
    let finished = 0;
    async function* tracked(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
      try {
        yield* chunked(bytes, 4);
      } finally {
        finished++;
      }
    }
    const bad = nar(file("abc"));
    bad[30] = 9;
    await assert.rejects(collectTree(readNar(tracked(bad))), NarParseError);
    for await (const _ of readNar(tracked(nar(dir({ a: dir() }))))) break;
    assert.equal(finished, 2);

    const boom = new Error("network down");
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield nar(file("abc")).subarray(0, 30);
      throw boom;
    }
    await assert.rejects(collectTree(readNar(failing())), (e) => e === boom);
  });
});
