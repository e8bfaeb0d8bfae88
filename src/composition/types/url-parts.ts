/**
 * Checks for the parts of a service URL, shared by the built-in types and
 * usable by types registered from outside. Each check throws a ConfigError
 * whose message names the offending part; the registry prefixes it with the
 * service kind and the whole URL. `form` is how the type's URL is shown to
 * the user, e.g. `memory://` or `lmdb://`.
 *
 * Notes on the WHATWG parser (`new URL`) these rely on: for schemes it does
 * not know (all of ours), `x://` has an empty host and an empty path, `x:///`
 * has path `/`, `x://h/p` has host `h`, the scheme is lower-cased, and `..`
 * segments are resolved.
 */
import { ConfigError } from "../../errors.js";

/** The part of the scheme after the first `+` (`objectstore+file:` -> `file`), or undefined. */
export function schemeVariant(url: URL): string | undefined {
  const scheme = url.protocol.slice(0, -1);
  const plus = scheme.indexOf("+");
  return plus === -1 ? undefined : scheme.slice(plus + 1);
}

/** Rejects a `+variant` in the scheme (`memory+x://`). */
export function rejectVariant(url: URL, form: string): void {
  const variant = schemeVariant(url);
  if (variant !== undefined) {
    throw new ConfigError(`${form} has no '+' variants ('${url.protocol}//')`);
  }
}

/** Rejects a host, port or credentials (`memory://foo`). */
export function rejectHost(url: URL, form: string, hint = ""): void {
  if (url.host !== "" || url.username !== "" || url.password !== "") {
    const host = url.host !== "" ? url.host : "credentials";
    throw new ConfigError(`${form} takes no host ('${host}')${hint}`);
  }
}

/** Rejects a non-empty path (`memory:///`, `memory:///foo`). */
export function rejectPath(url: URL, form: string): void {
  if (url.pathname !== "") {
    throw new ConfigError(`${form} takes no path ('${url.pathname}')`);
  }
}

/** Rejects a fragment (`#...`): nothing of ours uses one, so it is a typo. */
export function rejectFragment(url: URL, form: string): void {
  if (url.hash !== "") {
    throw new ConfigError(`${form} takes no fragment ('${url.hash}')`);
  }
}

/**
 * Rejects query parameters not in `known` (naming all of them) and known
 * ones given twice (ambiguous); returns the known ones that are present.
 */
export function checkQuery(
  url: URL,
  form: string,
  known: readonly string[] = [],
): Map<string, string> {
  const unknown: string[] = [];
  const seen = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!known.includes(key)) {
      if (!unknown.includes(key)) unknown.push(key);
    } else if (seen.has(key)) {
      throw new ConfigError(`${form}: query parameter '${key}' is given more than once`);
    } else {
      seen.set(key, value);
    }
  }
  if (unknown.length > 0) {
    const names = unknown.map((k) => `'${k}'`).join(", ");
    const takes =
      known.length === 0 ? "it takes none" : `known: ${known.map((k) => `'${k}'`).join(", ")}`;
    throw new ConfigError(
      `${form}: unknown query parameter${unknown.length > 1 ? "s" : ""} ${names} (${takes})`,
    );
  }
  return seen;
}

/** For types whose URL is just `<tag>://`: rejects a variant, host, path, query and fragment. */
export function rejectAllParts(url: URL, form: string): void {
  rejectVariant(url, form);
  rejectHost(url, form);
  rejectPath(url, form);
  checkQuery(url, form);
  rejectFragment(url, form);
}

/**
 * The URL's path as a filesystem path (percent-escapes decoded), or
 * undefined when the URL has no path. The path must be absolute and must
 * not be `/` (a store directory at the file system root is always a
 * mistake — Snix refuses it too). A trailing `/` is dropped.
 */
export function localPathFromUrl(url: URL, form: string): string | undefined {
  if (url.pathname === "") return undefined;
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch (cause) {
    throw new ConfigError(`${form}: path '${url.pathname}' has a bad percent-escape`, { cause });
  }
  const problem = localPathProblem(path);
  if (problem !== undefined) throw new ConfigError(`${form}: path ${problem}`);
  return path.replace(/\/+$/, "");
}

/**
 * What is wrong with a store directory path (from a URL or a config
 * field), or undefined if it is usable. POSIX paths only, like the store.
 */
export function localPathProblem(path: string): string | undefined {
  if (path.includes("\0")) return `'${path.replaceAll("\0", "\\0")}' contains a NUL byte`;
  if (!path.startsWith("/")) return `'${path}' is not absolute`;
  if (/^\/+$/.test(path)) return `'${path}' is the file system root; refusing to use it`;
  return undefined;
}

/** One `key=value` of a URL query: decoded key and value, and the pair as written. */
export interface QueryPair {
  readonly key: string;
  readonly value: string;
  readonly raw: string;
}

/**
 * The query of a URL as pairs, for the types whose parameters hold URLs
 * (`cache://?near=URL&far=URL`, `?cache=URL`). Unlike `url.searchParams`,
 * a `+` stays a `+` (form encoding would turn it into a space, and store
 * URLs are full of `+`: `objectstore+file://`, `grpc+https://`); only
 * percent-escapes are decoded. So inside a parameter value only `%`, `&`
 * and `#` must be escaped (`%25`, `%26`, `%23`); escaping the whole inner
 * URL with `encodeURIComponent` is always right.
 */
export function rawQueryPairs(url: URL, form: string): QueryPair[] {
  const search = url.search.startsWith("?") ? url.search.slice(1) : url.search;
  if (search === "") return [];
  const pairs: QueryPair[] = [];
  for (const raw of search.split("&")) {
    if (raw === "") continue;
    const eq = raw.indexOf("=");
    const rawKey = eq === -1 ? raw : raw.slice(0, eq);
    const rawValue = eq === -1 ? "" : raw.slice(eq + 1);
    try {
      pairs.push({ key: decodeURIComponent(rawKey), value: decodeURIComponent(rawValue), raw });
    } catch (cause) {
      const where = form === "" ? "" : `${form}: `;
      throw new ConfigError(`${where}query parameter '${raw}' has a bad percent-escape`, { cause });
    }
  }
  return pairs;
}
