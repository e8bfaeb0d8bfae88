/**
 * `Range: bytes=...` (RFC 9110 §14.1.2) for one range. Multiple ranges and
 * malformed headers are ignored (the whole representation is sent, which
 * the RFC allows); a range that starts at or beyond the end is unsatisfiable
 * (416).
 */
export type RangeRequest =
  | { readonly kind: "range"; readonly start: number; readonly end: number }
  | { readonly kind: "unsatisfiable" }
  | undefined;

const SPEC = /^bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i;

/** The range asked for within `size` bytes; `end` is exclusive. */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return undefined;
  const m = SPEC.exec(header);
  if (m === null) return undefined;
  const [, a, b] = m as unknown as [string, string, string];
  if (a === "" && b === "") return undefined;
  if (a === "") {
    const n = Number(b);
    if (!Number.isSafeInteger(n)) return undefined;
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "range", start: Math.max(0, size - n), end: size };
  }
  const start = Number(a);
  if (!Number.isSafeInteger(start)) return undefined;
  if (start >= size) return { kind: "unsatisfiable" };
  if (b === "") return { kind: "range", start, end: size };
  const last = Number(b);
  if (!Number.isSafeInteger(last) || last < start) return undefined;
  return { kind: "range", start, end: Math.min(last + 1, size) };
}
