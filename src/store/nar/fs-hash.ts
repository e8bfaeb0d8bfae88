import { fsNarStream } from "./fs-nar-stream.js";
import { hashNarStream, type NarHashResult } from "./hash.js";

/**
 * SHA-256 and size of the NAR of a path on disk (`nix hash path`). A tree is
 * read by a worker thread while this thread hashes (fs-nar-stream.ts).
 */
export function hashPathNar(path: string, signal?: AbortSignal): Promise<NarHashResult> {
  return hashNarStream(fsNarStream(path, signal === undefined ? {} : { signal }));
}
