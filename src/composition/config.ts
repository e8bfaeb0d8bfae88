/**
 * Composition config files (ARCHITECTURE §4): the format, the `substituters`
 * shortcut, the common options, and the static check that validates a whole
 * file — every entry against its type's schema, every reference, no cycles —
 * and yields the graph it describes, without building anything.
 * (`Composition`, in composition.ts, builds the graph lazily.)
 *
 * ## Format (TOML or JSON; one object)
 *
 * - `blobservices`, `directoryservices`, `pathinfoservices`: each a table of
 *   named entries. An entry is a table `{ type = "...", ...fields }` (the
 *   fields of that type's schema, plus the common options), or a URL string
 *   (`local = "lmdb:///var/lib/strata/pathinfo"`), which is the config that
 *   URL parses to. The entry `root` is the kind's entry point. Names are
 *   letters, digits, `_` and `-`.
 * - A field that refers to another store (`near`, `far`, `stores`, `inner`)
 *   takes the name of an entry of the same kind, an ad-hoc URL (anything
 *   containing `://`, built as if it were an entry), or an inline table.
 *   Named entries are built once and shared by everything referring to them;
 *   every ad-hoc URL or inline table is an instance of its own (write
 *   `memory://` twice and you get two stores) — name it to share it.
 * - `[defaults]`: common options (`timeout_ms`, `max_concurrency`) for every
 *   backend instance; `[defaults.<section>]` for those of one kind. The rule
 *   (see common-options.ts): the most specific setting wins — instance,
 *   then `[defaults.<section>]`, then `[defaults]`; defaults do not apply to
 *   combinators.
 * - `substituters = ["URL", ...]`: the shortcut for the common case (see
 *   `expandSubstituters`), with `[local]` and `[substitution]`.
 * - `$schema`: ignored (lets editors find the JSON Schema).
 *
 * ## Instance names
 * An entry's name is its key; an ad-hoc URL's is the URL (password hidden);
 * an inline table's is `<parent>.<field>`. The name is on every log line and
 * error of the instance.
 *
 * ## Errors
 * Every problem is a ConfigError whose message starts with the reference
 * path that leads to it from a root, e.g.
 * `pathinfoservices.root.far -> pathinfoservices.upstream.stores[1] -> pathinfoservices.mirror: not defined (...)`,
 * `cycle: pathinfoservices.root.far -> pathinfoservices.upstream.stores[0] -> pathinfoservices.root`,
 * `pathinfoservices.root.far -> pathinfoservices.upstream.colour: unknown field`.
 */
import { z } from "zod";
import { ConfigError } from "../errors.js";
import {
  COMMON_OPTION_FIELDS,
  COMMON_OPTION_NAMES,
  type CommonOptions,
  commonOptionsSchema,
  mergeCommonOptions,
} from "./common-options.js";
import { describeValue, schemaProblems } from "./config-problems.js";
import {
  CONFIG_SECTION,
  instanceNameForUrl,
  KIND_LABEL,
  type Registry,
  referenceName,
  SERVICE_KINDS,
  type ServiceConfig,
  type ServiceKind,
  type ValidServiceConfig,
} from "./registry.js";

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;

const sectionSchema = z
  .record(z.string(), z.unknown())
  .describe("Named instances; 'root' is the entry point.");

const localSchema = z
  .strictObject({
    blob: z.string().optional().describe("URL of the local blob store."),
    directory: z.string().optional().describe("URL of the local directory store."),
    pathinfo: z.string().optional().describe("URL of the local path info store."),
  })
  .describe(
    "The local store of the substituters shortcut, one URL per kind (default: the built-in defaults, ~/.local/share/strata).",
  );

const substitutionSchema = z
  .strictObject({
    fill_local: z
      .boolean()
      .optional()
      .describe(
        "Copy what a substituter served into the local store (default true): root = cache(near = local, far = substituters).",
      ),
    negative_ttl_ms: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Remember for this many ms that no substituter has an item (default 0: off)."),
  })
  .describe("Switches of the substituters shortcut.");

const defaultsSchema = z
  .strictObject({
    ...COMMON_OPTION_FIELDS,
    blobservices: commonOptionsSchema.optional(),
    directoryservices: commonOptionsSchema.optional(),
    pathinfoservices: commonOptionsSchema.optional(),
  })
  .describe(
    "Common options for every backend instance; [defaults.<section>] for one kind. An instance's own setting wins over [defaults.<section>], which wins over [defaults].",
  );

/** The top level of a config file (entries are checked per type afterwards). */
export const configFileSchema = z.strictObject({
  $schema: z.string().optional(),
  blobservices: sectionSchema.optional(),
  directoryservices: sectionSchema.optional(),
  pathinfoservices: sectionSchema.optional(),
  defaults: defaultsSchema.optional(),
  substituters: z
    .array(z.string())
    .optional()
    .describe(
      "Shortcut: substituter URLs in priority order. Generates root, local and substituters in every section.",
    ),
  local: localSchema.optional(),
  substitution: substitutionSchema.optional(),
});

type ConfigFile = z.infer<typeof configFileSchema>;

/** One instance of the graph: a named entry or an ad-hoc URL / inline table. */
export interface GraphNode {
  readonly kind: ServiceKind;
  /** The instance name (entry key, URL, or `<parent>.<field>`). */
  readonly name: string;
  /** Path of its config: `pathinfoservices.upstream`, or `pathinfoservices.root.far` when ad-hoc. */
  readonly where: string;
  /** `<section>.<name>` of a named entry; undefined for ad-hoc instances. */
  readonly entry: string | undefined;
  /** The URL it was given as, if it was (redacted: no password). */
  readonly url: string | undefined;
  readonly config: ValidServiceConfig;
  /** The common options in effect for it (defaults merged in). */
  readonly common: CommonOptions;
  /** Its references, in field order. */
  readonly edges: readonly GraphEdge[];
}

export interface GraphEdge {
  readonly field: string;
  readonly target: GraphNode;
}

/** What `CompositionConfig.parse` needs besides the raw file. */
export interface CompositionConfigInit {
  readonly registry: Registry;
  /**
   * Default URL per kind, used for `[local]` kinds the substituters shortcut
   * needs and the file does not give, and as `root` of a section the file
   * does not define (the CLI passes `defaultServiceUrls()`). Without it, such
   * a section simply has no root.
   */
  readonly defaults?: Partial<Record<ServiceKind, string>>;
}

function located(chain: readonly string[], message: string): string {
  return chain.length === 0 ? message : `${chain.join(" -> ")} -> ${message}`;
}

/**
 * A validated composition config: every entry checked, every reference
 * resolved to a node, no cycles. Immutable.
 */
export class CompositionConfig {
  readonly registry: Registry;
  readonly #raw: ReadonlyMap<ServiceKind, ReadonlyMap<string, unknown>>;
  readonly #defaults: ConfigFile["defaults"];
  readonly #nodes = new Map<string, GraphNode>();
  readonly #visiting = new Set<string>();

  private constructor(
    registry: Registry,
    raw: ReadonlyMap<ServiceKind, ReadonlyMap<string, unknown>>,
    defaults: ConfigFile["defaults"],
  ) {
    this.registry = registry;
    this.#raw = raw;
    this.#defaults = defaults;
  }

  /**
   * Validates a parsed file (the object TOML or JSON parsing gave). Throws
   * a ConfigError naming the reference path and the field of the first
   * problem found, walking from the roots (blob, directory, path info), then
   * the entries no root reaches.
   */
  static parse(raw: unknown, init: CompositionConfigInit): CompositionConfig {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new ConfigError(
        `expected a table of sections at the top level, got ${describeValue(raw)}`,
      );
    }
    const parsed = configFileSchema.safeParse(raw);
    if (!parsed.success) throw new ConfigError(schemaProblems(parsed.error.issues, "").join("; "));
    const file = parsed.data;
    const sections = new Map<ServiceKind, Map<string, unknown>>();
    for (const kind of SERVICE_KINDS) {
      const section = CONFIG_SECTION[kind];
      const entries = new Map<string, unknown>();
      for (const [name, value] of Object.entries(file[section as keyof ConfigFile] ?? {})) {
        if (!NAME.test(name)) {
          throw new ConfigError(
            `${section}.${name}: not a valid instance name (letters, digits, '_' and '-'; no '.' or '://')`,
          );
        }
        entries.set(name, value);
      }
      sections.set(kind, entries);
    }
    expandSubstituters(file, sections, init);
    for (const kind of SERVICE_KINDS) {
      const entries = sections.get(kind)!;
      const fallback = init.defaults?.[kind];
      if (entries.has("root")) continue;
      if (entries.size > 0) {
        throw new ConfigError(
          `${CONFIG_SECTION[kind]}: no 'root' entry (the entry point of the section); it has: ${[...entries.keys()].sort().join(", ")}`,
        );
      }
      if (fallback !== undefined) entries.set("root", fallback);
    }
    const config = new CompositionConfig(init.registry, sections, file.defaults);
    config.#walk();
    return config;
  }

  /** Whether the file (or the shortcut) defines entry `name` of `kind`. */
  has(kind: ServiceKind, name = "root"): boolean {
    return this.#raw.get(kind)?.has(name) === true;
  }

  /** The names of a kind's entries, `root` first, the others sorted. */
  names(kind: ServiceKind): string[] {
    const names = [...(this.#raw.get(kind)?.keys() ?? [])].sort();
    return names.includes("root") ? ["root", ...names.filter((n) => n !== "root")] : names;
  }

  /** The node of a named entry. */
  entry(kind: ServiceKind, name: string): GraphNode | undefined {
    return this.#nodes.get(`${CONFIG_SECTION[kind]}.${name}`);
  }

  /** The root of each kind that has one. */
  roots(): GraphNode[] {
    return SERVICE_KINDS.flatMap((k) => this.entry(k, "root") ?? []);
  }

  /** Named entries no root refers to (directly or not). */
  unreferenced(): GraphNode[] {
    const reached = new Set<GraphNode>();
    const visit = (n: GraphNode): void => {
      if (reached.has(n)) return;
      reached.add(n);
      for (const e of n.edges) visit(e.target);
    };
    for (const r of this.roots()) visit(r);
    return SERVICE_KINDS.flatMap((k) =>
      this.names(k).flatMap((name) => {
        const n = this.entry(k, name);
        return n !== undefined && !reached.has(n) ? [n] : [];
      }),
    );
  }

  /**
   * A node for a reference that was not declared by its type's
   * `references` (found only when building): a named entry, or an ad-hoc
   * node for a URL or inline table. `chain` is the reference path so far.
   */
  resolveDynamic(
    kind: ServiceKind,
    ref: string | ServiceConfig,
    parent: GraphNode,
    field: string,
    chain: readonly string[],
  ): GraphNode {
    const step = `${parent.where}.${field}`;
    if (typeof ref === "string" && !ref.includes("://")) {
      return this.#visit(kind, ref, [...chain, step]);
    }
    return this.#node(
      kind,
      ref,
      { name: referenceName(ref, parent.name, field), where: step, entry: undefined },
      chain,
    );
  }

  /** Checks every entry: from the roots first, so errors show the path from a root. */
  #walk(): void {
    for (const kind of SERVICE_KINDS) if (this.has(kind, "root")) this.#visit(kind, "root", []);
    for (const kind of SERVICE_KINDS)
      for (const name of this.names(kind)) this.#visit(kind, name, []);
  }

  #visit(kind: ServiceKind, name: string, chain: readonly string[]): GraphNode {
    const section = CONFIG_SECTION[kind];
    const key = `${section}.${name}`;
    const done = this.#nodes.get(key);
    if (done !== undefined) return done;
    if (this.#visiting.has(key)) {
      throw new ConfigError(`cycle: ${[...chain, key].join(" -> ")}`);
    }
    const raw = this.#raw.get(kind)?.get(name);
    if (raw === undefined) {
      const known = this.names(kind);
      throw new ConfigError(
        located(
          chain,
          `${key}: not defined (${known.length === 0 ? `${section} is empty` : `${section} has: ${known.join(", ")}`}; a URL must contain '://')`,
        ),
      );
    }
    this.#visiting.add(key);
    try {
      const node = this.#node(kind, raw, { name, where: key, entry: key }, chain);
      this.#nodes.set(key, node);
      return node;
    } finally {
      this.#visiting.delete(key);
    }
  }

  /** Validates one instance's config and resolves its references. */
  #node(
    kind: ServiceKind,
    raw: unknown,
    ident: { name: string; where: string; entry: string | undefined },
    chain: readonly string[],
  ): GraphNode {
    const { config, own } = this.#parseEntry(kind, raw, ident.where, chain);
    const type = this.registry.lookup(kind, config.type);
    const section = CONFIG_SECTION[kind];
    const common =
      type?.combinator === true
        ? own
        : mergeCommonOptions(
            this.#defaults,
            this.#defaults?.[section as "blobservices" | "directoryservices" | "pathinfoservices"],
            own,
          );
    const edges: GraphEdge[] = [];
    for (const ref of type?.references?.(config) ?? []) {
      const step = `${ident.where}.${ref.field}`;
      const target =
        typeof ref.ref === "string" && !ref.ref.includes("://")
          ? this.#visit(ref.kind, ref.ref, [...chain, step])
          : this.#node(
              ref.kind,
              ref.ref,
              {
                name: referenceName(ref.ref, ident.name, ref.field),
                where: step,
                entry: undefined,
              },
              chain,
            );
      edges.push({ field: ref.field, target });
    }
    const url = typeof raw === "string" ? instanceNameForUrl(raw) : undefined;
    return {
      kind,
      name: ident.name,
      where: ident.where,
      entry: ident.entry,
      url,
      config,
      common,
      edges,
    };
  }

  /** The type config and the common options of one entry (a table or a URL). */
  #parseEntry(
    kind: ServiceKind,
    raw: unknown,
    where: string,
    chain: readonly string[],
  ): { config: ValidServiceConfig; own: CommonOptions } {
    try {
      if (typeof raw === "string") {
        if (!raw.includes("://")) {
          throw new ConfigError(
            `${where}: '${raw}' is not a URL (an entry is a table with a 'type' field, or a URL containing '://'; entries cannot alias other entries)`,
          );
        }
        try {
          return { config: this.registry.configFromUrl(kind, raw), own: {} };
        } catch (err) {
          if (err instanceof ConfigError) throw new ConfigError(`${where}: ${err.message}`);
          throw err;
        }
      }
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new ConfigError(
          `${where}: expected a ${KIND_LABEL[kind]} table with a 'type' field or a URL, got ${describeValue(raw)}`,
        );
      }
      const rest: Record<string, unknown> = {};
      const picked: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(raw)) {
        if (COMMON_OPTION_NAMES.includes(k)) picked[k] = v;
        else rest[k] = v;
      }
      const common = commonOptionsSchema.safeParse(picked);
      if (!common.success)
        throw new ConfigError(schemaProblems(common.error.issues, where).join("; "));
      return { config: this.registry.parseConfig(kind, rest, where), own: common.data };
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(located(chain, err.message));
      throw err;
    }
  }
}

/**
 * The `substituters` shortcut. With
 *
 *     substituters = ["URL1", "URL2", ...]
 *     [local]                 # optional; omitted kinds use the defaults
 *     blob = "URL"  directory = "URL"  pathinfo = "URL"
 *     [substitution]          # optional
 *     fill_local = true       # default
 *     negative_ttl_ms = 0     # default
 *
 * every section gets exactly what writing these entries out would give:
 *
 *     [<section>.root]         type = "cache", near = "local", far = "substituters"
 *                              (fill_local = false: type = "priority", stores = ["local", "substituters"])
 *     [<section>] local = "<local URL of the kind>"
 *     [<section>.substituters] type = "priority", stores = [URLs usable for the kind],
 *                              negative_ttl_ms = N (if set)
 *
 * A substituter URL is used for every kind whose registry knows its scheme
 * (`grpc+https://` serves all three); a section no substituter serves gets
 * just `root = "<local URL>"`. Writes go to the local store. Defining
 * `root`, `local` or `substituters` in a section yourself is an error: write
 * the sections out instead.
 */
function expandSubstituters(
  file: ConfigFile,
  sections: Map<ServiceKind, Map<string, unknown>>,
  init: CompositionConfigInit,
): void {
  if (file.substituters === undefined) {
    for (const key of ["local", "substitution"] as const) {
      if (file[key] !== undefined) {
        throw new ConfigError(
          `${key}: only used with 'substituters' (the shortcut); remove it or add substituters`,
        );
      }
    }
    return;
  }
  const urls = file.substituters;
  if (urls.length === 0) {
    throw new ConfigError(
      "substituters: the list is empty; name at least one store URL or remove it",
    );
  }
  const kindsOf = urls.map((url, i) => {
    let scheme: string;
    try {
      scheme = new URL(url).protocol.slice(0, -1);
    } catch (cause) {
      throw new ConfigError(`substituters[${i}]: '${url}' is not a URL`, { cause });
    }
    const tag = scheme.split("+", 1)[0] ?? scheme;
    const kinds = SERVICE_KINDS.filter((k) => init.registry.lookup(k, tag) !== undefined);
    if (kinds.length === 0) {
      throw new ConfigError(
        `substituters[${i}]: no store type has the scheme '${scheme}://' (known: ${[...new Set(SERVICE_KINDS.flatMap((k) => init.registry.tags(k)))].sort().join(", ")})`,
      );
    }
    return kinds;
  });
  const fill = file.substitution?.fill_local ?? true;
  const negative = file.substitution?.negative_ttl_ms;
  for (const kind of SERVICE_KINDS) {
    const section = CONFIG_SECTION[kind];
    const entries = sections.get(kind)!;
    for (const name of ["root", "local", "substituters"]) {
      if (entries.has(name)) {
        throw new ConfigError(
          `substituters: ${section}.${name} is defined in the file too, but the shortcut defines root, local and substituters in every section; write the sections out instead`,
        );
      }
    }
    const local = file.local?.[kind] ?? init.defaults?.[kind];
    if (local === undefined) {
      throw new ConfigError(
        `substituters: no local ${KIND_LABEL[kind]}: set local.${kind} to a URL`,
      );
    }
    if (!local.includes("://")) {
      throw new ConfigError(`local.${kind}: '${local}' is not a URL`);
    }
    const mine = urls.filter((_, i) => kindsOf[i]!.includes(kind));
    if (mine.length === 0) {
      entries.set("root", local);
      continue;
    }
    entries.set("local", local);
    entries.set("substituters", {
      type: "priority",
      stores: mine,
      ...(negative === undefined ? {} : { negative_ttl_ms: negative }),
    });
    entries.set(
      "root",
      fill
        ? { type: "cache", near: "local", far: "substituters" }
        : { type: "priority", stores: ["local", "substituters"] },
    );
  }
}

/** One line of the graph tree: `name (type, option=value ...)`. */
function label(node: GraphNode): string {
  const opts = Object.entries(node.common)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${String(v)}`);
  const shown =
    node.entry === undefined
      ? (node.url ?? `${node.where} (inline)`)
      : node.url === undefined
        ? node.entry
        : `${node.entry} = ${node.url}`;
  return `${shown} [${[node.config.type, ...opts].join(", ")}]`;
}

/**
 * The graph as an indented tree, one root per kind, then the entries no
 * root refers to. A named instance shared by several referrers is printed
 * in full once; later mentions say `(shared, see above)`.
 */
export function formatGraph(config: CompositionConfig): string {
  const lines: string[] = [];
  const printed = new Set<GraphNode>();
  const walk = (node: GraphNode, prefix: string, childPrefix: string): void => {
    const shared = node.entry !== undefined && printed.has(node);
    lines.push(`${prefix}${label(node)}${shared ? " (shared, see above)" : ""}`);
    if (shared) return;
    printed.add(node);
    node.edges.forEach((edge, i) => {
      const last = i === node.edges.length - 1;
      walk(
        edge.target,
        `${childPrefix}${last ? "└─ " : "├─ "}${edge.field}: `,
        `${childPrefix}${last ? "   " : "│  "}`,
      );
    });
  };
  for (const root of config.roots()) walk(root, "", "");
  const rest = config.unreferenced();
  if (rest.length > 0) {
    lines.push("not referenced by any root:");
    for (const node of rest) walk(node, "  ", "  ");
  }
  if (lines.length === 0) lines.push("(no instances)");
  return lines.join("\n");
}
