/**
 * Common options: settings every instance of a composition understands,
 * whatever its type, applied by the composition as a decorator around the
 * built service (STYLE 4: cross-cutting concerns are `(next) => next`).
 *
 * - `timeout_ms`: the longest one call may take — a request (`has`, `get`,
 *   `put`, `openRead`, `chunks`, `sync`, and `read` on a blob reader), or
 *   the wait for the next item of a stream (`getRecursive`, `list`, blob
 *   `stream`). On expiry the call's AbortSignal fires and the call fails with
 *   an UnavailableError naming the instance (so `priority` skips it and
 *   `retry` repeats it). Uploads (`openWrite`, `putMultiple`) are not timed.
 * - `max_concurrency`: at most this many requests of the instance run at
 *   once; further ones wait their turn (streams and uploads are not counted).
 *
 * Precedence (one rule, most specific wins): a field set on the instance,
 * else `[defaults.<section>]` (e.g. `[defaults.pathinfoservices]`), else
 * `[defaults]`, else unset. `[defaults]` and `[defaults.<section>]` apply to
 * backends only, not to combinators (cache, priority, race, lru, retry):
 * a default timeout on a priority list would cut off its fallbacks before
 * they are asked. Set on a combinator instance itself, an option applies to
 * it like to any other instance.
 */
import { z } from "zod";
import type {
  BlobReader,
  BlobService,
  BlobWriter,
  ChunkMeta,
  StreamOptions,
} from "../castore/blob/service.js";
import type { CallOptions } from "../castore/call-options.js";
import { closeIterator, withSignal } from "../castore/combinators/support.js";
import type { B3Digest } from "../castore/digest.js";
import type { DirectoryPutter, DirectoryService } from "../castore/directory/service.js";
import type { Directory } from "../castore/directory.js";
import { AbortedError, throwIfAborted, UnavailableError } from "../errors.js";
import type { PathInfo } from "../store/path-info.js";
import type { PathInfoService } from "../store/pathinfo/service.js";
import type { ServiceByKind, ServiceKind } from "./registry.js";

/** The common option fields, as they appear in an instance's table and in `[defaults]`. */
export const COMMON_OPTION_FIELDS = {
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      "Longest a single call (or the wait for the next item of a stream) may take, in ms; then it fails as 'Unavailable'.",
    ),
  max_concurrency: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("At most this many requests of the instance at once; more wait their turn."),
};

export const commonOptionsSchema = z.strictObject(COMMON_OPTION_FIELDS);

export type CommonOptions = z.infer<typeof commonOptionsSchema>;

export const COMMON_OPTION_NAMES: readonly string[] = Object.keys(COMMON_OPTION_FIELDS);

/** Whether any option is set. */
export function hasCommonOptions(options: CommonOptions): boolean {
  return options.timeout_ms !== undefined || options.max_concurrency !== undefined;
}

/** Merges option layers, later layers winning field by field. */
export function mergeCommonOptions(...layers: (CommonOptions | undefined)[]): CommonOptions {
  const out: { timeout_ms?: number; max_concurrency?: number } = {};
  for (const layer of layers) {
    if (layer?.timeout_ms !== undefined) out.timeout_ms = layer.timeout_ms;
    if (layer?.max_concurrency !== undefined) out.max_concurrency = layer.max_concurrency;
  }
  return out;
}

/**
 * Wraps `service` so that its calls obey `options`; returns it unchanged
 * when no option is set. `what` names the instance in errors
 * (`path info service 'upstream'`).
 */
export function withCommonOptions<K extends ServiceKind>(
  kind: K,
  service: ServiceByKind[K],
  options: CommonOptions,
  what: string,
): ServiceByKind[K] {
  if (!hasCommonOptions(options)) return service;
  const guard = new CallGuard(options, what);
  switch (kind) {
    case "blob":
      return new GuardedBlobService(service as BlobService, guard) as unknown as ServiceByKind[K];
    case "directory":
      return new GuardedDirectoryService(
        service as DirectoryService,
        guard,
      ) as unknown as ServiceByKind[K];
    default:
      return new GuardedPathInfoService(
        service as PathInfoService,
        guard,
      ) as unknown as ServiceByKind[K];
  }
}

/** Timeout and concurrency limit of one instance. */
class CallGuard {
  readonly #timeoutMs: number | undefined;
  readonly #limit: number;
  readonly #what: string;
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(options: CommonOptions, what: string) {
    this.#timeoutMs = options.timeout_ms;
    this.#limit = options.max_concurrency ?? Number.POSITIVE_INFINITY;
    this.#what = what;
  }

  /** A request: waits for a slot, then runs `fn` under the timeout. */
  async call<T>(
    op: string,
    options: CallOptions | undefined,
    fn: (options: CallOptions) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(options?.signal);
    await this.#acquire(options?.signal);
    try {
      return await this.timed(op, options, fn);
    } finally {
      this.#release();
    }
  }

  /** Runs `fn` under the timeout only (no slot). */
  timed<T>(
    op: string,
    options: CallOptions | undefined,
    fn: (options: CallOptions) => Promise<T>,
  ): Promise<T> {
    const ms = this.#timeoutMs;
    if (ms === undefined) return fn(options ?? {});
    const controller = new AbortController();
    return this.#within(op, fn(withSignal(options, controller.signal)), controller);
  }

  /** A stream: each item must arrive within the timeout. */
  async *stream<T>(
    op: string,
    options: CallOptions | undefined,
    fn: (options: CallOptions) => AsyncIterable<T>,
  ): AsyncGenerator<T, void, undefined> {
    if (this.#timeoutMs === undefined) {
      yield* fn(options ?? {});
      return;
    }
    const controller = new AbortController();
    const it = fn(withSignal(options, controller.signal))[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await this.#within(op, it.next(), controller);
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      await closeIterator(it);
    }
  }

  #within<T>(op: string, work: Promise<T>, controller: AbortController): Promise<T> {
    const ms = this.#timeoutMs!;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new UnavailableError(`${this.#what}: ${op} timed out after ${ms} ms`);
        controller.abort(err);
        reject(err);
      }, ms);
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.#running < this.#limit) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", onAbort);
        this.#running++;
        resolve();
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(grant);
        if (i !== -1) this.#queue.splice(i, 1);
        reject(new AbortedError("operation aborted", { cause: signal?.reason }));
      };
      this.#queue.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #release(): void {
    this.#running--;
    this.#queue.shift()?.();
  }
}

class GuardedBlobService implements BlobService {
  readonly #inner: BlobService;
  readonly #guard: CallGuard;

  constructor(inner: BlobService, guard: CallGuard) {
    this.#inner = inner;
    this.#guard = guard;
  }

  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    return this.#guard.call("has", options, (o) => this.#inner.has(digest, o));
  }

  async openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    const reader = await this.#guard.call("openRead", options, (o) =>
      this.#inner.openRead(digest, o),
    );
    return reader === undefined ? undefined : new GuardedReader(reader, this.#guard);
  }

  openWrite(options?: CallOptions): BlobWriter {
    return this.#inner.openWrite(options);
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.#guard.call("chunks", options, (o) => this.#inner.chunks(digest, o));
  }

  sync(options?: CallOptions): Promise<void> {
    return this.#guard.call("sync", options, (o) => this.#inner.sync(o));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class GuardedReader implements BlobReader {
  readonly #inner: BlobReader;
  readonly #guard: CallGuard;

  constructor(inner: BlobReader, guard: CallGuard) {
    this.#inner = inner;
    this.#guard = guard;
  }

  get size(): number {
    return this.#inner.size;
  }

  read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    return this.#guard.timed("read", options, (o) => this.#inner.read(offset, length, o));
  }

  stream(offset?: number, options?: StreamOptions): AsyncIterable<Uint8Array> {
    return this.#guard.stream("stream", options, (o) =>
      this.#inner.stream(offset, { ...options, ...o }),
    );
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

class GuardedDirectoryService implements DirectoryService {
  readonly #inner: DirectoryService;
  readonly #guard: CallGuard;

  constructor(inner: DirectoryService, guard: CallGuard) {
    this.#inner = inner;
    this.#guard = guard;
  }

  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    return this.#guard.call("get", options, (o) => this.#inner.get(digest, o));
  }

  put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    return this.#guard.call("put", options, (o) => this.#inner.put(directory, o));
  }

  getRecursive(root: B3Digest, options?: CallOptions): AsyncIterable<Directory> {
    return this.#guard.stream("getRecursive", options, (o) => this.#inner.getRecursive(root, o));
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return this.#inner.putMultiple(options);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class GuardedPathInfoService implements PathInfoService {
  readonly #inner: PathInfoService;
  readonly #guard: CallGuard;

  constructor(inner: PathInfoService, guard: CallGuard) {
    this.#inner = inner;
    this.#guard = guard;
  }

  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    return this.#guard.call("get", options, (o) => this.#inner.get(digest, o));
  }

  put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    return this.#guard.call("put", options, (o) => this.#inner.put(info, o));
  }

  list(options?: CallOptions): AsyncIterable<PathInfo> {
    return this.#guard.stream("list", options, (o) => this.#inner.list(o));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
