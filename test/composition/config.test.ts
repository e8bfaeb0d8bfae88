/**
 * Composition config files (issue 4): the format, references by name and by
 * URL, errors with the full reference path, common options and their
 * precedence, the substituters shortcut, the URL shortcuts and their
 * escaping, the graph tree, and the JSON Schema.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  CompositionConfig,
  type CompositionConfigInit,
  formatGraph,
  type GraphNode,
} from "../../src/composition/config.js";
import { parseConfigText } from "../../src/composition/config-file.js";
import { configJsonSchema } from "../../src/composition/config-schema.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import { ConfigError } from "../../src/errors.js";

const registry = defaultRegistry();

function parse(text: string, init: Partial<CompositionConfigInit> = {}): CompositionConfig {
  return CompositionConfig.parse(parseConfigText(text, "toml"), { registry, ...init });
}

/** Asserts that parsing fails with a ConfigError whose message is exactly `message`. */
function fails(
  text: string,
  message: string | RegExp,
  init: Partial<CompositionConfigInit> = {},
): void {
  assert.throws(
    () => parse(text, init),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      if (typeof message === "string") assert.equal(err.message, message);
      else assert.match(err.message, message);
      return true;
    },
  );
}

/** A node as plain data: name, type, common options, edges (for comparing graphs). */
function shape(node: GraphNode): unknown {
  return {
    name: node.name,
    entry: node.entry,
    config: node.config,
    common: node.common,
    edges: node.edges.map((e) => ({ field: e.field, target: shape(e.target) })),
  };
}

const CHAIN = `
[pathinfoservices.root]
type = "cache"
near = "local"
far = "upstream"

[pathinfoservices.local]
type = "memory"

[pathinfoservices.upstream]
type = "priority"
stores = ["memory://", "mirror"]

[pathinfoservices.mirror]
type = "lru"
inner = { type = "memory" }
capacity = 10
`;

describe("composition config: format and references", () => {
  test("entries, names, ad-hoc URLs and inline tables become one graph", () => {
    const config = parse(CHAIN);
    const root = config.entry("pathinfo", "root");
    assert.ok(root !== undefined);
    assert.equal(root.config.type, "cache");
    assert.deepEqual(
      root.edges.map((e) => [e.field, e.target.name, e.target.config.type]),
      [
        ["near", "local", "memory"],
        ["far", "upstream", "priority"],
      ],
    );
    const upstream = config.entry("pathinfo", "upstream")!;
    assert.deepEqual(
      upstream.edges.map((e) => [e.field, e.target.name, e.target.entry, e.target.where]),
      [
        ["stores[0]", "memory://", undefined, "pathinfoservices.upstream.stores[0]"],
        ["stores[1]", "mirror", "pathinfoservices.mirror", "pathinfoservices.mirror"],
      ],
    );
    // An inline table is named after its parent and field.
    assert.equal(config.entry("pathinfo", "mirror")!.edges[0]!.target.name, "mirror.inner");
    assert.deepEqual(config.names("pathinfo"), ["root", "local", "mirror", "upstream"]);
    assert.equal(config.has("blob"), false);
  });

  test("TOML and JSON give the same graph; an entry may be a URL string", () => {
    const json = JSON.stringify({
      pathinfoservices: {
        root: { type: "cache", near: "local", far: "upstream" },
        local: { type: "memory" },
        upstream: { type: "priority", stores: ["memory://", "mirror"] },
        mirror: { type: "lru", inner: { type: "memory" }, capacity: 10 },
      },
    });
    const fromJson = CompositionConfig.parse(parseConfigText(json), { registry });
    assert.deepEqual(
      shape(fromJson.entry("pathinfo", "root")!),
      shape(parse(CHAIN).entry("pathinfo", "root")!),
    );
    const url = parse('[blobservices]\nroot = "cache://?near=memory://&far=memory://"\n');
    const root = url.entry("blob", "root")!;
    assert.equal(root.url, "cache://?near=memory://&far=memory://");
    assert.deepEqual(root.config, { type: "cache", near: "memory://", far: "memory://" });
    assert.deepEqual(
      root.edges.map((e) => e.target.name),
      ["memory://", "memory://"],
    );
  });

  test("a shared entry is one node", () => {
    const config = parse(`
[blobservices.root]
type = "priority"
stores = ["shared", { type = "cache", near = "memory://", far = "shared" }]
[blobservices.shared]
type = "memory"
`);
    const root = config.entry("blob", "root")!;
    const shared = config.entry("blob", "shared")!;
    assert.equal(root.edges[0]!.target, shared);
    assert.equal(root.edges[1]!.target.edges[1]!.target, shared);
  });

  test("an unknown reference fails with the full reference path", () => {
    fails(
      CHAIN.replace('stores = ["memory://", "mirror"]', 'stores = ["memory://", "mirror2"]'),
      "pathinfoservices.root.far -> pathinfoservices.upstream.stores[1] -> pathinfoservices.mirror2: not defined (pathinfoservices has: root, local, mirror, upstream; a URL must contain '://')",
    );
  });

  test("a cycle fails with the full reference path", () => {
    fails(
      CHAIN.replace('inner = { type = "memory" }', 'inner = "upstream"'),
      "cycle: pathinfoservices.root.far -> pathinfoservices.upstream.stores[1] -> pathinfoservices.mirror.inner -> pathinfoservices.upstream",
    );
    fails(
      '[blobservices.root]\ntype = "retry"\ninner = "root"\n',
      "cycle: blobservices.root.inner -> blobservices.root",
    );
    // Through an inline table and a URL of a combinator too.
    fails(
      `[directoryservices.root]
type = "cache"
near = "memory://"
far = { type = "priority", stores = ["cache://?near=memory://&far=root"] }
`,
      "cycle: directoryservices.root.far.stores[0].far -> directoryservices.root",
    );
  });

  test("an unknown field fails with the full reference path", () => {
    fails(
      CHAIN.replace("capacity = 10", "capacity = 10\ncolour = 1"),
      "pathinfoservices.root.far -> pathinfoservices.upstream.stores[1] -> pathinfoservices.mirror.colour: unknown field",
    );
    // In an inline table, the path names the field of the inline table.
    fails(
      CHAIN.replace('inner = { type = "memory" }', 'inner = { type = "memory", size = 3 }'),
      "pathinfoservices.root.far -> pathinfoservices.upstream.stores[1] -> pathinfoservices.mirror.inner.size: unknown field",
    );
  });

  test("unknown types, bad values and bad URLs name the path", () => {
    fails(
      CHAIN.replace('type = "lru"', 'type = "lur"'),
      /^pathinfoservices\.root\.far -> pathinfoservices\.upstream\.stores\[1\] -> pathinfoservices\.mirror\.type: unknown path info service type 'lur' \(known: [^)]*\blru\b[^)]*\)$/,
    );
    fails(
      CHAIN.replace("capacity = 10", "capacity = 0"),
      /^pathinfoservices\.root\.far -> pathinfoservices\.upstream\.stores\[1\] -> pathinfoservices\.mirror\.capacity: .*>=1/,
    );
    fails(
      CHAIN.replace('"memory://", "mirror"', '"memory://x", "mirror"'),
      "pathinfoservices.root.far -> pathinfoservices.upstream.stores[0]: path info service URL 'memory://x': memory:// takes no host ('x')",
    );
    fails(
      '[blobservices.root]\ntype = "priority"\nstores = []\n',
      "blobservices.root.stores: needs at least one store",
    );
    fails('[blobservices]\nroot = "local"\n', /^blobservices\.root: 'local' is not a URL/);
    fails("[blobservices]\nroot = 3\n", /^blobservices\.root: expected a blob service table/);
  });

  test("top-level mistakes, names and a missing root", () => {
    fails('[blobservice.root]\ntype = "memory"\n', "blobservice: unknown field");
    fails(
      '[blobservices."a.b"]\ntype = "memory"\n',
      /^blobservices\.a\.b: not a valid instance name/,
    );
    fails(
      '[blobservices.main]\ntype = "memory"\n',
      "blobservices: no 'root' entry (the entry point of the section); it has: main",
    );
    fails("x = [", /^not valid TOML: /);
    assert.throws(() => parseConfigText("{", "json"), /^ConfigError: not valid JSON: /);
  });

  test("a section the file leaves out gets the default root, if one is given", () => {
    const config = parse('[pathinfoservices]\nroot = "memory://"\n', {
      defaults: { blob: "memory://", directory: "lmdb://" },
    });
    assert.equal(config.entry("blob", "root")?.url, "memory://");
    assert.equal(config.entry("directory", "root")?.config.type, "lmdb");
    assert.equal(config.has("pathinfo"), true);
  });
});

describe("composition config: common options", () => {
  const text = `
[defaults]
timeout_ms = 1000
max_concurrency = 8

[defaults.pathinfoservices]
timeout_ms = 200

[pathinfoservices.root]
type = "priority"
stores = ["a", "b", "memory://"]

[pathinfoservices.a]
type = "memory"
timeout_ms = 50

[pathinfoservices.b]
type = "memory"

[blobservices]
root = "memory://"
`;

  test("instance, then [defaults.<section>], then [defaults]; not on combinators", () => {
    const config = parse(text);
    const root = config.entry("pathinfo", "root")!;
    assert.deepEqual(root.common, {}, "defaults skip combinators");
    const [a, b, url] = root.edges.map((e) => e.target);
    assert.deepEqual(a!.common, { timeout_ms: 50, max_concurrency: 8 });
    assert.deepEqual(b!.common, { timeout_ms: 200, max_concurrency: 8 });
    assert.deepEqual(url!.common, { timeout_ms: 200, max_concurrency: 8 }, "ad-hoc URLs too");
    assert.deepEqual(config.entry("blob", "root")!.common, {
      timeout_ms: 1000,
      max_concurrency: 8,
    });
  });

  test("set on a combinator itself, an option applies to it", () => {
    const config = parse(text.replace('stores = ["a"', 'timeout_ms = 5000\nstores = ["a"'));
    assert.deepEqual(config.entry("pathinfo", "root")!.common, { timeout_ms: 5000 });
  });

  test("bad values and unknown options name the field", () => {
    fails(
      text.replace("timeout_ms = 50", "timeout_ms = -1"),
      /^pathinfoservices\.root\.stores\[0\] -> pathinfoservices\.a\.timeout_ms: /,
    );
    fails(
      text.replace("max_concurrency = 8", "max_concurrency = 8\nretries = 2"),
      "defaults.retries: unknown field",
    );
  });
});

describe("composition config: the substituters shortcut", () => {
  const shortcut = `
substituters = ["memory://", "lmdb://"]

[local]
blob = "memory://"
directory = "lmdb://"
pathinfo = "lmdb://"

[substitution]
negative_ttl_ms = 1000
`;

  test("compiles to the same graph as the sections written out", () => {
    // memory:// serves every kind, lmdb:// directories and path infos only.
    const written = parse(`
[blobservices]
local = "memory://"
[blobservices.root]
type = "cache"
near = "local"
far = "substituters"
[blobservices.substituters]
type = "priority"
stores = ["memory://"]
negative_ttl_ms = 1000

[directoryservices]
local = "lmdb://"
[directoryservices.root]
type = "cache"
near = "local"
far = "substituters"
[directoryservices.substituters]
type = "priority"
stores = ["memory://", "lmdb://"]
negative_ttl_ms = 1000

[pathinfoservices]
local = "lmdb://"
[pathinfoservices.root]
type = "cache"
near = "local"
far = "substituters"
[pathinfoservices.substituters]
type = "priority"
stores = ["memory://", "lmdb://"]
negative_ttl_ms = 1000
`);
    const compiled = parse(shortcut);
    for (const kind of ["blob", "directory", "pathinfo"] as const) {
      assert.deepEqual(shape(compiled.entry(kind, "root")!), shape(written.entry(kind, "root")!));
      assert.deepEqual(compiled.names(kind), written.names(kind));
    }
    // A kind no substituter serves is just the local store.
    const lmdbOnly = parse(`substituters = ["lmdb://"]
[local]
blob = "memory://"
directory = "memory://"
pathinfo = "memory://"
`);
    assert.deepEqual(lmdbOnly.names("blob"), ["root"]);
    assert.equal(lmdbOnly.entry("blob", "root")!.url, "memory://");
    assert.equal(lmdbOnly.entry("pathinfo", "root")!.config.type, "cache");
  });

  test("fill_local = false: a priority list, local first", () => {
    const config = parse(`${shortcut}fill_local = false\n`);
    assert.deepEqual(config.entry("pathinfo", "root")!.config, {
      type: "priority",
      stores: ["local", "substituters"],
    });
  });

  test("the local store defaults to the built-in defaults", () => {
    const config = parse('substituters = ["memory://"]\n', {
      defaults: { blob: "memory://", directory: "memory://", pathinfo: "lmdb://" },
    });
    assert.equal(config.entry("pathinfo", "local")!.url, "lmdb://");
    fails(
      'substituters = ["memory://"]\n',
      "substituters: no local blob service: set local.blob to a URL",
    );
  });

  test("mistakes", () => {
    fails(
      `${shortcut}[pathinfoservices.root]\ntype = "memory"\n`,
      /^substituters: pathinfoservices\.root is defined in the file too/,
    );
    fails("substituters = []\n", /^substituters: the list is empty/);
    fails(
      'substituters = ["nope://x"]\n',
      /^substituters\[0\]: no store type has the scheme 'nope:\/\/'/,
    );
    fails('[local]\nblob = "memory://"\n', /^local: only used with 'substituters'/);
  });
});

describe("URL shortcuts and escaping", () => {
  test("?cache= wraps any store URL, the parameter removed from the inner URL", () => {
    assert.deepEqual(registry.configFromUrl("directory", "lmdb:///var/x?cache=memory://"), {
      type: "cache",
      near: "memory://",
      far: "lmdb:///var/x",
    });
    // The rest of the query stays with the inner URL (and is checked there).
    assert.throws(
      () => registry.configFromUrl("pathinfo", "lmdb:///x?cache=memory://&mapsize=3"),
      /lmdb:\/\/\/x\?mapsize=3': lmdb:\/\/: unknown query parameter 'mapsize'/,
    );
    assert.throws(
      () => registry.configFromUrl("blob", "memory://?cache=memory://&cache=memory://"),
      /query parameter 'cache' is given more than once/,
    );
  });

  test("cache:// and the other combinator URLs", () => {
    assert.deepEqual(
      registry.configFromUrl(
        "pathinfo",
        "cache://?near=memory://&far=lmdb://&write=through&negative_ttl_ms=500",
      ),
      { type: "cache", near: "memory://", far: "lmdb://", write: "through", negative_ttl_ms: 500 },
    );
    assert.deepEqual(
      registry.configFromUrl("blob", "race://?stores=memory://&stores=memory://&hedge_after_ms=20"),
      { type: "race", stores: ["memory://", "memory://"], hedge_after_ms: 20 },
    );
    assert.throws(
      () => registry.configFromUrl("blob", "cache://?near=memory://"),
      /cache:\/\/: query parameter 'far' is missing/,
    );
    assert.throws(
      () => registry.configFromUrl("blob", "cache://?near=memory://&far=memory://&write=back"),
      /cache:\/\/\?near=memory:\/\/&far=memory:\/\/&write=back': write: /,
    );
    // Inner URLs are checked as URLs of the same kind.
    assert.throws(
      () => registry.configFromUrl("blob", "cache://?near=memory://&far=lmdb://"),
      /^ConfigError: blob service URL 'cache:\/\/\?near=memory:\/\/&far=lmdb:\/\/': far: blob service URL 'lmdb:\/\/': unknown scheme/,
    );
  });

  test("'+' in an inner URL needs no escaping; '&' does (README table)", () => {
    // A '+' stays a '+' (form decoding would make it a space).
    assert.deepEqual(
      registry.configFromUrl("blob", "cache://?near=memory://&far=objectstore+file:///var/blobs"),
      { type: "cache", near: "memory://", far: "objectstore+file:///var/blobs" },
    );
    // An inner URL with a query of its own: its '&' must be %26 ...
    const inner = "cache://?near=memory://&far=memory://";
    assert.deepEqual(
      registry.configFromUrl("blob", `retry://?inner=${encodeURIComponent(inner)}&attempts=2`),
      { type: "retry", inner, attempts: 2 },
    );
    // ... and without escaping, its '&far=' is read as the outer URL's parameter.
    assert.throws(
      () => registry.configFromUrl("blob", `retry://?inner=${inner}`),
      /retry:\/\/: unknown query parameter 'far'/,
    );
    // A path with '%', '#', ' ' in a nested URL: escaped once per level.
    const path = "/var/my store#1%";
    const lmdb = `lmdb://${encodeURI(path).replaceAll("#", "%23")}`;
    assert.deepEqual(registry.configFromUrl("directory", lmdb), { type: "lmdb", path });
    const nested = `cache://?near=memory://&far=${encodeURIComponent(lmdb)}`;
    assert.deepEqual(registry.configFromUrl("directory", nested), {
      type: "cache",
      near: "memory://",
      far: lmdb,
    });
  });
});

describe("config check output and JSON Schema", () => {
  test("the graph is printed as a tree with instance names, types and options", () => {
    const config = parse(`
[defaults]
timeout_ms = 100
[pathinfoservices.root]
type = "cache"
near = "local"
far = { type = "priority", stores = ["local", "memory://"] }
[pathinfoservices.local]
type = "memory"
[pathinfoservices.spare]
type = "memory"
`);
    assert.equal(
      formatGraph(config),
      [
        "pathinfoservices.root [cache]",
        "├─ near: pathinfoservices.local [memory, timeout_ms=100]",
        "└─ far: pathinfoservices.root.far (inline) [priority]",
        "   ├─ stores[0]: pathinfoservices.local [memory, timeout_ms=100] (shared, see above)",
        "   └─ stores[1]: memory:// [memory, timeout_ms=100]",
        "not referenced by any root:",
        "  pathinfoservices.spare [memory, timeout_ms=100]",
      ].join("\n"),
    );
  });

  test("the JSON Schema has every registered type, with the common options", () => {
    const schema = configJsonSchema(registry) as {
      properties: Record<string, { additionalProperties?: { anyOf: { $ref?: string }[] } }>;
      $defs: Record<
        string,
        { properties: Record<string, unknown>; additionalProperties?: unknown }
      >;
    };
    for (const kind of ["blob", "directory", "pathinfo"] as const) {
      for (const tag of registry.tags(kind)) {
        const def = schema.$defs[`${kind}.${tag}`];
        assert.ok(def !== undefined, `${kind}.${tag}`);
        assert.ok("timeout_ms" in def.properties && "max_concurrency" in def.properties);
        assert.equal(def.additionalProperties, false, "unknown fields are rejected");
      }
    }
    const refs = schema.properties.pathinfoservices!.additionalProperties!.anyOf.flatMap((a) =>
      a.$ref === undefined ? [] : [a.$ref],
    );
    assert.ok(refs.includes("#/$defs/pathinfo.race"));
    assert.ok("substituters" in schema.properties && "defaults" in schema.properties);
    assert.deepEqual(schema.$defs["pathinfo.cache"]!.properties.write, {
      type: "string",
      enum: ["near", "through"],
      description: "Where writes go: 'near' (default) or 'through' (near and far).",
    });
  });
});
