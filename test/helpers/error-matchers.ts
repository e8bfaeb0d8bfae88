/**
 * `assert.rejects` matchers for strata's error codes (ARCHITECTURE §6).
 */
import assert from "node:assert/strict";
import { type ErrorCode, StrataError } from "../../src/errors.js";

/**
 * Any Error whose `code` is `code` (and whose message matches `pattern`):
 * checked by code rather than class, so that clients which map wire errors
 * back to codes pass too.
 */
export function withCode(code: ErrorCode, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown): boolean => {
    assert.ok(err instanceof Error, `expected an Error, got ${String(err)}`);
    assert.equal((err as Error & { code?: unknown }).code, code, `code of: ${err.message}`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  };
}

/** A StrataError with code `code` (and a message matching `pattern`). */
export function strataError(code: ErrorCode, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StrataError, `expected a StrataError, got ${String(err)}`);
    assert.equal(err.code, code, `code of: ${err.message}`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  };
}
