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
import { defaultRegistry } from "../../src/composition/default-registry.js";
import { urlPath } from "../../src/composition/open.js";
import type { ServiceByKind, ServiceKind } from "../../src/composition/registry.js";
import { type BlobConformanceCapabilities, blobServiceConformance } from "./blob.js";
import { type DirectoryServiceCapabilities, directoryServiceConformance } from "./directory.js";
import { type PathInfoServiceCapabilities, pathInfoServiceConformance } from "./pathinfo.js";

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
];

const DIRECTORY_URLS: readonly BackendUrl<DirectoryServiceCapabilities>[] = [
  { name: "memory://", url: () => "memory://" },
  { name: "lmdb://$TMP/db", url: () => `lmdb://${freshDir()}/db` },
  { name: "lmdb:// (temporary)", url: () => "lmdb://" },
];

const PATH_INFO_URLS: readonly BackendUrl<PathInfoServiceCapabilities>[] = [
  { name: "memory://", url: () => "memory://" },
  { name: "lmdb://$TMP/db", url: () => `lmdb://${freshDir()}/db` },
  { name: "lmdb:// (temporary)", url: () => "lmdb://" },
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

const registry = defaultRegistry();

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
