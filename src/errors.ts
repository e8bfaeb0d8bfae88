/**
 * The error taxonomy shared by every layer (ARCHITECTURE §6).
 *
 * Not found is never an error: services return `undefined`. Everything else
 * throws a `StrataError` (or a subclass) whose `code` is stable and whose
 * `cause` chain keeps the lower-level error, so a failure deep inside a store
 * hierarchy prints as one readable chain (see `formatErrorChain`).
 */
export type ErrorCode =
  /** Malformed input: NAR, protobuf, narinfo, URL, path, argument. */
  | "InvalidInput"
  /** Content does not match its digest, size or signature. */
  | "Integrity"
  /** A backend or the network is down; retrying may help. */
  | "Unavailable"
  /** A backend failed while storing or loading. */
  | "Storage"
  /** A configuration is invalid. */
  | "Config"
  /** The operation was cancelled through an AbortSignal. */
  | "Aborted";

export class StrataError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

export class InvalidInputError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("InvalidInput", message, options);
  }
}

export class IntegrityError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Integrity", message, options);
  }
}

export class UnavailableError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Unavailable", message, options);
  }
}

export class StorageError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Storage", message, options);
  }
}

export class ConfigError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("Config", message, options);
  }
}

export class AbortedError extends StrataError {
  constructor(message = "operation aborted", options?: { cause?: unknown }) {
    super("Aborted", message, options);
  }
}

/** Throws an `AbortedError` (keeping the signal's reason as cause) if the signal fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new AbortedError("operation aborted", { cause: signal.reason });
  }
}

/** Renders an error and its `cause` chain as `msg: cause msg: ...` lines, one per link. */
export function formatErrorChain(err: unknown): string {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && !seen.has(cur)) {
    seen.add(cur);
    if (cur instanceof Error) {
      lines.push(lines.length === 0 ? `error: ${cur.message}` : `  caused by: ${cur.message}`);
      if (cur instanceof AggregateError) {
        for (const e of cur.errors) lines.push(`  - ${e instanceof Error ? e.message : String(e)}`);
      }
      cur = cur.cause;
    } else {
      lines.push(lines.length === 0 ? `error: ${String(cur)}` : `  caused by: ${String(cur)}`);
      break;
    }
  }
  return lines.join("\n");
}

const CLASS_BY_CODE = {
  InvalidInput: InvalidInputError,
  Integrity: IntegrityError,
  Unavailable: UnavailableError,
  Storage: StorageError,
  Config: ConfigError,
  Aborted: AbortedError,
} as const;

/**
 * Wraps an error with context (which instance, which operation), keeping its
 * class (so `instanceof UnavailableError` still holds for retry logic) and
 * the original as `cause`. Errors that are not StrataErrors (a failing
 * `import()`, a backend bug) become StorageErrors.
 */
export function withContext(err: unknown, message: string): StrataError {
  if (err instanceof StrataError) return new CLASS_BY_CODE[err.code](message, { cause: err });
  return new StorageError(message, { cause: err });
}
