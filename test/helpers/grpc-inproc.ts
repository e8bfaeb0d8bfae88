/**
 * Test-only URL scheme `grpc+inproc://?backend=<percent-encoded URL>`: starts
 * an in-process gRPC server (the daemon's GrpcServer) on a temporary unix
 * socket in front of the backend URL, and returns the real gRPC client
 * talking to it. Closing the client stops the server, closes the backend
 * and removes the socket directory. `&package=tvix` addresses the services
 * by their Tvix names (default: Snix). The kinds not under test are served
 * from memory.
 *
 * Registered only in tests (`withGrpcInproc(registry)`): it replaces the
 * `grpc` type with one that also understands the `inproc` variant.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { GrpcBlobService } from "../../src/castore/blob/grpc.js";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { GrpcDirectoryService } from "../../src/castore/directory/grpc.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { createNodeConnection } from "../../src/castore/grpc/connection-node.js";
import {
  type BuildContext,
  defineServiceType,
  type Registry,
  type ServiceByKind,
  type ServiceKind,
  type ServiceType,
} from "../../src/composition/registry.js";
import {
  grpcBlobType,
  grpcDirectoryType,
  grpcPathInfoType,
} from "../../src/composition/types/grpc.js";
import { checkQuery, schemeVariant } from "../../src/composition/types/url-parts.js";
import { ConfigError } from "../../src/errors.js";
import type { ProtoPackage } from "../../src/proto/packages.js";
import type { ServedStores } from "../../src/server/grpc/handlers.js";
import { GrpcServer } from "../../src/server/grpc/server.js";
import { GrpcPathInfoService } from "../../src/store/pathinfo/grpc.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";

const schema = z.strictObject({ type: z.literal("grpc"), url: z.string() });
type Config = z.infer<typeof schema>;

/** A `grpc+inproc://?backend=...` URL for `backend`. */
export function inprocUrl(backend: string, pkg?: ProtoPackage): string {
  const q = `backend=${encodeURIComponent(backend)}`;
  return `grpc+inproc://?${q}${pkg === undefined ? "" : `&package=${pkg}`}`;
}

function parseInproc(url: URL): { backend: string; pkg: ProtoPackage } {
  const query = checkQuery(url, "grpc+inproc://", ["backend", "package"]);
  const backend = query.get("backend");
  if (backend === undefined) throw new ConfigError("grpc+inproc:// needs ?backend=<URL>");
  const pkg = query.get("package") ?? "snix";
  if (pkg !== "snix" && pkg !== "tvix") throw new ConfigError(`bad package '${pkg}'`);
  return { backend, pkg };
}

const CLIENTS = {
  blob: GrpcBlobService,
  directory: GrpcDirectoryService,
  pathinfo: GrpcPathInfoService,
} as const;

async function buildInproc<K extends ServiceKind>(
  kind: K,
  url: URL,
  ctx: BuildContext,
): Promise<ServiceByKind[K]> {
  const { backend, pkg } = parseInproc(url);
  const served = await ctx.registry.build(kind, backend, {
    instanceName: `${ctx.instanceName}.backend`,
  });
  const stores: ServedStores = {
    blobs: kind === "blob" ? (served as ServiceByKind["blob"]) : new MemoryBlobService(),
    directories:
      kind === "directory" ? (served as ServiceByKind["directory"]) : new MemoryDirectoryService(),
    pathInfos:
      kind === "pathinfo" ? (served as ServiceByKind["pathinfo"]) : new MemoryPathInfoService(),
  };
  const dir = mkdtempSync(join(tmpdir(), "strata-inproc-"));
  const server = new GrpcServer({ stores });
  const path = join(dir, "grpc.sock");
  await server.listen([{ kind: "unix", path }]);
  const conn = createNodeConnection({ target: { kind: "unix", path }, pkg });
  const client = new CLIENTS[kind](conn, {
    instanceName: ctx.instanceName,
  }) as unknown as ServiceByKind[K];
  const clientClose = client.close.bind(client);
  let closing: Promise<void> | undefined;
  client.close = () => {
    closing ??= (async () => {
      await clientClose();
      await server.close(1000);
      await Promise.all([
        stores.blobs.close(),
        stores.directories.close(),
        stores.pathInfos.close(),
      ]);
      rmSync(dir, { recursive: true, force: true });
    })();
    return closing;
  };
  return client;
}

function inprocType<K extends ServiceKind>(
  kind: K,
  real: ServiceType<K, { type: "grpc"; url: string }>,
): ServiceType<K, Config> {
  return defineServiceType({
    kind,
    tag: "grpc",
    description: `${real.description} (tests: also grpc+inproc://?backend=URL)`,
    urlForms: [...(real.urlForms ?? []), "grpc+inproc://?backend=URL"],
    schema,
    fromUrl(url) {
      if (schemeVariant(url) !== "inproc") return real.fromUrl(url);
      parseInproc(url);
      return { type: "grpc", url: url.href };
    },
    build(config, ctx) {
      const url = new URL(config.url);
      if (schemeVariant(url) === "inproc") return buildInproc(kind, url, ctx);
      return real.build(config, ctx);
    },
  });
}

/** `registry` with the `grpc` types replaced by ones that also build grpc+inproc:// (returns it). */
export function withGrpcInproc(registry: Registry): Registry {
  return registry
    .register(inprocType("blob", grpcBlobType), { override: true })
    .register(inprocType("directory", grpcDirectoryType), { override: true })
    .register(inprocType("pathinfo", grpcPathInfoType), { override: true });
}
