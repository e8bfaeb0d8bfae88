/**
 * A DirectoryService over gRPC (wire-compatible with Tvix and Snix servers).
 * What arrives is checked, not trusted: every directory is decoded strictly
 * and must have the digest asked for; a recursive `Get` must be a closure
 * sent root first (RootFirstValidator: each directory referenced before it
 * arrives, sizes as recorded, nothing missing at the end).
 *
 * `putMultiple` streams one `Put` call as directories are added (the
 * server validates leaves-to-root and rejects with INVALID_ARGUMENT, which
 * surfaces in `put` or `close`); nothing is stored before the stream ends,
 * and `abort()` cancels it.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { IntegrityError, InvalidInputError } from "../../errors.js";
import type { Directory as DirectoryPb } from "../../proto/gen/tvix/castore/v1/castore_pb.js";
import { storeServices } from "../../proto/packages.js";
import { bytesEqual } from "../bytes.js";
import type { CallOptions } from "../call-options.js";
import { type B3Digest, formatB3 } from "../digest.js";
import { Directory } from "../directory.js";
import { directoryFromProto, directoryToProto } from "../directory-proto.js";
import { ClientCore, type GrpcClientInit } from "../grpc/client-core.js";
import type { GrpcConnection } from "../grpc/connection.js";
import { PushQueue } from "../grpc/push-queue.js";
import { isNotFound } from "../grpc/status.js";
import { RootFirstValidator } from "./closure-validator.js";
import type { DirectoryPutter, DirectoryService } from "./service.js";

type DirectoryClient = Client<ReturnType<typeof storeServices>["directory"]>;

/** A directory received from the server; a malformed one means the server is broken. */
function received(msg: DirectoryPb, what: string): Directory {
  try {
    return Directory.fromEntries(directoryFromProto(msg));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new IntegrityError(`${what}: the server sent an invalid directory: ${reason}`, {
      cause: err,
    });
  }
}

export class GrpcDirectoryService implements DirectoryService {
  readonly #core: ClientCore;
  readonly #client: DirectoryClient;
  /** For `Put` (uploads may go over a connection of their own). */
  readonly #uploads: DirectoryClient;

  constructor(conn: GrpcConnection, init?: GrpcClientInit) {
    this.#core = new ClientCore(conn, "directory service", init);
    this.#client = createClient(storeServices(conn.pkg).directory, conn.transport);
    this.#uploads = createClient(storeServices(conn.pkg).directory, conn.uploadTransport);
  }

  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined> {
    const what = `get ${formatB3(digest)}`;
    return this.#core.run(what, options, async (signal) => {
      let found: Directory | undefined;
      try {
        const request = { byWhat: { case: "digest" as const, value: digest }, recursive: false };
        for await (const msg of this.#client.get(request, { signal: this.#core.signal(signal) })) {
          if (found !== undefined) {
            throw new IntegrityError(`${what}: the server sent more than one directory`);
          }
          found = received(msg, what);
        }
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      if (found !== undefined && !bytesEqual(found.digest(), digest)) {
        throw new IntegrityError(
          `${what}: the server sent directory ${formatB3(found.digest())} instead`,
        );
      }
      return found;
    });
  }

  put(directory: Directory, options?: CallOptions): Promise<B3Digest> {
    const what = `put ${formatB3(directory.digest())}`;
    return this.#core.run(what, options, async (signal) => {
      async function* one() {
        yield directoryToProto(directory.entries);
      }
      const res = await this.#uploads.put(one(), { signal: this.#core.signal(signal) });
      return checkRoot(res.rootDigest, directory, `${this.#core.label}: ${what}`);
    });
  }

  async *getRecursive(root: B3Digest, options?: CallOptions): AsyncGenerator<Directory> {
    const core = this.#core;
    const what = `getRecursive ${formatB3(root)}`;
    core.check(what, options?.signal);
    // Ends the call when the consumer stops early (connect does not on its own).
    const done = new AbortController();
    const signal = core.signal(options?.signal, done.signal);
    const validator = new RootFirstValidator(root, `${core.label}: ${what}`);
    try {
      const request = { byWhat: { case: "digest" as const, value: root }, recursive: true };
      for await (const msg of this.#client.get(request, { signal })) {
        const dir = received(msg, what);
        validator.accept(dir);
        core.check(what, options?.signal);
        yield dir;
        core.check(what, options?.signal);
      }
      validator.finish();
    } catch (err) {
      // Tvix answers NOT_FOUND where Snix sends an empty stream: both mean "unknown root".
      if (isNotFound(err) && validator.count === 0) return;
      throw core.error(err, what, options?.signal);
    } finally {
      done.abort();
    }
  }

  putMultiple(options?: CallOptions): DirectoryPutter {
    return new GrpcDirectoryPutter(this.#core, this.#uploads, options?.signal);
  }

  async close(): Promise<void> {
    this.#core.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function checkRoot(answered: Uint8Array, last: Directory, what: string): B3Digest {
  if (!bytesEqual(answered, last.digest())) {
    throw new IntegrityError(
      `${what}: the server answered root ${formatB3(answered)}, but the last directory sent is ${formatB3(last.digest())}`,
    );
  }
  return last.digest();
}

class GrpcDirectoryPutter implements DirectoryPutter {
  readonly #core: ClientCore;
  readonly #client: DirectoryClient;
  readonly #signal: AbortSignal | undefined;
  readonly #queue = new PushQueue<DirectoryPb>();
  readonly #cancel = new AbortController();
  #call: Promise<{ rootDigest: Uint8Array }> | undefined;
  #last: Directory | undefined;
  #state: "open" | "closing" | "closed" | "aborted" = "open";

  constructor(core: ClientCore, client: DirectoryClient, signal: AbortSignal | undefined) {
    this.#core = core;
    this.#client = client;
    this.#signal = signal;
    signal?.addEventListener("abort", () => void this.abort(signal.reason), { once: true });
  }

  #check(what: string, options: CallOptions | undefined): void {
    this.#core.check(what, this.#signal, options?.signal);
    if (this.#state !== "open") {
      throw new InvalidInputError(
        `${this.#core.label}: putMultiple: the upload was already ${this.#state}`,
      );
    }
  }

  #start(): Promise<{ rootDigest: Uint8Array }> {
    if (this.#call === undefined) {
      const call = this.#client.put(this.#queue, {
        signal: this.#core.signal(this.#cancel.signal, this.#signal),
      });
      call.then(
        () => this.#queue.fail(new IntegrityError("the server answered before the upload ended")),
        (err: unknown) => this.#queue.fail(err),
      );
      this.#call = call;
    }
    return this.#call;
  }

  async put(directory: Directory, options?: CallOptions): Promise<void> {
    this.#check("putMultiple: put", options);
    this.#start();
    this.#last = directory;
    try {
      await this.#queue.push(directoryToProto(directory.entries));
    } catch (err) {
      await this.abort(err);
      throw this.#core.error(err, "putMultiple: put", this.#signal, options?.signal);
    }
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    this.#check("putMultiple: close", options);
    const last = this.#last;
    if (last === undefined) {
      this.#state = "aborted";
      throw new InvalidInputError(`${this.#core.label}: putMultiple: no directories were sent`);
    }
    this.#state = "closing";
    const call = this.#start();
    this.#queue.end();
    try {
      const res = await call;
      this.#state = "closed";
      return checkRoot(res.rootDigest, last, `${this.#core.label}: putMultiple`);
    } catch (err) {
      this.#state = "aborted";
      this.#cancel.abort(err);
      throw this.#core.error(err, "putMultiple: close", this.#signal, options?.signal);
    }
  }

  async abort(reason?: unknown): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "aborted";
    this.#queue.fail(reason ?? new InvalidInputError("directory upload aborted"));
    this.#cancel.abort(reason);
  }
}
