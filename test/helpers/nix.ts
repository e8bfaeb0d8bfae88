/**
 * Access to the real Nix (Debian `nix-bin`, 2.8) as the oracle in tests.
 *
 * Tests that need Nix call `requireNix(t)` (node:test context): when Nix is
 * absent they skip with a visible message, unless STRATA_REQUIRE_NIX=1 (set
 * by `.ci/run`), in which case a missing Nix fails the test instead.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { requireOrSkip } from "./require.js";

let cached: boolean | undefined;

export function nixAvailable(): boolean {
  if (cached === undefined) {
    const r = spawnSync("nix-store", ["--version"], { encoding: "utf8" });
    cached = r.status === 0;
  }
  return cached;
}

const SKIP_MESSAGE = "SKIPPED: real Nix not installed (apt-get install -y nix-bin; CI installs it)";

/** Returns true if the test may use Nix; otherwise skips it (or fails in CI). */
export function requireNix(t: TestContext): boolean {
  return requireOrSkip(t, nixAvailable(), SKIP_MESSAGE, "STRATA_REQUIRE_NIX");
}

let env: NodeJS.ProcessEnv | undefined;

/** Environment for daemon-less single-user Nix with a private narinfo disk cache. */
export function nixEnv(): NodeJS.ProcessEnv {
  if (env === undefined) {
    env = {
      ...process.env,
      NIX_PAGER: "cat",
      XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), "strata-nix-cache-")),
    };
    delete env.NIX_REMOTE;
    // `nix <subcommand>` needs this in 2.8; nix-store does not.
    env.NIX_CONFIG = [
      "experimental-features = nix-command",
      "substituters =",
      env.NIX_CONFIG ?? "",
    ].join("\n");
  }
  return env;
}

/** Runs a Nix command and returns stdout (as a Buffer when `binary`). */
export function nix(cmd: string, args: readonly string[], input?: Uint8Array): string {
  return execFileSync(cmd, args, {
    env: nixEnv(),
    input,
    encoding: "utf8",
    maxBuffer: 1 << 30,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

export function nixBinary(cmd: string, args: readonly string[], input?: Uint8Array): Buffer {
  return execFileSync(cmd, args, {
    env: nixEnv(),
    input,
    maxBuffer: 1 << 30,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** A fresh throw-away chroot store root (`--store ROOT`): logical paths stay /nix/store. */
export function tempStoreRoot(): string {
  return mkdtempSync(join(tmpdir(), "strata-nix-root-"));
}
