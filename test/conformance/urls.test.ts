/**
 * THE list of backend URLs the conformance suites run against. Every backend
 * (and later every combinator and gRPC client) is reached through the
 * registry by its URL, so adding one means adding one line below.
 *
 * `url` is a function so each opened service gets fresh temporary
 * directories (made with `freshDir()`, removed after the suite closed the
 * service).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { urlPath } from "../../src/composition/open.js";
import type { ServiceByKind, ServiceKind } from "../../src/composition/registry.js";
import { inprocUrl, withGrpcInproc } from "../helpers/grpc-inproc.js";
import { testRegistry } from "../helpers/test-types.js";
import { type BlobConformanceCapabilities, blobServiceConformance } from "./blob.js";
import { type DirectoryServiceCapabilities, directoryServiceConformance } from "./directory.js";
import { type PathInfoServiceCapabilities, pathInfoServiceConformance } from "./pathinfo.js";

// Combinator URLs (issue 4). Inner URLs with a query of their own are
// percent-encoded (README "Store composition"); `faulty` is a test-only type
// (test/helpers/test-types.ts), hence `testRegistry()` below.
const CACHE_URL = "cache://?near=memory://&far=memory://";
const PRIORITY_URL = "priority://?stores=memory://&stores=memory://&stores=memory://";
const RACE_URL = "race://?stores=memory://&stores=memory://&stores=memory://";
const LRU_URL = "lru://?inner=memory://&capacity=100";
const RETRY_URL = `retry://?inner=${encodeURIComponent("faulty://?inner=memory://&fail_fraction=0.3")}&attempts=10&backoff_ms=0`;

interface BackendUrl<Caps> {
  /** Shown in the suite's name. */
  readonly name: string;
  /** A URL for a fresh, empty store; call `freshDir()` for any directory it needs. */
  readonly url: () => string;
  /** What the backend can do, where the suite asks. */
  readonly capabilities?: Caps;
}

const BLOB_URLS: readonly BackendUrl<BlobConformanceCapabilities>[] = [
  { name: "memory://", url: () => "memory://" },
  { name: "objectstore+file://$TMP", url: () => `objectstore+file://${freshDir()}` },
  // Combinators (issue 4).
  { name: "cache://?near=memory://&far=memory://", url: () => CACHE_URL },
  {
    name: "objectstore+file://$TMP?cache=memory://",
    url: () => `objectstore+file://${freshDir()}?cache=memory://`,
  },
  { name: "priority:// of three memory://", url: () => PRIORITY_URL },
  { name: "race:// of three memory://", url: () => RACE_URL },
  { name: "retry:// over faulty://", url: () => RETRY_URL },
  // gRPC client -> in-process server -> backend (issue 6).
  { name: "grpc+inproc:// -> memory://", url: () => inprocUrl("memory://") },
  {
    name: "grpc+inproc:// -> objectstore+file://$TMP",
    url: () => inprocUrl(`objectstore+file://${freshDir()}`),
  },
];

/**
 * Directories and path infos have the same backends and combinators, so
 * both suites run this list (`never`: no entry declares a capability).
 */
const KEYED_STORE_URLS: readonly BackendUrl<never>[] = [
  { name: "memory://", url: () => "memory://" },
  { name: "lmdb://$TMP/db", url: () => `lmdb://${freshDir()}/db` },
  { name: "lmdb:// (temporary)", url: () => "lmdb://" },
  // Combinators (issue 4).
  { name: "cache://?near=memory://&far=memory://", url: () => CACHE_URL },
  { name: "lmdb://?cache=memory://", url: () => "lmdb://?cache=memory://" },
  { name: "priority:// of three memory://", url: () => PRIORITY_URL },
  { name: "race:// of three memory://", url: () => RACE_URL },
  { name: "lru://?inner=memory://", url: () => LRU_URL },
  { name: "retry:// over faulty://", url: () => RETRY_URL },
  // gRPC client -> in-process server -> backend (issue 6).
  { name: "grpc+inproc:// -> memory://", url: () => inprocUrl("memory://") },
  { name: "grpc+inproc:// -> lmdb://$TMP/db", url: () => inprocUrl(`lmdb://${freshDir()}/db`) },
];

const DIRECTORY_URLS: readonly BackendUrl<DirectoryServiceCapabilities>[] = KEYED_STORE_URLS;

const PATH_INFO_URLS: readonly BackendUrl<PathInfoServiceCapabilities>[] = [
  ...KEYED_STORE_URLS,
  // Tvix package names once.
  { name: "grpc+inproc://?package=tvix -> memory://", url: () => inprocUrl("memory://", "tvix") },
];

// Temporary directories: one root for this file, one fresh directory per
// opened service, removed by that service's teardown.
const ROOT = mkdtempSync(join(tmpdir(), "strata-conformance-"));
after(() => rmSync(ROOT, { recursive: true, force: true }));
let madeForCurrentUrl: string[] = [];

/** A new empty directory, as a percent-encoded URL path (`lmdb://${freshDir()}`). */
function freshDir(): string {
  const dir = mkdtempSync(join(ROOT, "s-"));
  madeForCurrentUrl.push(dir);
  return urlPath(dir);
}

const registry = withGrpcInproc(testRegistry());

/** The suite's `open`: a fresh URL, built through the registry, with a teardown removing its directories. */
function opener<K extends ServiceKind>(
  kind: K,
  backend: BackendUrl<unknown>,
): () => Promise<{ service: ServiceByKind[K]; teardown: () => Promise<void> }> {
  return async () => {
    madeForCurrentUrl = [];
    const url = backend.url();
    const dirs = madeForCurrentUrl;
    const service = await registry.build(kind, url);
    const teardown = async (): Promise<void> => {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    };
    return { service, teardown };
  };
}

for (const b of BLOB_URLS) blobServiceConformance(b.name, opener("blob", b), b.capabilities);
for (const b of DIRECTORY_URLS) {
  directoryServiceConformance(b.name, opener("directory", b), b.capabilities);
}
for (const b of PATH_INFO_URLS) {
  pathInfoServiceConformance(b.name, opener("pathinfo", b), b.capabilities);
}
