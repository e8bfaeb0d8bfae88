/**
 * The definition every combinator type (cache, priority, race, lru, retry)
 * has in common: its references are its inner instances; building resolves
 * them into named members, turns them and the config into the init of the
 * kind's combinator class, and constructs that class (loaded on first use)
 * with the instance's name and logger. A type says only which fields refer
 * to inner instances, what init it makes, and which class serves each kind.
 */
import type { CombinatorDeps, Member } from "../../castore/combinators/support.js";
import {
  defineServiceType,
  type ServiceByKind,
  type ServiceConfig,
  type ServiceKind,
  type ServiceType,
  type ServiceTypeInfo,
} from "../registry.js";
import { combinatorDeps, combinatorModule, type Ref, resolveMembers } from "./combinator-parts.js";

/** A field of a config that refers to an inner instance. */
export interface InnerRef {
  /** As error paths show it: `near`, `stores[1]`. */
  readonly field: string;
  readonly ref: Ref;
}

/** What a combinator type does with its inner instances. */
export interface CombinatorParts<K extends ServiceKind, C, I> {
  /** The fields that refer to inner instances, in order. */
  refs(config: C): readonly InnerRef[];
  /** The class's init, from the members resolved for `refs` (same order) and the config. */
  init(members: readonly Member<ServiceByKind[K]>[], config: C): I;
  /** Constructs the kind's class. */
  make(init: I, deps: CombinatorDeps): Promise<ServiceByKind[K]>;
}

/** Defines a combinator type of `kind`. */
export function combinatorType<K extends ServiceKind, C extends ServiceConfig, I>(
  kind: K,
  info: ServiceTypeInfo<C>,
  parts: CombinatorParts<K, NoInfer<C>, I>,
): ServiceType<K, C> {
  return defineServiceType({
    ...info,
    kind,
    combinator: true,
    references: (config) => parts.refs(config).map(({ field, ref }) => ({ kind, field, ref })),
    async build(config, ctx) {
      const members = await resolveMembers(ctx, kind, parts.refs(config));
      return parts.make(
        parts.init(members, config),
        combinatorDeps(ctx, combinatorModule(kind, info.tag)),
      );
    },
  });
}

/**
 * `make` for a class loaded with a dynamic import on first use (so the CLI
 * loads only the combinators a config uses).
 */
export function lazyClass<I, S>(
  load: () => Promise<new (init: I, deps: CombinatorDeps) => S>,
): (init: I, deps: CombinatorDeps) => Promise<S> {
  return async (init, deps) => new (await load())(init, deps);
}
