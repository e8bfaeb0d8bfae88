/**
 * What the combinator types (cache, priority, race, lru, retry) share: the
 * schema of a field that refers to another service, the strict parsing of
 * their URLs (whose query values are URLs themselves; see `rawQueryPairs`
 * for the escaping), and resolving their inner services into named members.
 */
import { z } from "zod";
import type { Member } from "../../castore/combinators/support.js";
import { ConfigError } from "../../errors.js";
import {
  type BuildContext,
  instanceLogger,
  referenceName,
  type ServiceByKind,
  type ServiceConfig,
  type ServiceKind,
} from "../registry.js";
import {
  rawQueryPairs,
  rejectFragment,
  rejectHost,
  rejectPath,
  rejectVariant,
} from "./url-parts.js";

/** A reference to another service of the same kind: an entry name, a URL, or an inline config. */
export const refSchema = z
  .union([
    z.string().min(1, "a reference is an entry name or a URL; got an empty string"),
    z.looseObject({ type: z.string() }),
  ])
  .describe(
    "Another store of the same kind: the name of an entry in this section, an ad-hoc URL (anything containing '://'), or an inline config table.",
  );

export type Ref = z.infer<typeof refSchema>;

/** `negative_ttl_ms` of cache, priority and race. */
export const negativeTtlSchema = z
  .number()
  .int()
  .min(0)
  .optional()
  .describe(
    "Remember misses for this many milliseconds (0 or absent: not at all). A miss is forgotten as soon as the item is put through this instance.",
  );

/** What `combinatorQuery` returns: the single-valued and the repeated parameters. */
export interface CombinatorQuery {
  readonly single: ReadonlyMap<string, string>;
  readonly multi: ReadonlyMap<string, readonly string[]>;
}

/**
 * Checks a combinator URL (`<tag>://?k=v&...`): no `+variant`, host, path
 * or fragment; only the known parameters, `single` ones at most once,
 * `multi` ones any number of times (in order).
 */
export function combinatorQuery(
  url: URL,
  form: string,
  known: { readonly single?: readonly string[]; readonly multi?: readonly string[] },
): CombinatorQuery {
  rejectVariant(url, form);
  rejectHost(url, form);
  rejectPath(url, form);
  rejectFragment(url, form);
  const singleNames = known.single ?? [];
  const multiNames = known.multi ?? [];
  const single = new Map<string, string>();
  const multi = new Map<string, string[]>(multiNames.map((k) => [k, []]));
  const unknown: string[] = [];
  for (const { key, value } of rawQueryPairs(url, form)) {
    const list = multi.get(key);
    if (list !== undefined) list.push(value);
    else if (!singleNames.includes(key)) {
      if (!unknown.includes(key)) unknown.push(key);
    } else if (single.has(key)) {
      throw new ConfigError(`${form}: query parameter '${key}' is given more than once`);
    } else {
      single.set(key, value);
    }
  }
  if (unknown.length > 0) {
    const all = [...singleNames, ...multiNames].map((k) => `'${k}'`).join(", ");
    throw new ConfigError(
      `${form}: unknown query parameter${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `'${k}'`).join(", ")} (known: ${all})`,
    );
  }
  return { single, multi };
}

/** A required query parameter. */
export function requiredParam(query: CombinatorQuery, name: string, form: string): string {
  const value = query.single.get(name);
  if (value === undefined) throw new ConfigError(`${form}: query parameter '${name}' is missing`);
  return value;
}

/**
 * A non-negative integer query parameter, or undefined when absent. The
 * range is the schema's to check; this only insists on digits.
 */
export function intParam(query: CombinatorQuery, name: string, form: string): number | undefined {
  const value = query.single.get(name);
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) {
    throw new ConfigError(
      `${form}: query parameter '${name}' must be a whole number, got '${value}'`,
    );
  }
  return Number(value);
}

/** Copies the entries of `fields` whose value is defined (for `exactOptionalPropertyTypes`). */
export function defined<T extends Record<string, unknown>>(
  fields: T,
): { [P in keyof T]?: Exclude<T[P], undefined> } {
  const out: { [P in keyof T]?: Exclude<T[P], undefined> } = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/**
 * Resolves reference fields into named members, in order. If one fails,
 * the ones resolved before it are closed again (a composition hands out
 * handles whose close does nothing, so that is always safe).
 */
export async function resolveMembers<K extends ServiceKind>(
  ctx: BuildContext,
  kind: K,
  refs: readonly { readonly field: string; readonly ref: string | ServiceConfig }[],
): Promise<Member<ServiceByKind[K]>[]> {
  const out: Member<ServiceByKind[K]>[] = [];
  try {
    for (const { field, ref } of refs) {
      const service = await ctx.resolve(kind, ref, field);
      out.push({ name: referenceName(ref, ctx.instanceName, field), service });
    }
  } catch (err) {
    await Promise.allSettled(out.map((m) => m.service.close()));
    throw err;
  }
  return out;
}

/** The injected dependencies of a combinator built by the registry. */
export function combinatorDeps(
  ctx: BuildContext,
  module: string,
): { instanceName: string; log: ReturnType<typeof instanceLogger> } {
  return { instanceName: ctx.instanceName, log: instanceLogger(ctx, module) };
}

/** Field name of the i-th element of a list field, as paths show it. */
export function listField(field: string, i: number): string {
  return `${field}[${i}]`;
}

/** Module name of a kind's combinator in log filters: `castore.blob.cache`, `store.pathinfo.race`. */
export function combinatorModule(kind: ServiceKind, tag: string): string {
  const prefix =
    kind === "blob"
      ? "castore.blob"
      : kind === "directory"
        ? "castore.directory"
        : "store.pathinfo";
  return `${prefix}.${tag}`;
}
