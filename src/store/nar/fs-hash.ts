import { fsNarSource } from "./fs-source.js";
import { hashNarStream, type NarHashResult } from "./hash.js";
import { writeNar } from "./writer.js";

/** SHA-256 and size of the NAR of a path on disk (`nix hash path`), with recycled buffers. */
export function hashPathNar(path: string, signal?: AbortSignal): Promise<NarHashResult> {
  const opts = signal === undefined ? { transient: true } : { transient: true, signal };
  return hashNarStream(writeNar(fsNarSource(path, { reuseBuffer: true }), opts));
}
