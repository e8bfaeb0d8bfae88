/**
 * Helpers the path info combinators share: the union of several stores'
 * listings (each store path once, the first store's version winning; a
 * failing store skipped with a warning), how a store path digest is shown
 * in messages, and how the combinators name their kind. Browser-safe.
 */
import type { CallOptions } from "../../../castore/call-options.js";
import type { SelectCaller } from "../../../castore/combinators/select.js";
import {
  type CombinatorKind,
  type CombinatorState,
  closeIterator,
  isCallerError,
  type Member,
} from "../../../castore/combinators/support.js";
import { digestKey } from "../../../castore/digest.js";
import { UnavailableError, withContext } from "../../../errors.js";
import { nixbase32Encode } from "../../nixbase32.js";
import type { PathInfo } from "../../path-info.js";
import { STORE_PATH_DIGEST_LENGTH } from "../../store-path.js";
import type { PathInfoService } from "../service.js";

/** How the path info combinators name themselves (`path info cache 'root'`, `store.pathinfo.cache`). */
export const PATH_INFO_KIND: CombinatorKind = { noun: "path info", module: "store.pathinfo" };

/** A store path digest as its nixbase32 hash part (or its length, when it is no digest). */
export function describeDigest(digest: Uint8Array): string {
  return digest.length === STORE_PATH_DIGEST_LENGTH
    ? nixbase32Encode(digest)
    : `<${digest.length}-byte digest>`;
}

/**
 * Every store's listing in store order, each store path once. A store that
 * fails is skipped from where it failed (with a warning); all of them
 * failing is an UnavailableError.
 */
export async function* unionList(
  stores: readonly Member<PathInfoService>[],
  state: CombinatorState,
  options: CallOptions | undefined,
  caller: SelectCaller,
): AsyncGenerator<PathInfo> {
  state.check(options);
  const seen = new Set<string>();
  const failures: unknown[] = [];
  for (const store of stores) {
    const it = store.service.list(options)[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<PathInfo>;
        try {
          next = await it.next();
        } catch (err) {
          state.check(options);
          if (isCallerError(err)) throw err;
          const failure = withContext(err, `${caller.what}: store '${store.name}' failed (list)`);
          failures.push(failure);
          caller.log.warn(`store '${store.name}' failed while listing, skipping it`, {
            store: store.name,
            op: "list",
            error: failure,
          });
          break;
        }
        if (next.done === true) break;
        state.check(options);
        const key = digestKey(next.value.storePath.digest);
        if (seen.has(key)) continue;
        seen.add(key);
        yield next.value;
        state.check(options);
      }
    } finally {
      await closeIterator(it);
    }
  }
  if (stores.length > 0 && failures.length === stores.length) {
    throw new UnavailableError(`${caller.what}: list: all ${stores.length} stores failed`, {
      cause: new AggregateError(failures, `${failures.length} stores failed`),
    });
  }
}
