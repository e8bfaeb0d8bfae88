/**
 * A minimal structured logger (ARCHITECTURE §8). Browser-safe: no `node:`
 * imports; the default sink writes to `process.stderr` where there is one
 * and to `console.error` otherwise.
 *
 * Filtering comes from one variable, `STRATA_LOG`: a comma-separated list of
 * `LEVEL` (the default for every module) and `MODULE=LEVEL` entries, e.g.
 * `STRATA_LOG=info,composition=debug,store.pathinfo=trace`. A module filter
 * applies to the module and everything below it (`castore.blob` covers
 * `castore.blob.cache`); the longest matching prefix wins. Levels, most to
 * least severe: `error`, `warn`, `info`, `debug`, `trace`, plus `off`.
 * Without `STRATA_LOG` only warnings and errors are written.
 *
 * Records are JSON lines when stderr is not a TTY (for log collectors), and
 * one readable line (`time LEVEL module [instance] message key=value ...`)
 * on a TTY. Every record of a service instance carries its `instance` name.
 */

export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

const SEVERITY: Readonly<Record<LogLevel | "off", number>> = {
  off: 0,
  error: 1,
  warn: 2,
  info: 3,
  debug: 4,
  trace: 5,
};

/** Extra data of a record. Errors are rendered with their cause chain. */
export type LogFields = Readonly<Record<string, unknown>>;

/** One log record as handed to a sink. */
export interface LogRecord {
  readonly time: string;
  readonly level: LogLevel;
  readonly module: string;
  readonly msg: string;
  readonly fields: LogFields;
}

/** Where records go (stderr by default; tests collect them). */
export type LogSink = (record: LogRecord) => void;

/** Which levels are enabled per module; made by `parseLogSpec`. */
export interface LogFilter {
  /** The most verbose level enabled for `module` (`off`: none). */
  levelFor(module: string): LogLevel | "off";
}

/**
 * Parses a `STRATA_LOG` value. Unknown level names are ignored (with the
 * default kept) rather than failing: a typo in a logging variable must not
 * stop a store from working.
 */
export function parseLogSpec(
  spec: string | undefined,
  fallback: LogLevel | "off" = "warn",
): LogFilter {
  let defaultLevel: LogLevel | "off" = fallback;
  const modules: [string, LogLevel | "off"][] = [];
  for (const raw of (spec ?? "").split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    const eq = part.indexOf("=");
    const level = (eq === -1 ? part : part.slice(eq + 1)).trim().toLowerCase();
    if (!(level in SEVERITY)) continue;
    if (eq === -1) defaultLevel = level as LogLevel | "off";
    else modules.push([part.slice(0, eq).trim(), level as LogLevel | "off"]);
  }
  // Longest prefix first, so the most specific filter wins.
  modules.sort((a, b) => b[0].length - a[0].length);
  return {
    levelFor(module: string): LogLevel | "off" {
      for (const [prefix, level] of modules) {
        if (module === prefix || module.startsWith(`${prefix}.`)) return level;
      }
      return defaultLevel;
    },
  };
}

interface StderrLike {
  readonly isTTY?: boolean;
  write(s: string): unknown;
}

function processStderr(): StderrLike | undefined {
  const proc = (globalThis as { process?: { stderr?: StderrLike } }).process;
  return proc?.stderr;
}

function processEnv(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

/** A field value as JSON-friendly data (errors as their message chain). */
function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const chain: string[] = [];
    const seen = new Set<unknown>();
    let cur: unknown = value;
    while (cur instanceof Error && !seen.has(cur)) {
      seen.add(cur);
      chain.push(cur.message);
      cur = cur.cause;
    }
    return chain.join(": ");
  }
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** Renders records as JSON lines (not a TTY) or readable lines (TTY) on stderr. */
export function stderrSink(json?: boolean): LogSink {
  return (record) => {
    const out = processStderr();
    const asJson = json ?? out?.isTTY !== true;
    let line: string;
    if (asJson) {
      const obj: Record<string, unknown> = {
        time: record.time,
        level: record.level,
        module: record.module,
        msg: record.msg,
      };
      for (const [k, v] of Object.entries(record.fields)) obj[k] = plain(v);
      line = JSON.stringify(obj);
    } else {
      const { instance, ...rest } = record.fields;
      const who = instance === undefined ? "" : ` [${String(instance)}]`;
      const extra = Object.entries(rest)
        .map(([k, v]) => ` ${k}=${JSON.stringify(plain(v))}`)
        .join("");
      line = `${record.time} ${record.level.toUpperCase()} ${record.module}${who} ${record.msg}${extra}`;
    }
    if (out !== undefined) out.write(`${line}\n`);
    else console.error(line);
  };
}

/** What a Logger is made from; every field has a default. */
export interface LoggerInit {
  /** Dotted module name, e.g. `composition` or `store.pathinfo.priority`. */
  readonly module: string;
  /** Default: from `STRATA_LOG` (read once per process). */
  readonly filter?: LogFilter;
  /** Default: `stderrSink()`. */
  readonly sink?: LogSink;
  /** Fields on every record (e.g. `instance`). */
  readonly fields?: LogFields;
}

let envFilter: LogFilter | undefined;

/** The filter from `STRATA_LOG`, parsed on first use. */
export function envLogFilter(): LogFilter {
  envFilter ??= parseLogSpec(processEnv("STRATA_LOG"));
  return envFilter;
}

export class Logger {
  readonly module: string;
  readonly #filter: LogFilter;
  readonly #sink: LogSink;
  readonly #fields: LogFields;
  readonly #severity: number;

  constructor(init: LoggerInit) {
    this.module = init.module;
    this.#filter = init.filter ?? envLogFilter();
    this.#sink = init.sink ?? stderrSink();
    this.#fields = init.fields ?? {};
    this.#severity = SEVERITY[this.#filter.levelFor(this.module)];
  }

  /**
   * A logger with the same filter and sink for another module (`module`
   * undefined: the same one) and extra fields on every record.
   */
  child(module: string | undefined, fields?: LogFields): Logger {
    return new Logger({
      module: module ?? this.module,
      filter: this.#filter,
      sink: this.#sink,
      fields: fields === undefined ? this.#fields : { ...this.#fields, ...fields },
    });
  }

  /** Whether records of `level` are written (to skip building expensive fields). */
  enabled(level: LogLevel): boolean {
    return SEVERITY[level] <= this.#severity;
  }

  error(msg: string, fields?: LogFields): void {
    this.#log("error", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#log("warn", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#log("info", msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.#log("debug", msg, fields);
  }
  trace(msg: string, fields?: LogFields): void {
    this.#log("trace", msg, fields);
  }

  #log(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (SEVERITY[level] > this.#severity) return;
    this.#sink({
      time: new Date().toISOString(),
      level,
      module: this.module,
      msg,
      fields: fields === undefined ? this.#fields : { ...this.#fields, ...fields },
    });
  }
}

/** A logger for `module` with the process defaults (`STRATA_LOG`, stderr). */
export function logger(module: string, fields?: LogFields): Logger {
  return new Logger(fields === undefined ? { module } : { module, fields });
}
