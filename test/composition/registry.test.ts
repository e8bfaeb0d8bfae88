/**
 * The service registry: URL parsing (the address table ported from Snix),
 * URL -> config -> service for every built-in type, config validation with
 * field paths, and the defaults of ARCHITECTURE §7.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { FsObjectStoreBlobService } from "../../src/castore/blob/objectstore-fs.js";
import { LmdbDirectoryService } from "../../src/castore/directory/lmdb.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import { defaultServiceUrls, urlPath } from "../../src/composition/open.js";
import {
  instanceNameForUrl,
  type ServiceConfig,
  type ServiceKind,
} from "../../src/composition/registry.js";
import { ConfigError, formatErrorChain, StorageError } from "../../src/errors.js";
import { LmdbPathInfoService } from "../../src/store/pathinfo/lmdb.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";

const TMP = mkdtempSync(join(tmpdir(), "strata-registry-"));
after(() => rmSync(TMP, { recursive: true, force: true }));
let dirCount = 0;
/** A path under the test's temp root that does not exist yet. */
const freshPath = (name: string): string => join(TMP, `${dirCount++}-${name}`);

const LABEL: Record<ServiceKind, string> = {
  blob: "blob service",
  directory: "directory service",
  pathinfo: "path info service",
};

type Expect =
  /** configFromUrl returns this config; `build: false` for rows that would touch real paths. */
  { readonly config: ServiceConfig; readonly build?: false } | { readonly error: RegExp };

interface Row {
  /** The rstest case name in Snix (or `strata_*` for rows we added). */
  readonly name: string;
  readonly kinds: readonly ServiceKind[];
  readonly url: string;
  /** What Snix's from_addr test expects for this URL. */
  readonly snix: "ok" | "error" | "-";
  readonly expect: Expect;
}

const ALL: readonly ServiceKind[] = ["blob", "directory", "pathinfo"];
const DIR_PI: readonly ServiceKind[] = ["directory", "pathinfo"];

const UNKNOWN = (scheme: string): RegExp =>
  new RegExp(`unknown scheme '${scheme.replace(/[+.]/g, "\\$&")}://' \\(known schemes: `);

// Snix redb (Tvix: sled) rows, run against lmdb. The two valid-path rows use
// fresh temp dirs, like Snix's TMPDIR_REDB_1/2.
const lmdbPath1 = freshPath("foo");
const lmdbPath2 = freshPath("bar");

/**
 * The valid/invalid address table of Snix's `from_addr` tests, from
 * cachix/snix at 98703f7a414bb7ff8776b2946f82b7296c8791cb:
 *   snix/castore/src/blobservice/from_addr.rs        (blob)
 *   snix/castore/src/directoryservice/from_addr.rs   (directory)
 *   snix/store/src/pathinfoservice/from_addr.rs      (pathinfo)
 * (Tvix has the same rows with sled for redb: tvlfyi/tvix
 * castore/src/directoryservice/from_addr.rs.) Where Snix expects success for
 * a scheme we do not have yet, the row expects our "unknown scheme" error
 * and names the issue that will flip it.
 */
const SNIX_ROWS: readonly Row[] = [
  {
    name: "unsupported_scheme",
    kinds: ALL,
    url: "http://foo.example/test",
    snix: "error",
    expect: { error: UNKNOWN("http") },
  },
  {
    name: "memory_valid",
    kinds: ALL,
    url: "memory://",
    snix: "ok",
    expect: { config: { type: "memory" } },
  },
  {
    name: "memory_invalid_host",
    kinds: ALL,
    url: "memory://foo",
    snix: "error",
    expect: { error: /memory:\/\/ takes no host \('foo'\)/ },
  },
  {
    name: "memory_invalid_root_path",
    kinds: ALL,
    url: "memory:///",
    snix: "error",
    expect: { error: /memory:\/\/ takes no path \('\/'\)/ },
  },
  {
    name: "memory_invalid_root_path_foo",
    kinds: ALL,
    url: "memory:///foo",
    snix: "error",
    expect: { error: /memory:\/\/ takes no path \('\/foo'\)/ },
  },
  // redb rows (directory, pathinfo) as lmdb.
  {
    name: "redb_valid_temporary / redb_valid_in_memory",
    kinds: DIR_PI,
    url: "lmdb://",
    snix: "ok",
    expect: { config: { type: "lmdb" } },
  },
  {
    name: "redb_invalid_root",
    kinds: DIR_PI,
    url: "lmdb:///",
    snix: "error",
    expect: { error: /lmdb:\/\/: path '\/' is the file system root/ },
  },
  {
    name: "redb_invalid_host",
    kinds: DIR_PI,
    url: "lmdb://foo.example",
    snix: "error",
    expect: { error: /lmdb:\/\/ takes no host \('foo\.example'\)/ },
  },
  {
    name: "redb_valid_path",
    kinds: ["directory"],
    url: `lmdb://${lmdbPath1}`,
    snix: "ok",
    expect: { config: { type: "lmdb", path: lmdbPath1 } },
  },
  {
    name: "redb_valid_path",
    kinds: ["pathinfo"],
    url: `lmdb://${lmdbPath2}`,
    snix: "ok",
    expect: { config: { type: "lmdb", path: lmdbPath2 } },
  },
  {
    name: "redb_invalid_host_with_valid_path",
    kinds: DIR_PI,
    url: `lmdb://foo.example${lmdbPath2}`,
    snix: "error",
    expect: { error: /lmdb:\/\/ takes no host \('foo\.example'\)/ },
  },
  // gRPC clients (issue 6); building them connects nothing (lazy).
  ...(
    [
      ["grpc_valid_unix_socket", "grpc+unix:///path/to/somewhere"],
      ["grpc_valid_ipv6_localhost_port_12345", "grpc+http://[::1]:12345"],
      ["grpc_valid_http_host_without_port", "grpc+http://localhost"],
      ["grpc_valid_https_host_without_port", "grpc+https://localhost"],
    ] as const
  ).map(
    ([name, url]): Row => ({
      name,
      kinds: ALL,
      url,
      snix: "ok",
      expect: { config: { type: "grpc", url } },
    }),
  ),
  {
    name: "grpc_invalid_unix_socket_and_host",
    kinds: ALL,
    url: "grpc+unix://host.example/path/to/somewhere",
    snix: "error",
    expect: { error: /grpc\+unix:\/\/ takes no host \('host\.example'\)/ },
  },
  {
    name: "grpc_invalid_has_path / grpc_invalid_host_and_path",
    kinds: ALL,
    url: "grpc+http://localhost/some-path",
    snix: "error",
    expect: { error: /grpc\+http:\/\/ takes no path \('\/some-path'\)/ },
  },
  // Blob object stores: only file:// so far. The others Snix accepts (via
  // the object_store crate; s3/gs behind its "cloud" feature) are ours to
  // add later (objectstore+s3 is planned), and until then say so.
  {
    name: "objectstore_valid_file",
    kinds: ["blob"],
    url: "objectstore+file:///foo/bar",
    snix: "ok",
    expect: { config: { type: "objectstore", object_store_url: "file:///foo/bar" }, build: false },
  },
  ...(
    [
      ["objectstore_valid_memory", "objectstore+memory:///", "memory"],
      ["objectstore_valid_http_url", "objectstore+https://localhost:8080/some-path", "https"],
      ["objectstore_valid_s3_url", "objectstore+s3://bucket/path", "s3"],
      ["objectstore_valid_gcs_url", "objectstore+gs://bucket/path", "gs"],
    ] as const
  ).map(
    ([name, url, variant]): Row => ({
      name,
      kinds: ["blob"],
      url,
      snix: "ok",
      expect: { error: new RegExp(`objectstore\\+${variant}:// is not supported yet`) },
    }),
  ),
  // Snix accepts cache:// only with its xp-composition-url-refs feature
  // (error without); strata always does (issue 4).
  {
    name: "anonymous_url_composition",
    kinds: ["directory"],
    url: "cache://?near=memory://&far=memory://",
    snix: "error",
    expect: { config: { type: "cache", near: "memory://", far: "memory://" } },
  },
  // TODO(no issue yet): nix+http(s):// — a Nix binary cache as a PathInfoService
  // (the substituters of issue 4 need it). Snix accepts all of these.
  ...(
    [
      ["correct_nix_https", "nix+https://cache.nixos.org"],
      ["correct_nix_http", "nix+http://cache.nixos.org"],
      ["correct_nix_http_with_subpath", "nix+http://192.0.2.1/foo"],
      ["correct_nix_http_with_subpath_and_port", "nix+http://[::1]:8080/foo"],
      [
        "correct_nix_https_with_trusted_public_key",
        "nix+https://cache.nixos.org?trusted-public-keys=cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
      ],
      [
        "correct_nix_https_with_two_trusted_public_keys",
        "nix+https://cache.nixos.org?trusted-public-keys=cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=%20foo:jp4fCEx9tBEId/L0ZsVJ26k0wC0fu7vJqLjjIGFkup8=",
      ],
    ] as const
  ).map(
    ([name, url]): Row => ({
      name,
      kinds: ["pathinfo"],
      url,
      snix: "ok",
      expect: { error: UNKNOWN(url.slice(0, url.indexOf(":"))) },
    }),
  ),
  // TODO(no plan): bigtable (Snix: cloud + integration features only).
  {
    name: "bigtable_valid_url",
    kinds: DIR_PI,
    url: "bigtable://instance-1?project_id=project-1&table_name=table-1&family_name=cf1",
    snix: "ok",
    expect: { error: UNKNOWN("bigtable") },
  },
  {
    name: "bigtable_invalid_url",
    kinds: DIR_PI,
    url: "bigtable://instance-1",
    snix: "error",
    expect: { error: UNKNOWN("bigtable") },
  },
];

const weirdPath = freshPath("a b#c?d%e");

/** Rows Snix does not have: the other URL parts, and our own forms. */
const STRATA_ROWS: readonly Row[] = [
  // gRPC URL parts (issue 6).
  {
    name: "strata_grpc_unix_short_form_and_params",
    kinds: ALL,
    url: "grpc+unix:/run/strata.sock?wait-connect=0&package=tvix",
    snix: "-",
    expect: {
      config: { type: "grpc", url: "grpc+unix:/run/strata.sock?wait-connect=0&package=tvix" },
    },
  },
  {
    name: "strata_grpc_bad_params",
    kinds: ALL,
    url: "grpc+http://localhost?wait-connect=yes",
    snix: "-",
    expect: { error: /wait-connect must be 0 or 1, not 'yes'/ },
  },
  {
    name: "strata_grpc_bad_package",
    kinds: ALL,
    url: "grpc+http://localhost?package=nix",
    snix: "-",
    expect: { error: /package must be 'snix' or 'tvix', not 'nix'/ },
  },
  {
    name: "strata_grpc_unknown_param",
    kinds: ALL,
    url: "grpc+https://localhost:8443?timeout=5",
    snix: "-",
    expect: { error: /unknown query parameter 'timeout' \(known: 'wait-connect', 'package'\)/ },
  },
  {
    name: "strata_grpc_no_transport",
    kinds: ALL,
    url: "grpc://localhost",
    snix: "-",
    expect: { error: /grpc:\/\/ needs a transport: grpc\+unix:\/\/\/ABSOLUTE\/PATH/ },
  },
  {
    name: "strata_grpc_unknown_transport",
    kinds: ALL,
    url: "grpc+tcp://localhost",
    snix: "-",
    expect: { error: /grpc\+tcp:\/\/ is not supported/ },
  },
  {
    name: "strata_grpc_unix_without_path",
    kinds: ALL,
    url: "grpc+unix://",
    snix: "-",
    expect: { error: /grpc\+unix:\/\/ needs a socket path/ },
  },
  {
    name: "strata_grpc_credentials",
    kinds: ALL,
    url: "grpc+https://user:secret@localhost",
    snix: "-",
    expect: { error: /grpc\+https:\/\/ takes no credentials/ },
  },
  {
    name: "strata_memory_short_form",
    kinds: ALL,
    url: "memory:",
    snix: "-",
    expect: { config: { type: "memory" } },
  },
  {
    name: "strata_scheme_case",
    kinds: ALL,
    url: "MEMORY://",
    snix: "-",
    expect: { config: { type: "memory" } },
  },
  {
    name: "strata_memory_query",
    kinds: ALL,
    url: "memory://?size=1&b=2",
    snix: "-",
    expect: { error: /memory:\/\/: unknown query parameters 'size', 'b' \(it takes none\)/ },
  },
  {
    name: "strata_memory_fragment",
    kinds: ALL,
    url: "memory://#x",
    snix: "-",
    expect: { error: /memory:\/\/ takes no fragment \('#x'\)/ },
  },
  {
    name: "strata_memory_variant",
    kinds: ALL,
    url: "memory+foo://",
    snix: "-",
    expect: { error: /memory:\/\/ has no '\+' variants \('memory\+foo:\/\/'\)/ },
  },
  {
    name: "strata_memory_port",
    kinds: ALL,
    url: "memory://foo:123",
    snix: "-",
    expect: { error: /takes no host \('foo:123'\)/ },
  },
  {
    name: "strata_not_a_url",
    kinds: ALL,
    url: "/var/lib/strata",
    snix: "-",
    expect: { error: /not a URL \(known schemes: / },
  },
  {
    name: "strata_lmdb_relative",
    kinds: DIR_PI,
    url: "lmdb:relative/dir",
    snix: "-",
    expect: { error: /lmdb:\/\/: path 'relative\/dir' is not absolute/ },
  },
  {
    name: "strata_lmdb_query",
    kinds: DIR_PI,
    url: "lmdb:///var/lib/x?mapsize=10",
    snix: "-",
    expect: { error: /lmdb:\/\/: unknown query parameter 'mapsize' \(it takes none\)/ },
  },
  {
    name: "strata_lmdb_localhost",
    kinds: DIR_PI,
    url: "lmdb://localhost/var/lib/x",
    snix: "-",
    expect: {
      error: /lmdb:\/\/ takes no host \('localhost'\); a path is written lmdb:\/\/\/ABSOLUTE\/PATH/,
    },
  },
  {
    name: "strata_lmdb_trailing_slash_and_dots",
    kinds: DIR_PI,
    url: "lmdb:///var/lib/../lib/x/",
    snix: "-",
    expect: { config: { type: "lmdb", path: "/var/lib/x" }, build: false },
  },
  {
    name: "strata_lmdb_percent_decoded",
    kinds: DIR_PI,
    url: `lmdb://${urlPath(weirdPath)}`,
    snix: "-",
    expect: { config: { type: "lmdb", path: weirdPath } },
  },
  {
    name: "strata_lmdb_bad_escape",
    kinds: DIR_PI,
    url: "lmdb:///x%zz",
    snix: "-",
    expect: { error: /path '\/x%zz' has a bad percent-escape/ },
  },
  {
    name: "strata_lmdb_nul",
    kinds: DIR_PI,
    url: "lmdb:///x%00y",
    snix: "-",
    expect: { error: /contains a NUL byte/ },
  },
  {
    name: "strata_lmdb_not_for_blobs",
    kinds: ["blob"],
    url: "lmdb:///x",
    snix: "-",
    expect: { error: UNKNOWN("lmdb") },
  },
  {
    name: "strata_objectstore_not_for_directories",
    kinds: DIR_PI,
    url: "objectstore+file:///x",
    snix: "-",
    expect: { error: UNKNOWN("objectstore+file") },
  },
  {
    name: "strata_objectstore_without_variant",
    kinds: ["blob"],
    url: "objectstore:///x",
    snix: "-",
    expect: {
      error:
        /objectstore:\/\/ needs the kind of object store, e\.g\. objectstore\+file:\/\/\/ABSOLUTE\/DIR/,
    },
  },
  {
    name: "strata_objectstore_file_host",
    kinds: ["blob"],
    url: "objectstore+file://host/x",
    snix: "-",
    expect: { error: /objectstore\+file:\/\/ takes no host \('host'\)/ },
  },
  {
    name: "strata_objectstore_file_no_path",
    kinds: ["blob"],
    url: "objectstore+file://",
    snix: "-",
    expect: { error: /objectstore\+file:\/\/ needs a path/ },
  },
  {
    name: "strata_objectstore_file_root",
    kinds: ["blob"],
    url: "objectstore+file:///",
    snix: "-",
    expect: { error: /path '\/' is the file system root/ },
  },
  {
    name: "strata_objectstore_file_query",
    kinds: ["blob"],
    url: "objectstore+file:///x?region=eu",
    snix: "-",
    expect: { error: /objectstore\+file:\/\/: unknown query parameter 'region'/ },
  },
  {
    name: "strata_objectstore_file_weird_path",
    kinds: ["blob"],
    url: `objectstore+file://${urlPath(weirdPath)}`,
    snix: "-",
    expect: { config: { type: "objectstore", object_store_url: pathToFileURL(weirdPath).href } },
  },
  {
    name: "strata_password_redacted",
    kinds: ["blob"],
    url: "objectstore+s3://key:hunter2@bucket/x",
    snix: "-",
    expect: {
      error:
        /^blob service URL 'objectstore\+s3:\/\/key:\*\*\*@bucket\/x': objectstore\+s3:\/\/ is not supported yet/,
    },
  },
];

describe("service URLs (Snix from_addr table + strata rows)", () => {
  const registry = defaultRegistry();
  for (const row of [...SNIX_ROWS, ...STRATA_ROWS]) {
    for (const kind of row.kinds) {
      const snix = row.snix === "-" ? "" : ` [snix: ${row.snix}]`;
      const what = "config" in row.expect ? "ok" : "error";
      test(`${kind} ${row.name}: ${row.url} -> ${what}${snix}`, async () => {
        const { expect } = row;
        if ("error" in expect) {
          let caught: unknown;
          try {
            registry.configFromUrl(kind, row.url);
          } catch (err) {
            caught = err;
          }
          assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
          // Every message names the kind and the URL (password redacted), then the wrong part.
          const shown = row.url.includes("hunter2") ? "" : `${LABEL[kind]} URL '`;
          assert.ok(caught.message.startsWith(shown), caught.message);
          assert.match(caught.message, expect.error);
          assert.doesNotMatch(caught.message, /hunter2/);
          // The same failure through build().
          await assert.rejects(registry.build(kind, row.url), ConfigError);
        } else {
          assert.deepEqual(registry.configFromUrl(kind, row.url), expect.config);
          if (expect.build !== false) {
            const service = await registry.build(kind, row.url);
            await service.close();
          }
        }
      });
    }
  }
});

describe("URL -> config -> service, for each built-in type", () => {
  const registry = defaultRegistry();

  test("memory:// for all three kinds", async () => {
    const blob = await registry.build("blob", "memory://");
    const dir = await registry.build("directory", "memory://");
    const pi = await registry.build("pathinfo", "memory://");
    assert.ok(blob instanceof MemoryBlobService);
    assert.ok(dir instanceof MemoryDirectoryService);
    assert.ok(pi instanceof MemoryPathInfoService);
    await Promise.all([blob.close(), dir.close(), pi.close()]);
  });

  test("objectstore+file:// opens a store in that directory, from URL and from config", async () => {
    const root = freshPath("blobs");
    const url = `objectstore+file://${root}`;
    const config = registry.configFromUrl("blob", url);
    assert.deepEqual(config, { type: "objectstore", object_store_url: pathToFileURL(root).href });
    for (const input of [url, config]) {
      const blob = await registry.build("blob", input);
      assert.ok(blob instanceof FsObjectStoreBlobService);
      assert.equal(blob.root, root);
      const w = blob.openWrite();
      await w.write(new Uint8Array([1, 2, 3]));
      const digest = await w.close();
      assert.equal(await blob.has(digest), true);
      await blob.close();
    }
  });

  test("lmdb:///path and lmdb:// (temporary) for directories and path infos", async () => {
    const dirPath = freshPath("dirs");
    const piPath = freshPath("pis");
    const dir = await registry.build("directory", `lmdb://${dirPath}`);
    const pi = await registry.build("pathinfo", { type: "lmdb", path: piPath });
    assert.ok(dir instanceof LmdbDirectoryService);
    assert.ok(pi instanceof LmdbPathInfoService);
    assert.equal(dir.path, dirPath);
    await Promise.all([dir.close(), pi.close()]);

    const tmpDir = await registry.build("directory", "lmdb://");
    const tmpPi = await registry.build("pathinfo", { type: "lmdb", is_temporary: true });
    assert.ok(tmpDir instanceof LmdbDirectoryService);
    assert.ok(tmpPi instanceof LmdbPathInfoService);
    assert.notEqual(tmpDir.path, dirPath);
    await Promise.all([tmpDir.close(), tmpPi.close()]);
  });

  test("a backend that fails to open: same error class, instance named, cause kept", async () => {
    const file = freshPath("a-file");
    writeFileSync(file, "not a directory");
    const err = await registry.build("directory", `lmdb://${file}`).then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError, String(err));
    assert.match(err.message, /^opening directory service 'root' \(type lmdb\)$/);
    assert.ok(err.cause instanceof Error);
    assert.match(formatErrorChain(err), /caused by: /);
  });
});

describe("config objects", () => {
  const registry = defaultRegistry();

  const rejects = (kind: ServiceKind, raw: unknown, message: RegExp): void => {
    assert.throws(
      () => registry.parseConfig(kind, raw, `${kind}services.root`),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.match(err.message, message);
        return true;
      },
    );
  };

  test("unknown fields are rejected with their path", () => {
    rejects(
      "directory",
      { type: "lmdb", path: "/var/lib/x", mapsize: 1, compression: "zstd" },
      /^directoryservices\.root\.mapsize: unknown field; directoryservices\.root\.compression: unknown field$/,
    );
    rejects("blob", { type: "memory", size: 1 }, /^blobservices\.root\.size: unknown field$/);
    // Snix's avg_chunk_size would be silently meaningless here.
    rejects(
      "blob",
      { type: "objectstore", object_store_url: "file:///x", avg_chunk_size: 262144 },
      /blobservices\.root\.avg_chunk_size: unknown field/,
    );
    // Nested: an object-store option the file store does not have.
    rejects(
      "blob",
      {
        type: "objectstore",
        object_store_url: "file:///x",
        object_store_options: { region: "eu" },
      },
      /blobservices\.root\.object_store_options\.region: unknown option/,
    );
  });

  test("wrong field types and values name the field", () => {
    rejects(
      "directory",
      { type: "lmdb", path: 5 },
      /directoryservices\.root\.path: .*expected string/,
    );
    rejects(
      "pathinfo",
      { type: "lmdb", path: "rel/dir" },
      /pathinfoservices\.root\.path: 'rel\/dir' is not absolute/,
    );
    rejects(
      "pathinfo",
      { type: "lmdb", path: "/" },
      /pathinfoservices\.root\.path: '\/' is the file system root/,
    );
    rejects(
      "blob",
      { type: "objectstore", object_store_url: "s3://bucket/x" },
      /blobservices\.root\.object_store_url: s3:\/\/ object stores are not supported yet/,
    );
    rejects("blob", { type: "objectstore" }, /blobservices\.root\.object_store_url: /);
  });

  test("type missing, unknown, or not an object", () => {
    rejects(
      "directory",
      { path: "/x" },
      /^directoryservices\.root\.type: missing \(known directory service types: [^)]*\blmdb, lru, memory\b[^)]*\)/,
    );
    rejects(
      "directory",
      { type: "sled" },
      /^directoryservices\.root\.type: unknown directory service type 'sled' \(known: [^)]*\blmdb, lru, memory\b[^)]*\)/,
    );
    rejects("blob", { type: 3 }, /blobservices\.root\.type: expected a string, got a number/);
    rejects("blob", "memory://", /^blobservices\.root: expected a blob service config object/);
    rejects("blob", null, /got null/);
  });

  test("Snix-style lmdb config (is_temporary) is accepted when consistent", () => {
    assert.deepEqual(registry.parseConfig("directory", { type: "lmdb", is_temporary: true }, "d"), {
      type: "lmdb",
      is_temporary: true,
    });
    assert.deepEqual(
      registry.parseConfig("directory", { type: "lmdb", is_temporary: false, path: "/x" }, "d"),
      { type: "lmdb", is_temporary: false, path: "/x" },
    );
    rejects(
      "directory",
      { type: "lmdb", is_temporary: true, path: "/x" },
      /directoryservices\.root\.is_temporary: a temporary database takes no 'path'/,
    );
    rejects(
      "directory",
      { type: "lmdb", is_temporary: false },
      /directoryservices\.root\.path: required when is_temporary is false/,
    );
  });

  test("Snix-style objectstore config with empty object_store_options", () => {
    const config = { type: "objectstore", object_store_url: "file:///x", object_store_options: {} };
    assert.deepEqual(registry.parseConfig("blob", config, "b"), config);
  });

  test("build() validates config objects with the composition path of the instance", async () => {
    await assert.rejects(
      registry.build("blob", { type: "memory", x: 1 }, { instanceName: "local" }),
      /^ConfigError: blobservices\.local\.x: unknown field$/,
    );
  });
});

describe("Registry", () => {
  test("clone() is independent; duplicate tags need override", () => {
    const base = defaultRegistry();
    const combinators = ["cache", "priority", "race", "retry"];
    for (const tag of ["memory", "objectstore", ...combinators]) {
      assert.ok(base.tags("blob").includes(tag), tag);
    }
    for (const tag of ["lmdb", "memory", "lru", ...combinators]) {
      assert.ok(base.tags("directory").includes(tag), tag);
      assert.ok(base.tags("pathinfo").includes(tag), tag);
    }
    const memory = base.lookup("blob", "memory");
    assert.ok(memory !== undefined);
    assert.throws(() => base.register(memory), /already registered/);
    const copy = base.clone().register(memory, { override: true });
    assert.equal(copy.lookup("blob", "memory"), memory);
    assert.equal(base.lookup("directory", "objectstore"), undefined);
  });

  test("tags must be usable as a URL scheme prefix", () => {
    const memory = defaultRegistry().lookup("blob", "memory");
    assert.ok(memory !== undefined);
    assert.throws(
      () => defaultRegistry().register({ ...memory, tag: "a+b" }),
      /cannot register blob service type 'a\+b'/,
    );
  });

  test("instance names of ad-hoc URLs hide passwords", () => {
    assert.equal(instanceNameForUrl("grpc+https://u:pw@host/"), "grpc+https://u:***@host/");
    assert.equal(instanceNameForUrl("memory://"), "memory://");
  });
});

describe("defaultServiceUrls (ARCHITECTURE §7)", () => {
  test("under $XDG_DATA_HOME/strata", () => {
    assert.deepEqual(defaultServiceUrls({ XDG_DATA_HOME: "/data", HOME: "/home/u" }), {
      blob: "objectstore+file:///data/strata/blobs",
      directory: "lmdb:///data/strata/directories",
      pathinfo: "lmdb:///data/strata/pathinfo",
    });
  });

  test("XDG_DATA_HOME unset, empty or relative: ~/.local/share", () => {
    for (const xdg of [undefined, "", "relative/dir"]) {
      const env = xdg === undefined ? { HOME: "/home/u" } : { HOME: "/home/u", XDG_DATA_HOME: xdg };
      assert.equal(
        defaultServiceUrls(env).directory,
        "lmdb:///home/u/.local/share/strata/directories",
      );
    }
  });

  test("*_SERVICE_ADDR override each kind; empty values are ignored", () => {
    const urls = defaultServiceUrls({
      XDG_DATA_HOME: "/data",
      BLOB_SERVICE_ADDR: "memory://",
      DIRECTORY_SERVICE_ADDR: "",
      PATH_INFO_SERVICE_ADDR: "lmdb://",
    });
    assert.deepEqual(urls, {
      blob: "memory://",
      directory: "lmdb:///data/strata/directories",
      pathinfo: "lmdb://",
    });
  });

  test("paths with URL-special characters survive the round trip", () => {
    const registry = defaultRegistry();
    const urls = defaultServiceUrls({ XDG_DATA_HOME: "/da ta#1?x%y" });
    assert.deepEqual(registry.configFromUrl("directory", urls.directory), {
      type: "lmdb",
      path: "/da ta#1?x%y/strata/directories",
    });
    assert.deepEqual(registry.configFromUrl("blob", urls.blob), {
      type: "objectstore",
      object_store_url: pathToFileURL("/da ta#1?x%y/strata/blobs").href,
    });
  });
});
