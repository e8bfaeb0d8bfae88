/** Edge adapters between strata's AsyncIterable streams and the process's stdio. */
import { once } from "node:events";
import { createReadStream, fstatSync } from "node:fs";

/**
 * Whether stdout is written synchronously (a file or a character device such
 * as /dev/null): then a chunk is with the OS as soon as write() returns, and
 * producers may recycle their buffers (transient streams) for free.
 */
export function stdoutIsSynchronous(): boolean {
  try {
    const st = fstatSync(1);
    return st.isFile() || st.isCharacterDevice();
  } catch {
    return false;
  }
}

/**
 * Writes a byte stream to stdout with back-pressure. For a transient stream
 * (chunks reused once the next one is requested) each chunk is first handed
 * to the OS (the write callback) before the next is pulled; otherwise writes
 * are pipelined and only `drain` is awaited.
 */
export async function pipeToStdout(
  stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: { transient?: boolean } = {},
): Promise<void> {
  const out = process.stdout;
  for await (const chunk of stream) {
    if (options.transient) {
      await new Promise<void>((resolve, reject) => {
        out.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
    } else if (!out.write(chunk)) {
      await once(out, "drain");
    }
  }
}

/** stdin (or a file) as a byte stream. */
export function readInput(file: string | undefined): AsyncIterable<Uint8Array> {
  if (file === undefined || file === "-") return process.stdin;
  return createReadStream(file, { highWaterMark: 1 << 20 });
}
