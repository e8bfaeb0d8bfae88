/**
 * What the three gRPC clients share: the connection, closing (every call
 * still running is cancelled and then fails with a StorageError), per-call
 * signals, and turning wire failures into StrataErrors with context.
 * Browser-safe.
 */

import { AbortedError, StorageError, type StrataError } from "../../errors.js";
import type { CallOptions } from "../call-options.js";
import type { GrpcConnection } from "./connection.js";
import { fromWire } from "./status.js";

export interface GrpcClientInit {
  /** The instance name (config key or URL), shown in errors. */
  readonly instanceName?: string;
  /** Whether closing the client closes the connection (default true). */
  readonly ownsConnection?: boolean;
}

/** What a call does, for error messages; a function when building the text costs (digests). */
export type Lazy = string | (() => string);

const text = (what: Lazy): string => (typeof what === "string" ? what : what());

export class ClientCore {
  readonly conn: GrpcConnection;
  /** `<kind> '<instance>' at <target>`, the prefix of every error message. */
  readonly label: string;
  readonly #owns: boolean;
  readonly #closer = new AbortController();
  #closed = false;

  constructor(conn: GrpcConnection, kind: string, init: GrpcClientInit = {}) {
    this.conn = conn;
    this.#owns = init.ownsConnection ?? true;
    const name = init.instanceName;
    this.label =
      name === undefined || name === conn.target
        ? `gRPC ${kind} ${conn.target}`
        : `gRPC ${kind} '${name}' (${conn.target})`;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Fires when the client is closed. */
  get closeSignal(): AbortSignal {
    return this.#closer.signal;
  }

  /** Throws what a call gets after close() or with a fired signal. */
  check(what: Lazy, ...signals: (AbortSignal | undefined)[]): void {
    if (this.#closed) {
      throw new StorageError(`${this.label}: ${text(what)}: the service is closed`);
    }
    for (const s of signals) {
      if (s?.aborted) {
        throw new AbortedError(`${this.label}: ${text(what)}: aborted`, { cause: s.reason });
      }
    }
  }

  /** The signal a call runs with: the caller's ones and the client's close. */
  signal(...signals: (AbortSignal | undefined)[]): AbortSignal {
    // Always a signal of its own: connect adds a listener per call to the
    // signal it gets, and many concurrent calls on the shared close signal
    // would trip Node's listener leak warning.
    const all = signals.filter((s): s is AbortSignal => s !== undefined);
    return AbortSignal.any([this.#closer.signal, ...all]);
  }

  /** A wire failure (or our own validation error) as the StrataError the caller gets. */
  error(err: unknown, what: Lazy, ...signals: (AbortSignal | undefined)[]): StrataError {
    const fired = signals.find((s) => s?.aborted);
    return fromWire(err, {
      what: `${this.label}: ${text(what)}`,
      signal: fired,
      closed: this.#closed,
    });
  }

  /**
   * Runs one call: checks first, gives it the caller's signal (close()
   * cancels the call by closing the connection), maps failures. No promise
   * or signal of its own: at thousands of small calls per second every
   * allocation counts.
   */
  run<T>(
    what: Lazy,
    options: CallOptions | undefined,
    body: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    const caller = options?.signal;
    let pending: Promise<T>;
    try {
      this.check(what, caller);
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      pending = body(caller);
    } catch (err) {
      return Promise.reject(this.error(err, what, caller));
    }
    return pending.then(undefined, (err: unknown) => {
      throw this.error(err, what, caller);
    });
  }

  /** Cancels every call and closes the connection if owned. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closer.abort(new StorageError(`${this.label}: the service is closed`));
    if (this.#owns) this.conn.close();
  }
}
