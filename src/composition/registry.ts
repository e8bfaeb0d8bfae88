/**
 * The service registry (ARCHITECTURE §4): maps (service kind, type tag) to a
 * `ServiceType` — a schema for the type's config object, a parser from URL to
 * that config, and a builder from config to service.
 *
 * Everything goes through config objects: a URL is first turned into the same
 * plain object a config file holds (`configFromUrl`), then validated by the
 * type's schema, then built. There is one build path for both.
 *
 * There is no global registry. `defaultRegistry()` (default-registry.ts)
 * returns a fresh one with the built-in types; code that adds types clones it
 * and registers on the clone.
 *
 * This module deliberately has no runtime dependency on zod or on any backend:
 * schemas arrive with the registered types, backends are loaded by each type's
 * `build` with a dynamic `import()`.
 */
import type { z } from "zod";
import type { BlobService } from "../castore/blob/service.js";
import type { DirectoryService } from "../castore/directory/service.js";
import { ConfigError, withContext } from "../errors.js";
import { type Logger, logger } from "../observability/log.js";
import type { PathInfoService } from "../store/pathinfo/service.js";
import { describeValue, schemaProblems } from "./config-problems.js";
import { type QueryPair, rawQueryPairs } from "./types/url-parts.js";

export type ServiceKind = "blob" | "directory" | "pathinfo";

export const SERVICE_KINDS: readonly ServiceKind[] = ["blob", "directory", "pathinfo"];

/** The service interface each kind builds. */
export interface ServiceByKind {
  blob: BlobService;
  directory: DirectoryService;
  pathinfo: PathInfoService;
}

/**
 * The table that holds a kind's instances in a composition config file
 * (issue 4); also the prefix of config error paths (`blobservices.root.path`).
 */
export const CONFIG_SECTION: Readonly<Record<ServiceKind, string>> = {
  blob: "blobservices",
  directory: "directoryservices",
  pathinfo: "pathinfoservices",
};

/** How a kind is named in messages ("blob service URL '...'"). */
export const KIND_LABEL: Readonly<Record<ServiceKind, string>> = {
  blob: "blob service",
  directory: "directory service",
  pathinfo: "path info service",
};

/**
 * A plain config object, as a config file holds it: `type` picks the
 * `ServiceType` (its tag), the other fields belong to that type's schema.
 */
export interface ServiceConfig {
  readonly type: string;
  readonly [field: string]: unknown;
}

declare const validFor: unique symbol;

/**
 * A config that the schema of its type, registered for kind `K`, accepted
 * (what `configFromUrl` and `parseConfig` return; `buildValidated` takes
 * nothing else). The brand exists only for the type checker.
 */
export type ValidServiceConfig<K extends ServiceKind = ServiceKind> = ServiceConfig & {
  readonly [validFor]: K;
};

/**
 * Resolves a field of one instance's config that refers to another service
 * (a combinator's `near`/`far`, a path info service's blob service): an
 * ad-hoc URL (anything containing `://`), an inline config object, or (once
 * composition config files exist, issue 4) the name of an instance of
 * `kind`. `field` is the referring field, for error paths.
 *
 * The caller owns what it gets and closes it when it is closed. (A
 * composition that shares one instance among several users can hand out
 * handles whose `close()` does nothing and close the instance itself.)
 */
export type Resolver = <K extends ServiceKind>(
  kind: K,
  ref: string | ServiceConfig,
  field: string,
) => Promise<ServiceByKind[K]>;

/** What a type's `build` gets besides its config. */
export interface BuildContext {
  /** The instance's name (config key, or derived from its URL); goes on every log line and error. */
  readonly instanceName: string;
  /** The registry building this instance (to build nested services). */
  readonly registry: Registry;
  /**
   * Builds a service another field of this config refers to (combinators:
   * `near`, `far`, `stores`). Without a composition only URLs and inline
   * configs resolve; issue 4 plugs a resolver for named instances in through
   * `BuildOptions.resolve`.
   */
  readonly resolve: Resolver;
  /**
   * The logger of the composition (or the process logger); types derive
   * their instance's logger from it with `instanceLogger(ctx, module)`.
   */
  readonly log?: Logger;
}

/**
 * A field of a config that refers to another service: what `references`
 * returns, and what a composition resolves before (lazily) building.
 */
export interface ServiceReference {
  readonly kind: ServiceKind;
  /** The field, as shown in paths: `near`, `stores[1]`. */
  readonly field: string;
  /** A name of an entry of `kind`, a URL (contains `://`), or an inline config. */
  readonly ref: string | ServiceConfig;
}

/**
 * One backend (or combinator) type of one kind. `C` is its config object;
 * `schema` validates it (use `z.strictObject` so unknown fields are rejected,
 * and `type: z.literal(tag)`). `C` is inferred from `schema` alone
 * (`NoInfer`): a sloppy `fromUrl` or `build` cannot widen it.
 */
export interface ServiceType<K extends ServiceKind, C extends ServiceConfig> {
  readonly kind: K;
  /** The `type` field of configs and the URL scheme up to the first `+`. */
  readonly tag: string;
  /** One line for `--help` and the config JSON Schema. */
  readonly description: string;
  /** URL forms shown to users when a scheme is unknown, e.g. `lmdb:///ABS/PATH`; default `<tag>://`. */
  readonly urlForms?: readonly string[];
  readonly schema: z.ZodType<C>;
  /**
   * Turns a URL whose scheme starts with `tag` into a config. Checks every
   * part strictly (host, port, path, query, fragment, the `+variant`) and
   * throws a ConfigError whose message names the wrong part; the registry
   * prefixes the kind and the URL.
   */
  fromUrl(url: URL): NoInfer<C>;
  /** Builds the service from a config the schema accepted. */
  build(config: NoInfer<C>, ctx: BuildContext): Promise<ServiceByKind[K]>;
  /**
   * The fields of a config that refer to other services (those `build`
   * resolves through `ctx.resolve`), so that a composition can check
   * references, find cycles and print the graph without building anything.
   * Types that refer to nothing leave it out.
   */
  references?(config: NoInfer<C>): readonly ServiceReference[];
  /**
   * The type holds other instances of its kind and forwards calls to them
   * (cache, priority, race, lru, retry). The `[defaults]` common options of a
   * composition apply to the instances it holds, not to it; set on the
   * instance itself they apply to it too.
   */
  readonly combinator?: boolean;
}

/**
 * The parts of a type that are the same for every kind it serves (most
 * types serve several: `memory`, `grpc`, `cache`, ...); a definition per
 * kind adds `kind`, `build` and, for combinators, `references`.
 */
export type ServiceTypeInfo<C extends ServiceConfig> = Pick<
  ServiceType<ServiceKind, C>,
  "tag" | "description" | "urlForms" | "schema" | "fromUrl"
>;

/** Identity helper that infers `K` and `C` for a type literal. */
export function defineServiceType<K extends ServiceKind, C extends ServiceConfig>(
  type: ServiceType<K, C>,
): ServiceType<K, C> {
  return type;
}

/** Options of `Registry.build`. */
export interface BuildOptions {
  /** Instance name; default `"root"` (the entry point of a composition). */
  readonly instanceName?: string;
  /**
   * Prefix of error paths for a config object; default
   * `<section>.<instanceName>` (e.g. `blobservices.root`).
   */
  readonly where?: string;
  /** Resolves references to other services; default: URLs and inline configs only. */
  readonly resolve?: Resolver;
  /** Logger handed to the types (`BuildContext.log`); default: the process logger. */
  readonly log?: Logger;
}

// Types are stored with their config type erased. That is sound because
// `register` files each type under its own `kind`, and every config reaching
// `build` went through that type's schema first.
type AnyServiceType = ServiceType<ServiceKind, ServiceConfig>;

export class Registry {
  readonly #types = new Map<ServiceKind, Map<string, AnyServiceType>>(
    SERVICE_KINDS.map((k) => [k, new Map()]),
  );

  /**
   * Adds a type. Registering a (kind, tag) that exists is a ConfigError
   * unless `override` is set: replacing a built-in should be deliberate.
   */
  register<K extends ServiceKind, C extends ServiceConfig>(
    type: ServiceType<K, C>,
    options?: { readonly override?: boolean },
  ): this {
    if (!/^[a-z][a-z0-9-]*$/.test(type.tag)) {
      // The tag doubles as URL scheme prefix; '+' would make it ambiguous.
      throw new ConfigError(
        `cannot register ${KIND_LABEL[type.kind]} type '${type.tag}': a tag is lowercase letters, digits and '-', starting with a letter`,
      );
    }
    const table = this.#table(type.kind);
    if (table.has(type.tag) && options?.override !== true) {
      throw new ConfigError(
        `cannot register ${KIND_LABEL[type.kind]} type '${type.tag}': already registered (pass { override: true } to replace it)`,
      );
    }
    table.set(type.tag, type as unknown as AnyServiceType);
    return this;
  }

  /** The type registered for (kind, tag), if any. */
  lookup<K extends ServiceKind>(kind: K, tag: string): ServiceType<K, ServiceConfig> | undefined {
    return this.#table(kind).get(tag) as ServiceType<K, ServiceConfig> | undefined;
  }

  /** The tags registered for a kind, sorted. */
  tags(kind: ServiceKind): string[] {
    return [...this.#table(kind).keys()].sort();
  }

  /** A registry holding the same types; registering on it leaves this one alone. */
  clone(): Registry {
    const copy = new Registry();
    for (const [kind, table] of this.#types) {
      const target = copy.#table(kind);
      for (const [tag, type] of table) target.set(tag, type);
    }
    return copy;
  }

  /**
   * Parses a service URL into a validated config object. Every failure is a
   * ConfigError that starts with `<kind> service URL '<url>':` (password
   * redacted) and names the part that is wrong.
   */
  configFromUrl<K extends ServiceKind>(kind: K, url: string): ValidServiceConfig<K> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new ConfigError(
        `${KIND_LABEL[kind]} URL '${url}': not a URL (known schemes: ${this.#knownForms(kind)})`,
        { cause },
      );
    }
    const prefix = `${KIND_LABEL[kind]} URL '${redactUrl(parsed)}'`;
    const cache = this.#cacheShortcut(kind, parsed, prefix);
    if (cache !== undefined) return cache;
    const scheme = parsed.protocol.slice(0, -1);
    const tag = scheme.split("+", 1)[0] ?? scheme;
    const type = this.#table(kind).get(tag);
    if (type === undefined) {
      throw new ConfigError(
        `${prefix}: unknown scheme '${scheme}://' (known schemes: ${this.#knownForms(kind)})`,
      );
    }
    let config: ServiceConfig;
    try {
      config = type.fromUrl(parsed);
    } catch (err) {
      // A ConfigError's message is complete; re-throwing it with the prefix
      // (and no cause) keeps the printed chain from saying it twice.
      if (err instanceof ConfigError) throw new ConfigError(`${prefix}: ${err.message}`);
      throw new ConfigError(`${prefix}: could not be parsed`, { cause: err });
    }
    const valid = validate<K>(type, config, prefix, "");
    this.#checkUrlReferences(type, valid, prefix);
    return valid;
  }

  /**
   * `?cache=NEAR_URL` on any store URL: the store wrapped in a `cache` with
   * that URL as near tier. The parameter is removed before the store's own
   * type sees the URL, so `objectstore+file:///x?cache=memory://` is
   * `{ type = "cache", near = "memory://", far = "objectstore+file:///x" }`.
   */
  #cacheShortcut<K extends ServiceKind>(
    kind: K,
    url: URL,
    prefix: string,
  ): ValidServiceConfig<K> | undefined {
    if (url.search === "" || url.search === "?") return undefined;
    let pairs: QueryPair[];
    try {
      pairs = rawQueryPairs(url, "");
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${prefix}: ${err.message}`);
      throw err;
    }
    const near = pairs.filter((p) => p.key === "cache");
    if (near.length === 0) return undefined;
    if (near.length > 1) {
      throw new ConfigError(`${prefix}: query parameter 'cache' is given more than once`);
    }
    const type = this.#table(kind).get("cache");
    if (type === undefined) {
      throw new ConfigError(`${prefix}: ?cache= needs the 'cache' type, which is not registered`);
    }
    const far = new URL(url.href);
    far.search = pairs
      .filter((p) => p.key !== "cache")
      .map((p) => p.raw)
      .join("&");
    const config = { type: "cache", near: near[0]!.value, far: far.href };
    const valid = validate<K>(type, config, prefix, "");
    this.#checkUrlReferences(type, valid, prefix);
    return valid;
  }

  /**
   * Parses the URLs a URL's config refers to (`cache://?near=URL`), so a
   * bad inner URL fails here and not only when the service is built.
   * Names (no `://`) are left to the composition that resolves them.
   */
  #checkUrlReferences(type: AnyServiceType, config: ServiceConfig, prefix: string): void {
    for (const ref of type.references?.(config) ?? []) {
      if (typeof ref.ref !== "string" || !ref.ref.includes("://")) continue;
      try {
        this.configFromUrl(ref.kind, ref.ref);
      } catch (err) {
        if (err instanceof ConfigError)
          throw new ConfigError(`${prefix}: ${ref.field}: ${err.message}`);
        throw err;
      }
    }
  }

  /**
   * Validates a raw config object (from a config file, JSON, or code) of the
   * given kind. `where` is the path of the object in its file, e.g.
   * `blobservices.root`; error messages show `where.field.subfield`.
   */
  parseConfig<K extends ServiceKind>(kind: K, raw: unknown, where: string): ValidServiceConfig<K> {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new ConfigError(
        `${where}: expected a ${KIND_LABEL[kind]} config object with a 'type' field, got ${describeValue(raw)}`,
      );
    }
    const tag: unknown = (raw as { type?: unknown }).type;
    if (typeof tag !== "string") {
      throw new ConfigError(
        `${where}.type: ${tag === undefined ? "missing" : `expected a string, got ${describeValue(tag)}`} (known ${KIND_LABEL[kind]} types: ${this.tags(kind).join(", ")})`,
      );
    }
    const type = this.#table(kind).get(tag);
    if (type === undefined) {
      throw new ConfigError(
        `${where}.type: unknown ${KIND_LABEL[kind]} type '${tag}' (known: ${this.tags(kind).join(", ")})`,
      );
    }
    return validate<K>(type, raw, where, where);
  }

  /**
   * Builds a service from a URL or a config object. URLs go through
   * `configFromUrl`, config objects through `parseConfig`; both end in the
   * same build. Failures of the backend are re-thrown with the same error
   * class, adding which instance failed.
   */
  async build<K extends ServiceKind>(
    kind: K,
    urlOrConfig: string | ServiceConfig,
    options?: BuildOptions,
  ): Promise<ServiceByKind[K]> {
    const instanceName = options?.instanceName ?? "root";
    const config =
      typeof urlOrConfig === "string"
        ? this.configFromUrl(kind, urlOrConfig)
        : this.parseConfig(
            kind,
            urlOrConfig,
            options?.where ?? `${CONFIG_SECTION[kind]}.${instanceName}`,
          );
    return this.buildValidated(kind, config, {
      instanceName,
      registry: this,
      resolve: options?.resolve ?? adHocResolver(this, instanceName, options?.log),
      ...(options?.log === undefined ? {} : { log: options.log }),
    });
  }

  /**
   * Builds a config that `configFromUrl` or `parseConfig` returned, with a
   * caller-made context (the composition layer makes its own). The single
   * place where services are constructed.
   */
  async buildValidated<K extends ServiceKind>(
    kind: K,
    config: ValidServiceConfig<K>,
    ctx: BuildContext,
  ): Promise<ServiceByKind[K]> {
    const type = this.lookup(kind, config.type);
    if (type === undefined) {
      throw new ConfigError(
        `${KIND_LABEL[kind]} '${ctx.instanceName}': unknown type '${config.type}' (known: ${this.tags(kind).join(", ")})`,
      );
    }
    try {
      return await type.build(config, ctx);
    } catch (err) {
      throw withContext(
        err,
        `opening ${KIND_LABEL[kind]} '${ctx.instanceName}' (type ${config.type})`,
      );
    }
  }

  #table(kind: ServiceKind): Map<string, AnyServiceType> {
    const table = this.#types.get(kind);
    if (table === undefined) throw new ConfigError(`unknown service kind '${String(kind)}'`);
    return table;
  }

  #knownForms(kind: ServiceKind): string {
    const forms = [...this.#table(kind).values()]
      .sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))
      .flatMap((t) => t.urlForms ?? [`${t.tag}://`]);
    return forms.length === 0 ? "none registered" : forms.join(", ");
  }
}

/**
 * The resolver used outside a composition: URLs and inline config objects
 * are built directly; a bare name has nothing to refer to yet.
 */
function adHocResolver(registry: Registry, parent: string, log: Logger | undefined): Resolver {
  const withLog = log === undefined ? {} : { log };
  return async (kind, ref, field) => {
    if (typeof ref === "string") {
      if (!ref.includes("://")) {
        throw new ConfigError(
          `${CONFIG_SECTION[kind]}.${parent}.${field}: '${ref}' names another instance, but no composition config is loaded; give a URL instead`,
        );
      }
      return registry.build(kind, ref, {
        instanceName: referenceName(ref, parent, field),
        ...withLog,
      });
    }
    return registry.build(kind, ref, {
      instanceName: referenceName(ref, parent, field),
      where: `${CONFIG_SECTION[kind]}.${parent}.${field}`,
      ...withLog,
    });
  };
}

/**
 * The instance name of what a reference field resolves to: the entry's
 * name, the URL (password hidden) for an ad-hoc URL, or
 * `<parent>.<field>` for an inline config object.
 */
export function referenceName(ref: string | ServiceConfig, parent: string, field: string): string {
  if (typeof ref !== "string") return `${parent}.${field}`;
  return ref.includes("://") ? instanceNameForUrl(ref) : ref;
}

/**
 * The logger of the instance being built: module `module` (e.g.
 * `store.pathinfo.priority`), field `instance` = its instance name.
 */
export function instanceLogger(ctx: BuildContext, module: string): Logger {
  const fields = { instance: ctx.instanceName };
  return ctx.log === undefined ? logger(module, fields) : ctx.log.child(module, fields);
}

/**
 * The instance name of a service given as an ad-hoc URL: the URL itself with
 * any password replaced, so it is stable and safe to log.
 */
export function instanceNameForUrl(url: string): string {
  try {
    return redactUrl(new URL(url));
  } catch {
    return url;
  }
}

/** The URL as a string with its password (if any) replaced by `***`. */
export function redactUrl(url: URL): string {
  if (url.password === "") return url.href;
  const copy = new URL(url.href);
  copy.password = "***";
  return copy.href;
}

/**
 * Runs the type's schema. Issues become one ConfigError listing every bad
 * field by its path: `where.field` for a config object, `field` after the
 * URL prefix for a URL.
 */
function validate<K extends ServiceKind>(
  type: AnyServiceType,
  raw: unknown,
  prefix: string,
  where: string,
): ValidServiceConfig<K> {
  const result = type.schema.safeParse(raw);
  if (result.success) return result.data as ValidServiceConfig<K>;
  const problems = schemaProblems(result.error.issues, where);
  const lead = where === "" ? `${prefix}: ` : "";
  throw new ConfigError(`${lead}${problems.join("; ")}`);
}
