/**
 * Loads the native BLAKE3 binding of `@napi-rs/blake-hash`. Node-only.
 *
 * The package's own loader asks `process.report.getReport()` whether libc
 * is musl before every load (~5 ms, more than the rest of the load), so the
 * platform package is tried directly first; npm installs only the one that
 * fits the machine (glibc or musl), so a failed require means "not this one".
 */
import { createRequire } from "node:module";

type Binding = typeof import("@napi-rs/blake-hash");

const require = createRequire(import.meta.url);

function load(): Binding {
  const libc = process.platform === "linux" ? ["-gnu", "-musl"] : ["", "-msvc", "-universal"];
  for (const suffix of libc) {
    try {
      return require(`@napi-rs/blake-hash-${process.platform}-${process.arch}${suffix}`) as Binding;
    } catch {
      // not installed here: try the next, then the package's own loader
    }
  }
  return require("@napi-rs/blake-hash") as Binding;
}

export const { Blake3Hasher, blake3: blake3Native } = load();
