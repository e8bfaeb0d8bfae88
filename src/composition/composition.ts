/**
 * Building a composition (ARCHITECTURE §4): the instances of a validated
 * `CompositionConfig`, built lazily — an instance is built when something
 * asks for it (`service(kind, name)`, or a combinator resolving a
 * reference), and only then.
 *
 * - One instance per named entry, also under concurrent requests: the
 *   in-flight build is shared through a `Map<key, Promise>`.
 * - Every ad-hoc URL or inline table is an instance of its own.
 * - Instances are owned by the composition. What `service()` returns and
 *   what combinators get for their references are handles whose `close()`
 *   does nothing, so an instance shared by several combinators is never
 *   closed twice; `close()` of the composition closes every instance it
 *   built exactly once, dependents before their dependencies.
 * - Cycles are found statically by `CompositionConfig`; references that a
 *   type does not declare (found only while building) are checked here, on
 *   the chain of builds and on the graph of builds waiting for each other.
 * - Common options (`timeout_ms`, `max_concurrency`) wrap each built
 *   instance (common-options.ts).
 */
import { ConfigError, StorageError, withContext } from "../errors.js";
import { type Logger, logger } from "../observability/log.js";
import { withCommonOptions } from "./common-options.js";
import type { CompositionConfig, GraphNode } from "./config.js";
import {
  type BuildContext,
  CONFIG_SECTION,
  KIND_LABEL,
  type ServiceByKind,
  type ServiceConfig,
  type ServiceKind,
} from "./registry.js";

type AnyService = ServiceByKind[ServiceKind];

/** Where a build was asked for: the named instances above it and the reference path. */
interface Frame {
  /** Entry keys of the named instances being built on the way here (outermost first). */
  readonly keys: readonly string[];
  /** The reference path (`pathinfoservices.root.far`, ...) for messages. */
  readonly chain: readonly string[];
}

export interface CompositionInit {
  /** Parent logger of every instance (they add module and `instance`); default: the process logger. */
  readonly log?: Logger;
}

/**
 * A handle on `service` whose `close()` / `Symbol.asyncDispose` do nothing:
 * the composition closes the instance. Everything else is the instance's
 * own (methods bound to it, so private fields work; `instanceof` holds).
 */
function borrowed<S extends object>(service: S): S {
  const bound = new Map<PropertyKey, unknown>();
  const noop = (): Promise<void> => Promise.resolve();
  return new Proxy(service, {
    get(target, prop) {
      if (prop === "close" || prop === Symbol.asyncDispose) return noop;
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      let fn = bound.get(prop);
      if (fn === undefined) {
        fn = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(prop, fn);
      }
      return fn;
    },
  });
}

export class Composition implements AsyncDisposable {
  readonly config: CompositionConfig;
  readonly #log: Logger;
  /** Builds of named instances, by entry key (`blobservices.local`). */
  readonly #named = new Map<string, Promise<AnyService>>();
  /** Every build started (named and ad-hoc), so close() can wait for them. */
  readonly #pending = new Set<Promise<unknown>>();
  /** Built instances in the order their builds finished (dependencies first). */
  readonly #built: { readonly what: string; readonly service: AnyService }[] = [];
  /** Named builds currently waiting for other named builds: key -> keys. */
  readonly #waits = new Map<string, Set<string>>();
  #closing: Promise<void> | undefined;

  constructor(config: CompositionConfig, init: CompositionInit = {}) {
    this.config = config;
    this.#log = init.log ?? logger("composition");
  }

  /** Whether the config has entry `name` of `kind`. */
  has(kind: ServiceKind, name = "root"): boolean {
    return this.config.has(kind, name);
  }

  /**
   * The instance of entry `name` (default `root`) of `kind`, built on first
   * request (with everything it refers to). The handle's `close()` does
   * nothing: close the composition.
   */
  async service<K extends ServiceKind>(kind: K, name = "root"): Promise<ServiceByKind[K]> {
    const service = await this.#namedInstance(kind, name, { keys: [], chain: [] }, undefined);
    return borrowed(service) as ServiceByKind[K];
  }

  /**
   * Closes every instance built, each once, in reverse order of completion
   * (so a combinator closes before the stores it holds). Waits for builds
   * still running. Idempotent; later `service()` calls fail.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeAll(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
    const failures: unknown[] = [];
    for (const { what, service } of this.#built.reverse()) {
      try {
        await service.close();
      } catch (err) {
        failures.push(withContext(err, `closing ${what}`));
      }
    }
    this.#built.length = 0;
    if (failures.length > 0) {
      throw new StorageError("closing the composition", {
        cause: failures.length === 1 ? failures[0] : new AggregateError(failures),
      });
    }
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new StorageError("the composition is closed");
  }

  async #namedInstance(
    kind: ServiceKind,
    name: string,
    frame: Frame,
    from: string | undefined,
  ): Promise<AnyService> {
    this.#checkOpen();
    const node = this.config.entry(kind, name);
    const key = `${CONFIG_SECTION[kind]}.${name}`;
    if (node === undefined) {
      const known = this.config.names(kind);
      const message = `${key}: not defined (${known.length === 0 ? `${CONFIG_SECTION[kind]} is empty` : `${CONFIG_SECTION[kind]} has: ${known.join(", ")}`})`;
      throw new ConfigError(
        frame.chain.length === 0 ? message : `${frame.chain.join(" -> ")} -> ${message}`,
      );
    }
    if (frame.keys.includes(key)) {
      throw new ConfigError(`cycle: ${[...frame.chain, key].join(" -> ")}`);
    }
    let build = this.#named.get(key);
    if (build === undefined) {
      build = this.#build(node, { keys: [...frame.keys, key], chain: frame.chain });
      this.#named.set(key, build);
    }
    if (from === undefined) return build;
    // `from` (being built) now waits for `key`: if `key` waits for `from`,
    // directly or not, neither would ever finish.
    if (this.#reaches(key, from)) {
      throw new ConfigError(`cycle: ${[...frame.chain, key].join(" -> ")} (found while building)`);
    }
    let edges = this.#waits.get(from);
    if (edges === undefined) {
      edges = new Set();
      this.#waits.set(from, edges);
    }
    edges.add(key);
    try {
      return await build;
    } finally {
      edges.delete(key);
    }
  }

  #reaches(start: string, goal: string): boolean {
    const seen = new Set<string>();
    const stack = [start];
    while (stack.length > 0) {
      const k = stack.pop()!;
      if (k === goal) return true;
      if (seen.has(k)) continue;
      seen.add(k);
      for (const next of this.#waits.get(k) ?? []) stack.push(next);
    }
    return false;
  }

  #build(node: GraphNode, frame: Frame): Promise<AnyService> {
    const run = this.#construct(node, frame);
    this.#pending.add(run);
    void run.then(
      () => this.#pending.delete(run),
      () => this.#pending.delete(run),
    );
    return run;
  }

  async #construct(node: GraphNode, frame: Frame): Promise<AnyService> {
    this.#checkOpen();
    const what = `${KIND_LABEL[node.kind]} '${node.name}'`;
    const ctx: BuildContext = {
      instanceName: node.name,
      registry: this.config.registry,
      log: this.#log,
      resolve: (kind, ref, field) => this.#resolve(node, frame, kind, ref, field),
    };
    this.#log.debug("building instance", {
      instance: node.name,
      type: node.config.type,
      where: node.where,
    });
    const built = await this.config.registry.buildValidated(node.kind, node.config, ctx);
    const service = withCommonOptions(node.kind, built, node.common, what);
    this.#built.push({ what, service });
    return service;
  }

  async #resolve<K extends ServiceKind>(
    parent: GraphNode,
    frame: Frame,
    kind: K,
    ref: string | ServiceConfig,
    field: string,
  ): Promise<ServiceByKind[K]> {
    const step = `${parent.where}.${field}`;
    const owner = frame.keys[frame.keys.length - 1];
    if (typeof ref === "string" && !ref.includes("://")) {
      const service = await this.#namedInstance(
        kind,
        ref,
        { keys: frame.keys, chain: [...frame.chain, step] },
        owner,
      );
      return borrowed(service) as ServiceByKind[K];
    }
    // An ad-hoc URL or inline table: the node the static check made for this
    // field, or (for a type that does not declare its references) a new one.
    const declared = parent.edges.find(
      (e) => e.field === field && e.target.entry === undefined && e.target.kind === kind,
    );
    const node =
      declared?.target ?? this.config.resolveDynamic(kind, ref, parent, field, frame.chain);
    const service = await this.#build(node, { keys: frame.keys, chain: [...frame.chain, step] });
    return borrowed(service) as ServiceByKind[K];
  }
}
