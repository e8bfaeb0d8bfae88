/**
 * The closure rules on their own: uploads leaves first, downloads root
 * first, and the traversal backends use for getRecursive.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type B3Digest, digestKey, formatB3 } from "../../src/castore/digest.js";
import {
  checkStoredChildren,
  LeavesFirstValidator,
  RootFirstValidator,
  walkClosure,
} from "../../src/castore/directory/closure-validator.js";
import { Directory } from "../../src/castore/directory.js";
import { directoryNode } from "../../src/castore/node.js";
import { IntegrityError, InvalidInputError } from "../../src/errors.js";
import { leaf, nodeOf, parent } from "../conformance/directory.js";

const A = leaf("a");
const B = parent("b", [A]);
const C = parent("c", [A, A]);
const D = parent("d", [B, C]);

function invalid(...parts: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof InvalidInputError, `InvalidInputError, got ${String(err)}`);
    for (const p of parts) assert.ok(err.message.includes(p), `'${p}' in: ${err.message}`);
    return true;
  };
}

function integrity(...parts: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof IntegrityError, `IntegrityError, got ${String(err)}`);
    for (const p of parts) assert.ok(err.message.includes(p), `'${p}' in: ${err.message}`);
    return true;
  };
}

const b3 = (d: Directory): string => formatB3(d.digest());

async function validate(dirs: readonly Directory[], v = new LeavesFirstValidator()) {
  for (const d of dirs) await v.add(d);
  return v.finish();
}

describe("LeavesFirstValidator", () => {
  test("accepts a closure leaves first and returns it in order with its root", async () => {
    const { directories, root } = await validate([A, B, C, D]);
    assert.deepEqual(directories.map(b3), [A, B, C, D].map(b3));
    assert.equal(formatB3(root), b3(D));
  });

  test("a directory sent twice is kept once", async () => {
    const { directories, root } = await validate([A, A, C]);
    assert.deepEqual(directories.map(b3), [A, C].map(b3));
    assert.equal(formatB3(root), b3(C));
  });

  test("a child not sent before its parent: names parent, entry, child and rule", async () => {
    const v = new LeavesFirstValidator({ context: "upload to x" });
    await assert.rejects(
      v.add(B),
      invalid("upload to x: ", `directory ${b3(B)}`, 'entry "d0"', b3(A), "leaves first"),
    );
    // The validator stays failed.
    await assert.rejects(v.add(A), InvalidInputError);
    await assert.rejects(v.finish(), InvalidInputError);
  });

  test("a wrong child size names both sizes", async () => {
    const bad = Directory.fromEntries([{ name: "x", node: directoryNode(A.digest(), A.size + 1) }]);
    const v = new LeavesFirstValidator();
    await v.add(A);
    await assert.rejects(
      v.add(bad),
      invalid(b3(bad), 'entry "x"', `records size ${A.size + 1}`, `size is ${A.size}`),
    );
  });

  test("more than one root lists them", async () => {
    const stray = leaf("stray");
    await assert.rejects(validate([A, stray, B]), invalid("2 roots", b3(stray), b3(B)));
  });

  test("the root must come last", async () => {
    await assert.rejects(
      validate([A, B, A]),
      invalid("last directory sent", b3(A), "not the root"),
    );
  });

  test("an empty upload is rejected", async () => {
    await assert.rejects(validate([]), invalid("no directories"));
  });

  test("children already stored: from a map of sizes or a lookup, sizes checked", async () => {
    const sizes = new Map([[digestKey(A.digest()), A.size]]);
    assert.equal(
      formatB3((await validate([B], new LeavesFirstValidator({ stored: sizes }))).root),
      b3(B),
    );
    const lookups: string[] = [];
    const stored = async (d: B3Digest): Promise<number | undefined> => {
      lookups.push(formatB3(d));
      return digestKey(d) === digestKey(A.digest()) ? A.size : undefined;
    };
    const { directories } = await validate([B, C, D], new LeavesFirstValidator({ stored }));
    // Stored children are not part of what is to be stored, and each is looked up once.
    assert.deepEqual(directories.map(b3), [B, C, D].map(b3));
    assert.deepEqual(lookups, [b3(A)]);
    const wrong = new Map([[digestKey(A.digest()), A.size + 5]]);
    await assert.rejects(
      validate([B], new LeavesFirstValidator({ stored: wrong })),
      invalid("size"),
    );
  });

  test("adds that are not awaited are applied in call order", async () => {
    const v = new LeavesFirstValidator();
    const pending = [A, B, C, D].map((d) => v.add(d));
    await Promise.all(pending);
    assert.equal(formatB3((await v.finish()).root), b3(D));
  });

  test("an aborted add rejects without failing the upload", async () => {
    const v = new LeavesFirstValidator();
    const c = new AbortController();
    c.abort();
    await assert.rejects(v.add(A, { signal: c.signal }), { code: "Aborted" });
    await v.add(A);
    assert.equal(formatB3((await v.finish()).root), b3(A));
  });
});

describe("checkStoredChildren", () => {
  test("accepts stored children of the right size, rejects others", async () => {
    const sizes = new Map([[digestKey(A.digest()), A.size]]);
    await checkStoredChildren(B, sizes, "put");
    await checkStoredChildren(A, new Map(), "put");
    await assert.rejects(checkStoredChildren(D, sizes, "put"), invalid("put: ", b3(D), b3(B)));
  });
});

describe("RootFirstValidator", () => {
  function receive(root: Directory, dirs: readonly Directory[]): RootFirstValidator {
    const v = new RootFirstValidator(root.digest(), "get from peer");
    for (const d of dirs) v.accept(d);
    v.finish();
    return v;
  }

  test("accepts a closure root first, breadth-first (and any parents-first order)", () => {
    assert.equal(receive(D, [D, B, C, A]).count, 4);
    assert.equal(receive(D, [D, C, A, B]).count, 4);
  });

  test("nothing received is an unknown root, not an error", () => {
    assert.equal(receive(D, []).count, 0);
  });

  test("expects() tells what may come next", () => {
    const v = new RootFirstValidator(D.digest());
    assert.ok(v.expects(D.digest()));
    assert.ok(!v.expects(A.digest()));
    v.accept(D);
    assert.ok(v.expects(B.digest()) && v.expects(C.digest()));
    assert.ok(!v.expects(D.digest()));
  });

  test("a directory that is not the root comes first", () => {
    const v = new RootFirstValidator(D.digest(), "get from peer");
    assert.throws(() => v.accept(B), integrity("get from peer: ", b3(B), "not referenced"));
  });

  test("an unrelated directory", () => {
    const v = new RootFirstValidator(B.digest());
    v.accept(B);
    assert.throws(() => v.accept(C), integrity(b3(C), "not referenced"));
  });

  test("a directory received twice", () => {
    const v = new RootFirstValidator(B.digest());
    v.accept(B);
    v.accept(A);
    assert.throws(() => v.accept(A), integrity(b3(A), "twice"));
  });

  test("a child whose size differs from what its parent records", () => {
    const fake = Directory.fromEntries([
      { name: "x", node: directoryNode(A.digest(), A.size + 1) },
    ]);
    const v = new RootFirstValidator(fake.digest());
    v.accept(fake);
    assert.throws(() => v.accept(A), integrity(b3(A), `size ${A.size}`, `records ${A.size + 1}`));
  });

  test("two parents recording different sizes for one child", () => {
    const liar = Directory.fromEntries([
      { name: "y", node: directoryNode(A.digest(), A.size + 2) },
    ]);
    const top = Directory.fromEntries([
      { name: "b", node: nodeOf(B) },
      { name: "liar", node: nodeOf(liar) },
    ]);
    const v = new RootFirstValidator(top.digest());
    v.accept(top);
    v.accept(B);
    assert.throws(() => v.accept(liar), integrity(b3(liar), 'entry "y"'));
  });

  test("finish lists what is missing", () => {
    const v = new RootFirstValidator(D.digest());
    v.accept(D);
    v.accept(B);
    assert.throws(() => v.finish(), integrity("incomplete", "2 referenced", b3(C), b3(A)));
  });
});

describe("walkClosure", () => {
  const store = new Map([A, B, C, D].map((d) => [digestKey(d.digest()), d]));
  const load = async (d: B3Digest): Promise<Directory | undefined> => store.get(digestKey(d));

  async function walk(root: Directory, from = load): Promise<string[]> {
    const out: string[] = [];
    for await (const d of walkClosure(root.digest(), from, undefined, "test store"))
      out.push(b3(d));
    return out;
  }

  test("root first, breadth-first, each once", async () => {
    assert.deepEqual(await walk(D), [D, B, C, A].map(b3));
  });

  test("an unknown root yields nothing", async () => {
    assert.deepEqual(await walk(leaf("unknown")), []);
  });

  test("a missing child is an IntegrityError naming parent, entry and child", async () => {
    const partial = async (d: B3Digest) =>
      digestKey(d) === digestKey(A.digest()) ? undefined : load(d);
    await assert.rejects(
      walk(D, partial),
      integrity("test store: ", b3(B), 'entry "d0"', b3(A), "missing"),
    );
  });

  test("a stored child of another size is an IntegrityError", async () => {
    const fake = Directory.fromEntries([
      { name: "x", node: directoryNode(A.digest(), A.size + 1) },
    ]);
    const withFake = async (d: B3Digest) =>
      digestKey(d) === digestKey(fake.digest()) ? fake : load(d);
    await assert.rejects(walk(fake, withFake), integrity(b3(fake), "size"));
  });

  test("an aborted signal stops the walk", async () => {
    const c = new AbortController();
    const it = walkClosure(D.digest(), load, { signal: c.signal }, "x")[Symbol.asyncIterator]();
    await it.next();
    c.abort();
    await assert.rejects(it.next(), { code: "Aborted" });
  });
});
