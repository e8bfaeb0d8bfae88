import { join } from "node:path";

/** The built CLI (dist/src/cli/main.js) as seen from dist/bench/. */
export const STRATA_BIN_FOR_BENCH = join(import.meta.dirname, "../src/cli/main.js");
