/** Edge adapters between strata's AsyncIterable streams and the process's stdio. */
import { once } from "node:events";
import { createReadStream } from "node:fs";

/**
 * Writes a byte stream to stdout. Safe for transient streams (whose chunks
 * are reused once the next one is requested): the next chunk is only pulled
 * when stdout holds no queued data. Files and, on Linux, pipes are written
 * synchronously by Node, so this costs nothing there.
 */
export async function pipeToStdout(
  stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<void> {
  const out = process.stdout;
  for await (const chunk of stream) {
    out.write(chunk);
    if (out.writableLength > 0) await once(out, "drain");
  }
}

/** stdin (or a file) as a byte stream. */
export function readInput(file: string | undefined): AsyncIterable<Uint8Array> {
  if (file === undefined || file === "-") return process.stdin;
  return createReadStream(file, { highWaterMark: 1 << 20 });
}
