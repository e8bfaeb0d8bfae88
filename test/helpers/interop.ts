/**
 * The cross-implementation gRPC client (Python `grpcio` + `grpcio-tools`,
 * Debian's python3-grpcio and python3-grpc-tools, run with /usr/bin/python3).
 *
 * Tests that need it call `requireInterop(t)`: when it is missing they skip
 * with a visible message, unless STRATA_REQUIRE_INTEROP=1 (set by `.ci/run`),
 * in which case a missing client fails the test instead.
 */
import { spawnSync } from "node:child_process";
import type { TestContext } from "node:test";
import { requireOrSkip } from "./require.js";

export const PYTHON = "/usr/bin/python3";

let cached: boolean | undefined;

export function interopAvailable(): boolean {
  if (cached === undefined) {
    const r = spawnSync(PYTHON, ["-c", "import grpc, grpc_tools.protoc"], { encoding: "utf8" });
    cached = r.status === 0;
  }
  return cached;
}

const SKIP_MESSAGE =
  "SKIPPED: Python gRPC not installed (apt-get install -y python3-grpcio python3-grpc-tools; CI installs it)";

/** Returns true if the test may use the Python gRPC client; otherwise skips it (or fails in CI). */
export function requireInterop(t: TestContext): boolean {
  return requireOrSkip(t, interopAvailable(), SKIP_MESSAGE, "STRATA_REQUIRE_INTEROP");
}
