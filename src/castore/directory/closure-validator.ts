/**
 * The closure rules of directory uploads and downloads, shared by every
 * DirectoryService backend and (later) the gRPC server and client
 * (ARCHITECTURE §2 "Directory", §5). Browser-safe.
 *
 * - `LeavesFirstValidator`: an upload (putMultiple, gRPC `Put`), leaves
 *   first: every child was sent before its parent or is already stored, every
 *   recorded child size is right, and the upload has exactly one root, sent last.
 * - `RootFirstValidator`: a recursive download from an untrusted peer (gRPC
 *   `Get`), root first: every directory received was referenced and not yet
 *   received, sizes match, nothing referenced is missing at the end.
 * - `walkClosure`: the root-first breadth-first traversal a backend runs for
 *   `getRecursive` over its own `get`.
 * - `ClosurePutter`: a DirectoryPutter that validates as directories arrive
 *   and hands the whole closure to a backend's atomic `commit` at close.
 */
import { AbortedError, IntegrityError, InvalidInputError, throwIfAborted } from "../../errors.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, digestKey, formatB3 } from "../digest.js";
import type { Directory } from "../directory.js";
import type { DirectoryNode } from "../node.js";
import { showName } from "../path-component.js";
import type { DirectoryPutter } from "./service.js";

/**
 * How a validator learns about directories that are not part of an upload
 * but already stored: their sizes, keyed by `digestKey`, or a lookup that
 * resolves to the stored directory's size (`undefined` if not stored).
 *
 * Sizes rather than a plain "is stored" set, because a parent's recorded
 * child size must be checked against stored children too.
 */
export type StoredDirectorySizes =
  | ReadonlyMap<string, number>
  | ((digest: B3Digest, options?: CallOptions) => Promise<number | undefined>);

/** What an accepted upload consists of. */
export interface ValidatedClosure {
  /** The directories to store, each once, in upload order (leaves first, root last). */
  readonly directories: readonly Directory[];
  readonly root: B3Digest;
}

/** How many digests an error message lists before it says "and N more". */
const LISTED = 5;

function listDigests(keys: Iterable<B3Digest>): string {
  const all = [...keys];
  const shown = all.slice(0, LISTED).map(formatB3).join(", ");
  return all.length > LISTED ? `${shown} and ${all.length - LISTED} more` : shown;
}

function prefix(context: string | undefined): string {
  return context === undefined || context === "" ? "" : `${context}: `;
}

function childError(
  context: string | undefined,
  parent: B3Digest,
  name: Uint8Array,
  node: DirectoryNode,
  actual: number | undefined,
  alternative: string,
): InvalidInputError {
  const where = `${prefix(context)}directory ${formatB3(parent)}, entry ${showName(name)}`;
  return new InvalidInputError(
    actual === undefined
      ? `${where}: child directory ${formatB3(node.digest)} was neither ${alternative} nor is it stored (uploads go leaves first)`
      : `${where}: records size ${node.size} for child directory ${formatB3(node.digest)}, whose size is ${actual}`,
  );
}

async function lookup(
  stored: StoredDirectorySizes,
  digest: B3Digest,
  options: CallOptions | undefined,
): Promise<number | undefined> {
  return typeof stored === "function" ? stored(digest, options) : stored.get(digestKey(digest));
}

/**
 * The rule a single `put` applies: every child directory is stored, with
 * the size `directory` records for it. Cheaper than a LeavesFirstValidator
 * for one directory, which is what matters for many small puts.
 */
export async function checkStoredChildren(
  directory: Directory,
  stored: StoredDirectorySizes,
  context: string,
  options?: CallOptions,
): Promise<void> {
  throwIfAborted(options?.signal);
  for (const { name, node } of directory.directories()) {
    const actual = await lookup(stored, node.digest, options);
    if (actual !== node.size) {
      throw childError(context, directory.digest(), name, node, actual, "sent before it");
    }
  }
}

/**
 * Validates an upload sent leaves first. Feed it with `add` in upload order,
 * then call `finish`. Errors are InvalidInputError naming the directory
 * (`b3:…`), the entry and the rule; after the first error the validator
 * stays failed. Adds are applied in call order even when not awaited.
 *
 * A directory sent twice is accepted and kept once (Snix does the same for
 * clients that do not deduplicate).
 */
export class LeavesFirstValidator {
  readonly #stored: StoredDirectorySizes | undefined;
  readonly #context: string | undefined;
  /** Sizes of the directories sent, by digestKey. */
  readonly #sent = new Map<string, number>();
  /** Sizes of stored children looked up so far, by digestKey. */
  readonly #external = new Map<string, number>();
  /** Directories sent but not yet referenced by a later one (root candidates). */
  readonly #unreferenced = new Map<string, B3Digest>();
  readonly #order: Directory[] = [];
  #last: Directory | undefined;
  #tail: Promise<void> = Promise.resolve();
  #failure: unknown;
  #finished = false;

  constructor(init: { stored?: StoredDirectorySizes; context?: string } = {}) {
    this.#stored = init.stored;
    this.#context = init.context;
  }

  /** How many distinct directories were accepted so far. */
  get count(): number {
    return this.#order.length;
  }

  /** Checks `directory` against what was sent before it and what is stored. */
  add(directory: Directory, options?: CallOptions): Promise<void> {
    const run = this.#tail.then(() => this.#add(directory, options));
    // The chain itself never rejects, so one failure does not surface twice;
    // the failure is remembered in #failure instead.
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #add(directory: Directory, options: CallOptions | undefined): Promise<void> {
    this.#checkUsable();
    throwIfAborted(options?.signal);
    try {
      const digest = directory.digest();
      const key = digestKey(digest);
      this.#last = directory;
      if (this.#sent.has(key)) return;
      for (const { name, node } of directory.directories()) {
        const childKey = digestKey(node.digest);
        const actual =
          this.#sent.get(childKey) ?? (await this.#storedSize(node.digest, childKey, options));
        if (actual !== node.size) {
          throw childError(this.#context, digest, name, node, actual, "sent before its parent");
        }
        this.#unreferenced.delete(childKey);
      }
      this.#sent.set(key, directory.size);
      this.#unreferenced.set(key, digest);
      this.#order.push(directory);
    } catch (err) {
      if (!(err instanceof AbortedError)) this.#failure = err;
      throw err;
    }
  }

  async #storedSize(
    digest: B3Digest,
    key: string,
    options: CallOptions | undefined,
  ): Promise<number | undefined> {
    const known = this.#external.get(key);
    if (known !== undefined || this.#stored === undefined) return known;
    const size = await lookup(this.#stored, digest, options);
    if (size !== undefined) this.#external.set(key, size);
    return size;
  }

  #checkUsable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#finished) {
      throw new InvalidInputError(`${prefix(this.#context)}the upload was already finished`);
    }
  }

  /**
   * Waits for pending adds, then checks that the upload has exactly one
   * root and that it was sent last. Resolves to what to store.
   */
  async finish(options?: CallOptions): Promise<ValidatedClosure> {
    await this.#tail;
    this.#checkUsable();
    throwIfAborted(options?.signal);
    this.#finished = true;
    const p = prefix(this.#context);
    const last = this.#last;
    if (last === undefined) {
      throw this.#fail(new InvalidInputError(`${p}no directories were sent`));
    }
    if (this.#unreferenced.size > 1) {
      throw this.#fail(
        new InvalidInputError(
          `${p}the upload has ${this.#unreferenced.size} roots (directories no later directory refers to): ${listDigests(this.#unreferenced.values())}; an upload has exactly one root, sent last`,
        ),
      );
    }
    const root = last.digest();
    if (!this.#unreferenced.has(digestKey(root))) {
      throw this.#fail(
        new InvalidInputError(
          `${p}the last directory sent, ${formatB3(root)}, is not the root: it is referred to by a directory sent before it (the root is ${listDigests(this.#unreferenced.values())})`,
        ),
      );
    }
    return { directories: this.#order, root };
  }

  #fail(err: InvalidInputError): InvalidInputError {
    this.#failure = err;
    return err;
  }
}

/**
 * Validates a recursive download received from an untrusted peer, root
 * first. Each directory received must have a digest (computed here) that
 * was referenced by a directory received before it (or be the root) and not
 * received yet, and its size must be the one its parents recorded. The exact
 * breadth-first order is not enforced, only connectivity: any order in which
 * parents come before their children is safe to accept.
 *
 * Errors are IntegrityError: the peer sent data that does not match what
 * the digests promise.
 */
export class RootFirstValidator {
  readonly #root: B3Digest;
  readonly #context: string | undefined;
  /** Referenced but not yet received: digest and the size parents recorded (undefined for the root). */
  readonly #expected = new Map<string, { digest: B3Digest; size: number | undefined }>();
  /** Received: size by digestKey. */
  readonly #received = new Map<string, number>();

  constructor(root: B3Digest, context?: string) {
    this.#root = root;
    this.#context = context;
    this.#expected.set(digestKey(root), { digest: root, size: undefined });
  }

  /** How many directories were accepted. */
  get count(): number {
    return this.#received.size;
  }

  /** Whether a directory with this digest would be accepted next (lets callers skip decoding). */
  expects(digest: B3Digest): boolean {
    return this.#expected.has(digestKey(digest));
  }

  /** Accepts the next directory received, or throws IntegrityError. */
  accept(directory: Directory): void {
    const p = prefix(this.#context);
    const digest = directory.digest();
    const key = digestKey(digest);
    const expected = this.#expected.get(key);
    if (expected === undefined) {
      throw new IntegrityError(
        this.#received.has(key)
          ? `${p}directory ${formatB3(digest)} was received twice`
          : `${p}directory ${formatB3(digest)} was not referenced by any directory received before it (closure of ${formatB3(this.#root)})`,
      );
    }
    if (expected.size !== undefined && expected.size !== directory.size) {
      throw new IntegrityError(
        `${p}directory ${formatB3(digest)} has size ${directory.size}, but its parent records ${expected.size}`,
      );
    }
    this.#expected.delete(key);
    this.#received.set(key, directory.size);
    for (const { name, node } of directory.directories()) {
      const childKey = digestKey(node.digest);
      const recorded = this.#received.get(childKey) ?? this.#expected.get(childKey)?.size;
      if (recorded !== undefined && recorded !== node.size) {
        throw new IntegrityError(
          `${p}directory ${formatB3(digest)}, entry ${showName(name)}: records size ${node.size} for child directory ${formatB3(node.digest)}, but ${recorded} was recorded or received before`,
        );
      }
      if (recorded === undefined) {
        this.#expected.set(childKey, { digest: node.digest, size: node.size });
      }
    }
  }

  /**
   * Checks that nothing referenced is missing. Receiving nothing at all is
   * accepted: that is how an unknown root looks (an empty stream, as Snix
   * answers).
   */
  finish(): void {
    if (this.#received.size === 0) return;
    if (this.#expected.size > 0) {
      throw new IntegrityError(
        `${prefix(this.#context)}closure of ${formatB3(this.#root)} is incomplete: ${this.#expected.size} referenced directories were not received: ${listDigests([...this.#expected.values()].map((e) => e.digest))}`,
      );
    }
  }
}

/**
 * The closure of `root` read through `load`: root first, then breadth-first,
 * each directory once. An unknown root yields nothing; a missing child, or
 * a child whose size differs from what its parent records, is an
 * IntegrityError (the backend lost or mixed up data). `load` must return
 * directories whose digest it has verified.
 */
export async function* walkClosure(
  root: B3Digest,
  load: (digest: B3Digest) => Promise<Directory | undefined>,
  options: CallOptions | undefined,
  context: string,
): AsyncGenerator<Directory, void, undefined> {
  throwIfAborted(options?.signal);
  const first = await load(root);
  if (first === undefined) return;
  const seen = new Set<string>([digestKey(root)]);
  // A FIFO as an array plus read index: shift() is O(n) per call.
  const queue: (Directory | undefined)[] = [first];
  for (let i = 0; i < queue.length; i++) {
    const dir = queue[i]!;
    queue[i] = undefined; // let directories already yielded be collected
    yield dir;
    for (const { name, node } of dir.directories()) {
      const key = digestKey(node.digest);
      if (seen.has(key)) continue;
      seen.add(key);
      throwIfAborted(options?.signal);
      const child = await load(node.digest);
      if (child === undefined || child.size !== node.size) {
        const where = `${context}: directory ${formatB3(dir.digest())}, entry ${showName(name)}`;
        throw new IntegrityError(
          child === undefined
            ? `${where}: child directory ${formatB3(node.digest)} is missing`
            : `${where}: records size ${node.size} for child directory ${formatB3(node.digest)}, whose size is ${child.size}`,
        );
      }
      queue.push(child);
    }
    throwIfAborted(options?.signal);
  }
}

/** What a backend provides to a ClosurePutter. */
export interface ClosurePutterInit {
  /** Sizes of stored directories, for children not sent in the upload. */
  stored: StoredDirectorySizes;
  /** Stores a validated closure atomically and durably (all or nothing). */
  commit(closure: ValidatedClosure, options?: CallOptions): Promise<void>;
  /** Throws (StorageError) when the service was closed. */
  checkOpen(): void;
  /** Prefix for error messages, e.g. `putMultiple to lmdb '/var/lib/x'`. */
  context: string;
  /** The signal passed to putMultiple: cancels the whole upload. */
  signal?: AbortSignal | undefined;
}

/**
 * A DirectoryPutter that validates each directory as it arrives (so a bad
 * upload fails early) and commits the whole closure at close. Nothing is
 * stored before close, so an aborted, failed or abandoned upload leaves
 * nothing behind.
 */
export class ClosurePutter implements DirectoryPutter {
  readonly #init: ClosurePutterInit;
  /** Dropped once the upload ended, so an abandoned putter holds no directories. */
  #validator: LeavesFirstValidator | undefined;
  #state: "open" | "closing" | "closed" | "aborted" = "open";

  constructor(init: ClosurePutterInit) {
    this.#init = init;
    this.#validator = new LeavesFirstValidator({ stored: init.stored, context: init.context });
  }

  #check(options: CallOptions | undefined): LeavesFirstValidator {
    throwIfAborted(this.#init.signal);
    throwIfAborted(options?.signal);
    this.#init.checkOpen();
    if (this.#state !== "open" || this.#validator === undefined) {
      throw new InvalidInputError(`${this.#init.context}: the upload was already ${this.#state}`);
    }
    return this.#validator;
  }

  async put(directory: Directory, options?: CallOptions): Promise<void> {
    const validator = this.#check(options);
    await validator.add(directory, withUploadSignal(options, this.#init.signal));
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    const validator = this.#check(options);
    this.#state = "closing";
    try {
      const closure = await validator.finish(options);
      // Last chance to cancel: once the commit started it runs to completion.
      throwIfAborted(this.#init.signal);
      throwIfAborted(options?.signal);
      this.#init.checkOpen();
      await this.#init.commit(closure, options);
      return closure.root;
    } finally {
      this.#state = "closed";
      this.#validator = undefined;
    }
  }

  async abort(_reason?: unknown): Promise<void> {
    // Nothing was stored yet: dropping what was sent is all there is to do.
    // Once close() started, its commit runs to completion regardless.
    if (this.#state !== "open") return;
    this.#state = "aborted";
    this.#validator = undefined;
  }
}

/** Per-call options whose signal also fires when the upload's signal does. */
function withUploadSignal(
  options: CallOptions | undefined,
  upload: AbortSignal | undefined,
): CallOptions | undefined {
  if (upload === undefined) return options;
  if (options?.signal === undefined) return { signal: upload };
  return { signal: AbortSignal.any([upload, options.signal]) };
}
