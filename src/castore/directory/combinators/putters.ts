/**
 * DirectoryPutter wrappers the directory combinators share: one that checks
 * the combinator is still open and forgets remembered misses of what it
 * stored, one that uploads to two stores at once (`write = "through"`), and
 * the leaves-first order of a closure received root first. Browser-safe.
 */
import { IntegrityError, StorageError } from "../../../errors.js";
import { bytesEqual } from "../../bytes.js";
import type { CallOptions } from "../../call-options.js";
import type { NegativeCache } from "../../combinators/negative-cache.js";
import { type CombinatorState, innerError } from "../../combinators/support.js";
import { type B3Digest, digestKey, formatB3 } from "../../digest.js";
import type { Directory } from "../../directory.js";
import type { DirectoryPutter } from "../service.js";

/**
 * Wraps a putter of an inner store: rejects calls once the combinator is
 * closed (a composition's inner stores outlive it), and after a successful
 * close forgets the misses of every directory sent. `putMultiple` itself
 * never throws (the suite's contract); problems surface in `put`/`close`.
 */
export class CombinatorPutter implements DirectoryPutter {
  readonly #inner: () => DirectoryPutter;
  readonly #state: CombinatorState;
  readonly #misses: NegativeCache | undefined;
  readonly #context: string;
  #opened: DirectoryPutter | undefined;
  #openError: unknown;
  readonly #sent: string[] = [];

  /** `inner` is called once, on first use (so that it may throw). */
  constructor(
    inner: () => DirectoryPutter,
    state: CombinatorState,
    misses: NegativeCache | undefined,
    context: string,
  ) {
    this.#inner = inner;
    this.#state = state;
    this.#misses = misses;
    this.#context = context;
  }

  #putter(options: CallOptions | undefined): DirectoryPutter {
    this.#state.check(options);
    if (this.#openError !== undefined) throw this.#openError;
    if (this.#opened === undefined) {
      try {
        this.#opened = this.#inner();
      } catch (err) {
        this.#openError = innerError(err, this.#context);
        throw this.#openError;
      }
    }
    return this.#opened;
  }

  async put(directory: Directory, options?: CallOptions): Promise<void> {
    await this.#putter(options).put(directory, options);
    if (this.#misses?.enabled === true) this.#sent.push(digestKey(directory.digest()));
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    const root = await this.#putter(options).close(options);
    for (const key of this.#sent) this.#misses?.forget(key);
    this.#misses?.forget(digestKey(root));
    return root;
  }

  async abort(reason?: unknown): Promise<void> {
    await this.#opened?.abort(reason);
  }
}

/** Uploads to near and far at once; both must accept it and agree on the root. */
export class ThroughPutter implements DirectoryPutter {
  readonly #near: DirectoryPutter;
  readonly #far: DirectoryPutter;
  readonly #what: string;

  constructor(near: DirectoryPutter, far: DirectoryPutter, what: string) {
    this.#near = near;
    this.#far = far;
    this.#what = what;
  }

  async put(directory: Directory, options?: CallOptions): Promise<void> {
    await Promise.all([this.#near.put(directory, options), this.#far.put(directory, options)]);
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    const near = await this.#near.close(options);
    let far: B3Digest;
    try {
      far = await this.#far.close(options);
    } catch (err) {
      throw innerError(err, `${this.#what}: writing through to far failed`);
    }
    if (!bytesEqual(near, far)) {
      throw new IntegrityError(
        `${this.#what}: near and far stored different roots (${formatB3(near)}, ${formatB3(far)})`,
      );
    }
    return near;
  }

  async abort(reason?: unknown): Promise<void> {
    await Promise.all([this.#near.abort(reason), this.#far.abort(reason)]);
  }
}

/**
 * The directories of a complete closure (as a validated root-first download
 * delivers it) in an order a leaves-first upload accepts: every directory
 * after all of its children. (Reversing breadth-first order is not enough:
 * a directory can sit nearer to the root than one of its parents.)
 */
export function leavesFirst(root: B3Digest, directories: readonly Directory[]): Directory[] {
  const byKey = new Map<string, Directory>();
  for (const d of directories) byKey.set(digestKey(d.digest()), d);
  const rootDir = byKey.get(digestKey(root));
  if (rootDir === undefined) throw new StorageError(`closure of ${formatB3(root)} lacks its root`);
  const out: Directory[] = [];
  const entered = new Set<string>([digestKey(root)]);
  const stack: { dir: Directory; children: B3Digest[]; next: number }[] = [
    { dir: rootDir, children: [...rootDir.directories()].map((e) => e.node.digest), next: 0 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next < top.children.length) {
      const digest = top.children[top.next++]!;
      const key = digestKey(digest);
      if (entered.has(key)) continue;
      entered.add(key);
      const child = byKey.get(key);
      if (child === undefined) {
        throw new StorageError(`closure of ${formatB3(root)} lacks ${formatB3(digest)}`);
      }
      stack.push({
        dir: child,
        children: [...child.directories()].map((e) => e.node.digest),
        next: 0,
      });
    } else {
      stack.pop();
      out.push(top.dir);
    }
  }
  return out;
}
