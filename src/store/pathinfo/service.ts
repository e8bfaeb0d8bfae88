import type { CallOptions, Closeable } from "../../castore/call-options.js";
import type { PathInfo } from "../path-info.js";

/**
 * Stores PathInfos keyed by the 20-byte digest of their store path
 * (the nixbase32-decoded hash part).
 */
export interface PathInfoService extends Closeable {
  /** The PathInfo whose store path digest is `digest`, or `undefined`. A digest that is not 20 bytes is an InvalidInputError. */
  get(digest: Uint8Array, options?: CallOptions): Promise<PathInfo | undefined>;
  /**
   * Validates and stores a PathInfo, replacing any earlier one for the same
   * store path; resolves to what was stored. The caller is responsible for
   * the castore content it references being durable first. Durable when it
   * resolves.
   */
  put(info: PathInfo, options?: CallOptions): Promise<PathInfo>;
  /** Streams every stored PathInfo (order unspecified). */
  list(options?: CallOptions): AsyncIterable<PathInfo>;
}
