/**
 * The one place where strata's error codes (ARCHITECTURE §6) and gRPC status
 * codes meet, in both directions: the server answers a StrataError with
 * `toConnectError`, the clients turn what they receive back into a
 * StrataError with `fromWire`. Browser-safe.
 *
 * | strata            | gRPC                | back to strata            |
 * |-------------------|---------------------|---------------------------|
 * | (not found)       | NOT_FOUND           | `undefined` where the interface says so, else Storage |
 * | InvalidInput      | INVALID_ARGUMENT    | InvalidInput (also OUT_OF_RANGE) |
 * | Integrity         | DATA_LOSS           | Integrity                 |
 * | Unavailable       | UNAVAILABLE         | Unavailable (also DEADLINE_EXCEEDED, ABORTED, CANCELLED when we did not cancel, and connection failures) |
 * | Storage, Config, anything else | INTERNAL | Storage (also UNKNOWN, UNIMPLEMENTED, RESOURCE_EXHAUSTED, ...) |
 * | Aborted           | CANCELLED           | Aborted when our own signal fired |
 *
 * Messages travel as they are (the reason of an INVALID_ARGUMENT is what the
 * client shows), with the cause chain joined by ": ".
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AbortedError,
  IntegrityError,
  InvalidInputError,
  StorageError,
  StrataError,
  UnavailableError,
} from "../../errors.js";

/** The error message and its causes as one line, for `grpc-message`. */
export function messageChain(err: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && !seen.has(cur) && parts.length < 8) {
    seen.add(cur);
    if (cur instanceof ConnectError) {
      parts.push(cur.rawMessage);
    } else if (cur instanceof Error) {
      parts.push(cur.message);
    } else {
      parts.push(String(cur));
      break;
    }
    cur = (cur as Error).cause;
  }
  return parts.filter((p) => p !== "").join(": ");
}

const CODE_BY_STRATA: Readonly<Record<StrataError["code"], Code>> = {
  InvalidInput: Code.InvalidArgument,
  Integrity: Code.DataLoss,
  Unavailable: Code.Unavailable,
  Storage: Code.Internal,
  Config: Code.Internal,
  Aborted: Code.Canceled,
};

/** The gRPC status code the server answers for an error. */
export function grpcCodeFor(err: unknown): Code {
  if (err instanceof ConnectError) return err.code;
  if (err instanceof StrataError) return CODE_BY_STRATA[err.code];
  return Code.Internal;
}

/**
 * What a server handler throws for an error from a store: a ConnectError
 * with the mapped code and the message chain. ConnectErrors (limits,
 * protocol errors, a nested client's own) pass unchanged.
 */
export function toConnectError(err: unknown, code: Code = grpcCodeFor(err)): ConnectError {
  if (err instanceof ConnectError) return err;
  return new ConnectError(messageChain(err), code, undefined, undefined, err);
}

/** Where a client call failed, for messages and for the Aborted/closed decision. */
export interface CallContext {
  /** E.g. `BlobService/Stat of b3:... at grpc+unix:///run/strata.sock`. */
  readonly what: string;
  /** The caller's signal: when it fired, the call ended because of it. */
  readonly signal?: AbortSignal | undefined;
  /** Whether the service was closed (its calls are cancelled on close). */
  readonly closed?: boolean;
}

/** A hint appended to UNIMPLEMENTED errors: the usual cause is the package name. */
const UNIMPLEMENTED_HINT =
  " (the server does not implement this method under this package name: a Tvix server needs '?package=tvix' in the URL)";

/**
 * Converts what a client call threw into a StrataError. StrataErrors (our
 * own validation of what arrived) pass unchanged; a fired signal wins over
 * whatever the transport made of it.
 */
export function fromWire(err: unknown, ctx: CallContext): StrataError {
  if (ctx.closed === true) {
    return new StorageError(`${ctx.what}: the service is closed`, { cause: err });
  }
  if (ctx.signal?.aborted === true) {
    return new AbortedError(`${ctx.what}: aborted`, { cause: ctx.signal.reason ?? err });
  }
  if (err instanceof StrataError) return err;
  if (!(err instanceof ConnectError)) {
    return new StorageError(`${ctx.what}: ${messageChain(err)}`, { cause: err });
  }
  const message = `${ctx.what}: ${err.rawMessage}`;
  if ((err.code === Code.Internal || err.code === Code.Unknown) && isUnreachable(err)) {
    return new UnavailableError(message, { cause: err });
  }
  switch (err.code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return new InvalidInputError(message, { cause: err });
    case Code.DataLoss:
      return new IntegrityError(message, { cause: err });
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Canceled:
      return new UnavailableError(message, { cause: err });
    case Code.Unimplemented:
      return new StorageError(`${message}${UNIMPLEMENTED_HINT}`, { cause: err });
    default:
      return new StorageError(`${message} (gRPC ${Code[err.code]})`, { cause: err });
  }
}

/** Node and HTTP/2 error codes that mean "the server cannot be reached (now)". */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOENT",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
]);

/**
 * Whether a failure is the connection's (refused, reset, socket missing, a
 * stream refused by a server going away), which connect reports as
 * INTERNAL for some of them: those are Unavailable (retryable).
 */
function isUnreachable(err: unknown): boolean {
  const seen = new Set<unknown>();
  for (let cur = err; cur instanceof Error && !seen.has(cur); cur = cur.cause) {
    seen.add(cur);
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && UNREACHABLE.has(code)) return true;
    if (cur.message.includes("NGHTTP2_REFUSED_STREAM")) return true;
  }
  return false;
}

/** Whether a client call failed with NOT_FOUND. */
export function isNotFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}
