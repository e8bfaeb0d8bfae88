/**
 * The services with common options applied (common-options.ts): every
 * request goes through the instance's CallGuard (timeout, concurrency
 * limit), every stream item through its timeout; streamed uploads pass
 * untimed (their length is the caller's), whole-blob `putBytes` is a request.
 */
import type {
  BlobReader,
  BlobService,
  BlobWriter,
  ChunkMeta,
  StreamOptions,
} from "../castore/blob/service.js";
import type { CallOptions } from "../castore/call-options.js";
import type { B3Digest } from "../castore/digest.js";
import type { DirectoryPutter, DirectoryService } from "../castore/directory/service.js";
import type { Directory } from "../castore/directory.js";
import type { PathInfo } from "../store/path-info.js";
import type { PathInfoService } from "../store/pathinfo/service.js";
import type { CallGuard } from "./call-guard.js";

/** What every guarded service (and reader) holds: the inner one, closed with it, and the guard. */
abstract class Guarded<S extends { close(): Promise<void> }> {
  protected readonly inner: S;
  protected readonly guard: CallGuard;

  constructor(inner: S, guard: CallGuard) {
    this.inner = inner;
    this.guard = guard;
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export class GuardedBlobService extends Guarded<BlobService> implements BlobService {
  // The optional fast paths exist exactly when the inner service has them.
  readonly putBytes?: (data: Uint8Array, options?: CallOptions) => Promise<B3Digest>;
  readonly hasLocal?: (digest: B3Digest, size: number) => boolean;
  readonly readSmallInto?: NonNullable<BlobService["readSmallInto"]>;

  constructor(inner: BlobService, guard: CallGuard) {
    super(inner, guard);
    const { putBytes, hasLocal, readSmallInto } = inner;
    if (putBytes !== undefined) {
      this.putBytes = (data, options) =>
        this.guard.call("putBytes", options, (o) => putBytes.call(inner, data, o));
    }
    // Synchronous local lookups: nothing for a timeout or a concurrency limit to act on.
    if (hasLocal !== undefined)
      this.hasLocal = (digest, size) => hasLocal.call(inner, digest, size);
    if (readSmallInto !== undefined)
      this.readSmallInto = (digest, target, at) => readSmallInto.call(inner, digest, target, at);
  }

  has(digest: B3Digest, options?: CallOptions): Promise<boolean> {
    return this.guard.call("has", options, (o) => this.inner.has(digest, o));
  }

  async openRead(digest: B3Digest, options?: CallOptions): Promise<BlobReader | undefined> {
    const reader = await this.guard.call("openRead", options, (o) =>
      this.inner.openRead(digest, o),
    );
    return reader === undefined ? undefined : new GuardedReader(reader, this.guard);
  }

  openWrite(options?: CallOptions): BlobWriter {
    return this.inner.openWrite(options);
  }

  chunks(digest: B3Digest, options?: CallOptions): Promise<ChunkMeta[] | undefined> {
    return this.guard.call("chunks", options, (o) => this.inner.chunks(digest, o));
  }

  sync(options?: CallOptions): Promise<void> {
    return this.guard.call("sync", options, (o) => this.inner.sync(o));
  }
}

class GuardedReader extends Guarded<BlobReader> implements BlobReader {
  readonly readInto?: NonNullable<BlobReader["readInto"]>;

  constructor(inner: BlobReader, guard: CallGuard) {
    super(inner, guard);
    const { readInto } = inner;
    if (readInto !== undefined) {
      this.readInto = (target, targetOffset, length, position, options) =>
        this.guard.timed("read", options, (o) =>
          readInto.call(inner, target, targetOffset, length, position, o),
        );
    }
  }

  get size(): number {
    return this.inner.size;
  }

  read(offset: number, length: number, options?: CallOptions): Promise<Uint8Array> {
    return this.guard.timed("read", options, (o) => this.inner.read(offset, length, o));
  }

  stream(offset?: number, options?: StreamOptions): AsyncIterable<Uint8Array> {
    return this.guard.stream("stream", options, (o) =>
      this.inner.stream(offset, { ...options, ...o }),
    );
  }
}

export class GuardedDirectoryService extends Guarded<DirectoryService> implements DirectoryService {
  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    return this.guard.call("get", options, (o) => this.inner.get(digest, o));
  }

  put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    return this.guard.call("put", options, (o) => this.inner.put(directory, o));
  }

  getRecursive(root: B3Digest, options?: CallOptions): AsyncIterable<Directory> {
    return this.guard.stream("getRecursive", options, (o) => this.inner.getRecursive(root, o));
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return this.inner.putMultiple(options);
  }
}

export class GuardedPathInfoService extends Guarded<PathInfoService> implements PathInfoService {
  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined> {
    return this.guard.call("get", options, (o) => this.inner.get(digest, o));
  }

  put(info: PathInfo, options?: CallOptions): Promise<PathInfo> {
    return this.guard.call("put", options, (o) => this.inner.put(info, o));
  }

  list(options?: CallOptions): AsyncIterable<PathInfo> {
    return this.guard.stream("list", options, (o) => this.inner.list(o));
  }
}
