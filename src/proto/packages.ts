/**
 * The store services under both package names (ARCHITECTURE §5): the
 * generated code is for `tvix.castore.v1` / `tvix.store.v1` only, and the
 * `snix.*` descriptors are derived from it here, at load time, by renaming
 * the packages in the embedded FileDescriptorProtos and building a registry
 * from them.
 *
 * Why not a second generated copy: the two protocols differ in nothing but
 * the package name (same messages, fields, numbers and method names; Snix
 * renamed the packages and kept everything else), so deriving one from the
 * other makes divergence impossible, keeps one set of `.proto` files, and
 * still yields complete descriptors (for routing, for clients, and for
 * server reflection, which must serve real `snix/...` file descriptors).
 * The derived services have the generated services' TypeScript types: at
 * runtime their messages carry `snix.*` type names, and code that handles
 * messages of either package only reads and writes fields.
 *
 * The same renaming derives `grpc.reflection.v1alpha` (what older reflection
 * clients such as grpcurl ask for) from `grpc.reflection.v1`.
 */
import { clone, create, createFileRegistry, type DescFile } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection,
} from "./gen/grpc/reflection/v1/reflection_pb.js";
import { file_tvix_castore_v1_castore } from "./gen/tvix/castore/v1/castore_pb.js";
import {
  BlobService,
  file_tvix_castore_v1_rpc_blobstore,
} from "./gen/tvix/castore/v1/rpc_blobstore_pb.js";
import {
  DirectoryService,
  file_tvix_castore_v1_rpc_directory,
} from "./gen/tvix/castore/v1/rpc_directory_pb.js";
import { file_tvix_store_v1_pathinfo } from "./gen/tvix/store/v1/pathinfo_pb.js";
import {
  file_tvix_store_v1_rpc_pathinfo,
  PathInfoService,
} from "./gen/tvix/store/v1/rpc_pathinfo_pb.js";

/** Which package name a store service is addressed by. */
export type ProtoPackage = "snix" | "tvix";

export const PROTO_PACKAGES: readonly ProtoPackage[] = ["snix", "tvix"];

/** The three store services of one package. */
export interface StoreServices {
  readonly blob: typeof BlobService;
  readonly directory: typeof DirectoryService;
  readonly pathInfo: typeof PathInfoService;
  /** The file descriptors (with dependencies) defining them, for reflection. */
  readonly files: readonly DescFile[];
}

/** The generated store files, dependencies first. */
const TVIX_FILES: readonly DescFile[] = [
  file_tvix_castore_v1_castore,
  file_tvix_castore_v1_rpc_blobstore,
  file_tvix_castore_v1_rpc_directory,
  file_tvix_store_v1_pathinfo,
  file_tvix_store_v1_rpc_pathinfo,
];

/** A package rename: `from` and `to` are dotted package names (or prefixes of them). */
interface Rename {
  readonly from: string;
  readonly to: string;
}

function renameTypeName(name: string, r: Rename): string {
  return name.startsWith(`.${r.from}.`) ? `.${r.to}.${name.slice(r.from.length + 2)}` : name;
}

function renamePackage(pkg: string, r: Rename): string {
  return pkg === r.from || pkg.startsWith(`${r.from}.`) ? r.to + pkg.slice(r.from.length) : pkg;
}

function renamePath(path: string, r: Rename): string {
  const from = `${r.from.replaceAll(".", "/")}/`;
  return path.startsWith(from) ? `${r.to.replaceAll(".", "/")}/${path.slice(from.length)}` : path;
}

function renameMessage(m: DescriptorProto, r: Rename): void {
  for (const f of m.field) f.typeName = renameTypeName(f.typeName, r);
  for (const nested of m.nestedType) renameMessage(nested, r);
}

/** A copy of `file` with package `r.from` renamed to `r.to` everywhere it is named. */
function renamedProto(file: DescFile, r: Rename): FileDescriptorProto {
  const p = clone(FileDescriptorProtoSchema, file.proto);
  p.name = renamePath(p.name, r);
  p.package = renamePackage(p.package, r);
  p.dependency = p.dependency.map((d) => renamePath(d, r));
  for (const m of p.messageType) renameMessage(m, r);
  for (const s of p.service) {
    for (const m of s.method) {
      m.inputType = renameTypeName(m.inputType, r);
      m.outputType = renameTypeName(m.outputType, r);
    }
  }
  return p;
}

/** Files (dependencies first) renamed and built into descriptors, in the same order. */
function renamedFiles(files: readonly DescFile[], r: Rename): DescFile[] {
  const protos = files.map((f) => renamedProto(f, r));
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: protos }));
  return protos.map((p) => {
    const f = registry.getFile(p.name);
    if (f === undefined) throw new Error(`renamed proto file ${p.name} is missing`);
    return f;
  });
}

function serviceIn<S>(files: readonly DescFile[], typeName: string, _shape: S): S {
  for (const f of files) {
    for (const s of f.services) if (s.typeName === typeName) return s as unknown as S;
  }
  throw new Error(`service ${typeName} is missing from the derived descriptors`);
}

const SNIX_FILES = renamedFiles(TVIX_FILES, { from: "tvix", to: "snix" });

const SERVICES: Readonly<Record<ProtoPackage, StoreServices>> = {
  tvix: {
    blob: BlobService,
    directory: DirectoryService,
    pathInfo: PathInfoService,
    files: TVIX_FILES,
  },
  snix: {
    blob: serviceIn(SNIX_FILES, "snix.castore.v1.BlobService", BlobService),
    directory: serviceIn(SNIX_FILES, "snix.castore.v1.DirectoryService", DirectoryService),
    pathInfo: serviceIn(SNIX_FILES, "snix.store.v1.PathInfoService", PathInfoService),
    files: SNIX_FILES,
  },
};

/** The store services addressed as `<pkg>.castore.v1.*` / `<pkg>.store.v1.*`. */
export function storeServices(pkg: ProtoPackage): StoreServices {
  return SERVICES[pkg];
}

const REFLECTION_V1ALPHA_FILES = renamedFiles([file_grpc_reflection_v1_reflection], {
  from: "grpc.reflection.v1",
  to: "grpc.reflection.v1alpha",
});

/** `grpc.reflection.v1alpha.ServerReflection`, derived from v1 (identical messages). */
export const ServerReflectionV1Alpha: typeof ServerReflection = serviceIn(
  REFLECTION_V1ALPHA_FILES,
  "grpc.reflection.v1alpha.ServerReflection",
  ServerReflection,
);

/** The files defining `ServerReflectionV1Alpha`. */
export const reflectionV1AlphaFiles: readonly DescFile[] = REFLECTION_V1ALPHA_FILES;
