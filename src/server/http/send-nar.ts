/** Sends a rendered NAR (src/store/nar/castore-render-node.ts) as an HTTP response body. */
import type { ServerResponse } from "node:http";
import { AbortedError, IntegrityError } from "../../errors.js";
import type { NarRender } from "../../store/nar/castore-render-node.js";

/**
 * Writes the whole render to the response (not ended) and resolves to the
 * number of bytes. Buffers go back to the render as the socket is done with
 * them, which is the backpressure. Bytes beyond `size` are an
 * IntegrityError before they are written; so is ending short of it.
 */
export async function sendNarRender(
  res: ServerResponse,
  render: NarRender,
  size: number,
  what: string,
): Promise<number> {
  let n = 0;
  try {
    for (;;) {
      const slot = await render.next();
      if (slot === undefined) break;
      if (res.destroyed) throw new AbortedError("the client closed the connection");
      n += slot.len;
      if (n > size) throw new IntegrityError(`${what} is longer than its recorded size ${size}`);
      res.write(slot.buf.subarray(0, slot.len), (err) => render.release(slot, err == null));
    }
  } finally {
    render.cancel();
  }
  if (n !== size) throw new IntegrityError(`${what} has ${n} bytes, its recorded size is ${size}`);
  return n;
}
