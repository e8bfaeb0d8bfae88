import type { TestContext } from "node:test";

/**
 * The one rule for tests that need an external tool: when `available`, go
 * on; when not, fail if `requiredBy` is set to 1 in the environment (CI sets
 * it, so nothing skips there), else skip with a visible message.
 */
export function requireOrSkip(
  t: TestContext,
  available: boolean,
  message: string,
  requiredBy: string,
): boolean {
  if (available) return true;
  if (process.env[requiredBy] === "1") throw new Error(`${requiredBy}=1 but: ${message}`);
  console.warn(`# ${message}`);
  t.skip(message);
  return false;
}
