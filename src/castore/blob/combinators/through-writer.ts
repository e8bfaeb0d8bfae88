/**
 * The writer of a blob `cache` that writes through: one blob to near and far
 * at once; both must end with the same digest. Browser-safe.
 */
import { IntegrityError } from "../../../errors.js";
import { bytesEqual } from "../../bytes.js";
import type { CallOptions } from "../../call-options.js";
import { innerError } from "../../combinators/support.js";
import { type B3Digest, formatB3 } from "../../digest.js";
import type { BlobWriter } from "../service.js";

export class ThroughWriter implements BlobWriter {
  readonly #near: BlobWriter;
  readonly #far: BlobWriter;
  readonly #what: string;

  /** `what` names the cache in errors. */
  constructor(near: BlobWriter, far: BlobWriter, what: string) {
    this.#near = near;
    this.#far = far;
    this.#what = what;
  }

  get bytesWritten(): number {
    return this.#near.bytesWritten;
  }

  async write(data: Uint8Array, options?: CallOptions): Promise<void> {
    await Promise.all([this.#near.write(data, options), this.#far.write(data, options)]);
  }

  async close(options?: CallOptions): Promise<B3Digest> {
    const [near, far] = await Promise.allSettled([
      this.#near.close(options),
      this.#far.close(options),
    ]);
    // (When only near failed, the blob may be in far: harmless, far holds verified content.)
    if (near.status === "rejected") throw near.reason;
    if (far.status === "rejected")
      throw innerError(far.reason, `${this.#what}: writing through to far failed`);
    if (!bytesEqual(near.value, far.value)) {
      throw new IntegrityError(
        `${this.#what}: near and far computed different digests (${formatB3(near.value)}, ${formatB3(far.value)})`,
      );
    }
    return near.value;
  }

  async abort(reason?: unknown): Promise<void> {
    await Promise.all([this.#near.abort(reason), this.#far.abort(reason)]);
  }
}
