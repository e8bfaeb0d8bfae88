import { createSha256 } from "../sha256-node.js";

export interface NarHashResult {
  /** SHA-256 of the NAR. */
  readonly sha256: Uint8Array;
  /** Length of the NAR in bytes. */
  readonly size: number;
}

/** Hashes a NAR stream (SHA-256 + size) as it passes. */
export async function hashNarStream(nar: AsyncIterable<Uint8Array>): Promise<NarHashResult> {
  const h = createSha256();
  let size = 0;
  for await (const chunk of nar) {
    h.update(chunk);
    size += chunk.length;
  }
  return { sha256: h.digest(), size };
}
