/**
 * `lmdb://`: directories in an LMDB environment (Node only). Key: the
 * 32-byte digest; value: the canonical protobuf encoding, re-validated on
 * every read (re-hashed and decoded strictly: corrupt data is an
 * IntegrityError naming the digest, never a wrong answer).
 *
 * Also home of `LmdbKv`, the environment lifecycle and durability settings
 * every strata LMDB backend shares (the PathInfo backend uses it too).
 *
 * Durability: lmdb-js' defaults, which are crash-safe, and nothing that
 * trades safety for speed (no `noSync`, `noMetaSync`, `useWritemap`,
 * `mapAsync`). On Linux and macOS the default is `overlappingSync`: a
 * transaction is committed (visible) first and fsynced right after, outside
 * the write lock; after an OS crash lmdb-js reopens at the last transaction
 * that was flushed (it compares the boot id), after a process crash at the
 * last committed one. A commit promise therefore means "visible", and only
 * `db.flushed` means "on disk": every write here awaits `flushed` before it
 * resolves ("durable when it resolves"). Writes issued in the same event
 * turn share one transaction and one fsync (lmdb-js batching), which is what
 * makes many concurrent small puts affordable. Only the temporary store (no
 * path) sets `noSync`: it is deleted on close, so syncing it buys nothing.
 *
 * Layout: one environment per path, holding one named database
 * (`directories`) with binary keys and values.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Database, open, type RootDatabase } from "lmdb";
import { IntegrityError, StorageError, StrataError, throwIfAborted } from "../../errors.js";
import { bytesEqual } from "../bytes.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, formatB3, hashB3 } from "../digest.js";
import { Directory } from "../directory.js";
import {
  ClosurePutter,
  checkStoredChildren,
  type ValidatedClosure,
  walkClosure,
} from "./closure-validator.js";
import type { DirectoryPutter, DirectoryService } from "./service.js";

/** Options of an LMDB-backed service. */
export interface LmdbInit {
  /**
   * Directory of the LMDB environment, created if missing; data in it
   * survives close, restarts and crashes. Default: a fresh directory under
   * the OS temporary directory, deleted on close (not durable).
   */
  path?: string;
}

/** The name of the LMDB database (inside the environment) that holds directories. */
export const LMDB_DIRECTORIES_DB = "directories";

/**
 * One LMDB environment with one named database of binary keys and values,
 * and the lifecycle every strata LMDB backend needs: durable writes,
 * lazily iterated ranges that close() releases, in-flight writes that
 * close() waits for, and errors that name the environment.
 */
export class LmdbKv {
  readonly path: string;
  readonly temporary: boolean;
  /** How errors name this store: `lmdb '/var/lib/x'` or `lmdb (temporary) '/tmp/x'`. */
  readonly where: string;
  #env: RootDatabase<Uint8Array, Uint8Array> | undefined;
  #db: Database<Uint8Array, Uint8Array> | undefined;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #cursors = new Set<() => void>();
  #closing: Promise<void> | undefined;

  private constructor(
    path: string,
    temporary: boolean,
    env: RootDatabase<Uint8Array, Uint8Array>,
    db: Database<Uint8Array, Uint8Array>,
  ) {
    this.path = path;
    this.temporary = temporary;
    this.where = temporary ? `lmdb (temporary) '${path}'` : `lmdb '${path}'`;
    this.#env = env;
    this.#db = db;
  }

  /** Opens (creating if needed) the environment at `init.path` and the database `dbName` in it. */
  static open(init: LmdbInit, dbName: string): LmdbKv {
    const temporary = init.path === undefined;
    const path =
      init.path === undefined ? mkdtempSync(join(tmpdir(), "strata-lmdb-")) : resolve(init.path);
    try {
      mkdirSync(path, { recursive: true });
      const env = open<Uint8Array, Uint8Array>({
        path,
        // A directory, even if the path has an extension (lmdb-js guesses otherwise).
        noSubdir: false,
        ...(temporary && { noSync: true }),
      });
      const db = env.openDB<Uint8Array, Uint8Array>({
        name: dbName,
        keyEncoding: "binary",
        encoding: "binary",
      });
      return new LmdbKv(path, temporary, env, db);
    } catch (cause) {
      if (temporary) rmSync(path, { recursive: true, force: true });
      throw new StorageError(`opening lmdb '${path}' (database '${dbName}')`, { cause });
    }
  }

  /** The database; throws StorageError once close() was called. */
  db(): Database<Uint8Array, Uint8Array> {
    if (this.#db === undefined || this.#closing !== undefined) {
      throw new StorageError(`${this.where} is closed`);
    }
    return this.#db;
  }

  /**
   * Runs an operation that close() waits for: it gets the database even if
   * close() is called while it runs (new operations are rejected from then
   * on). Rejects with StorageError when already closed.
   */
  track<T>(operation: (db: Database<Uint8Array, Uint8Array>) => Promise<T>): Promise<T> {
    const db = this.db();
    const done = (async () => operation(db))();
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.#inflight.add(settled);
    void settled.then(() => this.#inflight.delete(settled));
    return done;
  }

  /**
   * Stores `entries` atomically and resolves once the commit is flushed to
   * disk. Several entries go through an LMDB child transaction inside
   * lmdb-js' batch (a failure rolls back exactly this caller's writes); a
   * single one through lmdb-js' plain batched put, which skips running a
   * JS callback on the write path. Call it inside `track`.
   */
  async write(
    db: Database<Uint8Array, Uint8Array>,
    what: string,
    entries: readonly (readonly [key: Uint8Array, value: Uint8Array])[],
    mode: "overwrite" | "skip-existing",
  ): Promise<void> {
    const wanted = (key: Uint8Array): boolean => mode === "overwrite" || !db.doesExist(key);
    try {
      if (entries.length === 1) {
        const [key, value] = entries[0]!;
        // Checked outside the transaction: content-addressed values never
        // change, so a concurrent writer can only have stored the same bytes.
        if (wanted(key)) await db.put(key, value);
      } else {
        await db.childTransaction(() => {
          for (const [key, value] of entries) if (wanted(key)) db.putSync(key, value);
        });
      }
      // Resolves after every commit so far is on disk, including ours, or
      // the one that stored an existing entry.
      await db.flushed;
    } catch (cause) {
      if (cause instanceof StrataError) throw cause;
      throw new StorageError(`${what} in ${this.where}`, { cause });
    }
  }

  /**
   * Every entry, in key order, read lazily from one read transaction (a
   * consistent snapshot). close() releases the transaction of a suspended
   * iteration; resuming it then fails with StorageError.
   */
  async *entries(
    options: CallOptions | undefined,
  ): AsyncGenerator<{ key: Uint8Array; value: Uint8Array }, void, undefined> {
    throwIfAborted(options?.signal);
    const iterator = this.db().getRange({})[Symbol.iterator]();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#cursors.delete(release);
      iterator.return?.();
    };
    this.#cursors.add(release);
    try {
      for (;;) {
        throwIfAborted(options?.signal);
        this.db();
        const next = iterator.next();
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      release();
    }
  }

  /** Waits for writes in flight, releases open iterations, closes the environment. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.#inflight);
      for (const release of [...this.#cursors]) release();
      const env = this.#env;
      this.#env = undefined;
      this.#db = undefined;
      try {
        await env?.close();
      } catch (cause) {
        throw new StorageError(`closing ${this.where}`, { cause });
      } finally {
        if (this.temporary) rmSync(this.path, { recursive: true, force: true });
      }
    })();
    return this.#closing;
  }
}

/** An LMDB-backed DirectoryService. Create it with `LmdbDirectoryService.open`. */
export class LmdbDirectoryService implements DirectoryService {
  readonly #kv: LmdbKv;

  private constructor(kv: LmdbKv) {
    this.#kv = kv;
  }

  /**
   * Opens the store at `init.path` (created if missing), or a temporary
   * store deleted on close when no path is given. Rejects with StorageError
   * when the environment cannot be opened.
   */
  static async open(init: LmdbInit = {}): Promise<LmdbDirectoryService> {
    return new LmdbDirectoryService(LmdbKv.open(init, LMDB_DIRECTORIES_DB));
  }

  /** The environment's directory. */
  get path(): string {
    return this.#kv.path;
  }

  /**
   * Reads and re-validates a stored directory. The stored bytes must hash to
   * their key: then they are exactly the canonical encoding written by put
   * (so re-encoding to compare digests would be wasted work) and are
   * decoded with every rule checked.
   */
  #load(digest: B3Digest, db = this.#kv.db()): Directory | undefined {
    // lmdb-js's reused read buffer, valid until the next read: hashed and
    // decoded right here (the decoder copies what it keeps), so no copy per get.
    const raw = db.getBinaryFast(digest);
    if (raw === undefined) return undefined;
    // The buffer is longer than the value: lmdb-js only overrides its `length`,
    // which native hashing and typed-array views do not see.
    const bytes = raw.subarray(0, raw.length);
    const actual = hashB3(bytes);
    if (!bytesEqual(actual, digest)) {
      throw new IntegrityError(
        `directory ${formatB3(digest)} in ${this.#kv.where} is corrupt: the stored bytes hash to ${formatB3(actual)}`,
      );
    }
    try {
      return Directory.decode(bytes);
    } catch (cause) {
      throw new IntegrityError(
        `directory ${formatB3(digest)} in ${this.#kv.where} is corrupt: it does not decode`,
        { cause },
      );
    }
  }

  readonly #storedSize = async (digest: B3Digest): Promise<number | undefined> =>
    this.#load(digest)?.size;

  async get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    throwIfAborted(options?.signal);
    return this.#load(digest);
  }

  async put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    throwIfAborted(options?.signal);
    return this.#kv.track(async (db) => {
      const stored = async (d: B3Digest): Promise<number | undefined> => this.#load(d, db)?.size;
      await checkStoredChildren(directory, stored, `put to ${this.#kv.where}`, options);
      const digest = directory.digest();
      await this.#commit(db, { directories: [directory], root: digest });
      return digest;
    });
  }

  /**
   * Writes a validated closure in one transaction, in upload order (leaves
   * first), skipping directories already stored. Even a torn write could
   * only leave a prefix behind, and a prefix of a leaves-first upload
   * references nothing missing.
   */
  #commit(
    db: Database<Uint8Array, Uint8Array>,
    { directories, root }: ValidatedClosure,
  ): Promise<void> {
    return this.#kv.write(
      db,
      `storing the closure of directory ${formatB3(root)}`,
      directories.map((d) => [d.digest(), d.encode()] as const),
      "skip-existing",
    );
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    this.#kv.db();
    const load = async (d: B3Digest): Promise<Directory | undefined> => this.#load(d);
    for await (const directory of walkClosure(root, load, options, this.#kv.where)) {
      this.#kv.db();
      yield directory;
    }
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new ClosurePutter({
      stored: this.#storedSize,
      checkOpen: () => {
        this.#kv.db();
      },
      context: `putMultiple to ${this.#kv.where}`,
      signal: options?.signal,
      commit: (closure) => this.#kv.track((db) => this.#commit(db, closure)),
    });
  }

  /** Waits for writes in flight, then closes the environment (and deletes a temporary one). Idempotent. */
  close(): Promise<void> {
    return this.#kv.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
