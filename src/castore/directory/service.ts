import type { CallOptions, Closeable } from "../call-options.js";
import type { B3Digest } from "../digest.js";
import type { Directory } from "../directory.js";

/**
 * Uploads a closure of directories in one go, leaves first (every directory
 * after all the directories it references, unless those are already stored).
 */
export interface DirectoryPutter {
  /**
   * Adds a directory. May reject early (InvalidInputError) when the
   * directory references a child that was neither sent before nor is stored,
   * or when a child's recorded size differs from the child's actual size.
   */
  put(directory: Directory, options?: CallOptions): Promise<void>;
  /**
   * Validates the closure and stores it atomically; resolves to the root
   * digest (the last directory sent). Rejects with InvalidInputError, and
   * stores nothing, when: nothing was sent; a directory references a child
   * that was neither sent before it nor already stored; a child's size is
   * wrong; or the directories sent form more than one root (a directory
   * sent is neither the last one nor referenced by a later one).
   * Durable when it resolves.
   */
  close(options?: CallOptions): Promise<B3Digest>;
  /** Discards everything sent; idempotent. */
  abort(reason?: unknown): Promise<void>;
}

/** Stores castore Directories by their digest. */
export interface DirectoryService extends Closeable {
  /** The directory with this digest, or `undefined`. Data read from storage is re-validated. */
  get(digest: B3Digest, options?: CallOptions): Promise<Directory | undefined>;
  /**
   * Stores one directory and returns its digest. Rejects (InvalidInputError)
   * a directory whose child directories are not all stored already, or whose
   * recorded child sizes are wrong. Durable when it resolves.
   */
  put(directory: Directory, options?: CallOptions): Promise<B3Digest>;
  /**
   * The closure of `root`: the root first, then breadth-first, each
   * directory once (deduplicated by digest). An unknown root yields nothing
   * (as Snix does). A missing child below a stored root is an IntegrityError.
   */
  getRecursive(root: B3Digest, options?: CallOptions): AsyncIterable<Directory>;
  /** Starts a leaves-first upload of a closure. */
  putMultiple(options?: CallOptions): DirectoryPutter;
}
