/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, which older
 * clients such as grpcurl < 1.8.8 ask for), so tools can list and call the
 * services without the .proto files. Serves the file descriptors of every
 * service served (both store package names, health, reflection), each with
 * its dependencies.
 */
import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import type {
  ServerReflection,
  ServerReflectionRequest,
  ServerReflectionResponse,
} from "../../proto/gen/grpc/reflection/v1/reflection_pb.js";

type ResponseInit = Omit<
  ServerReflectionResponse,
  "$typeName" | "$unknown" | "originalRequest" | "validHost"
>;

/** The files reflection can describe, by file name and by the symbols they define. */
export class ReflectionIndex {
  readonly #byName = new Map<string, DescFile>();
  readonly #bySymbol = new Map<string, DescFile>();
  readonly #services: string[] = [];

  /** `files`: every file of a served service (their dependencies are found through them). */
  constructor(files: Iterable<DescFile>, services: Iterable<string>) {
    for (const f of files) this.#add(f);
    this.#services = [...services].sort();
  }

  #add(file: DescFile): void {
    const name = file.proto.name;
    if (this.#byName.has(name)) return;
    this.#byName.set(name, file);
    for (const dep of file.dependencies) this.#add(dep);
    const pkg = file.proto.package;
    if (pkg !== "") this.#bySymbol.set(pkg, file);
    for (const s of file.services) {
      this.#bySymbol.set(s.typeName, file);
      for (const m of s.methods) this.#bySymbol.set(`${s.typeName}.${m.name}`, file);
    }
    const messages = [...file.messages];
    while (messages.length > 0) {
      const m = messages.pop()!;
      this.#bySymbol.set(m.typeName, file);
      for (const f of m.fields) this.#bySymbol.set(`${m.typeName}.${f.name}`, file);
      messages.push(...m.nestedMessages);
      for (const e of m.nestedEnums) this.#bySymbol.set(e.typeName, file);
    }
    for (const e of file.enums) this.#bySymbol.set(e.typeName, file);
  }

  get services(): readonly string[] {
    return this.#services;
  }

  /** The file and its transitive dependencies, serialized, the file first. */
  serialized(file: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile): void => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const d of f.dependencies) visit(d);
    };
    visit(file);
    return out;
  }

  answer(req: ServerReflectionRequest): ResponseInit {
    const r = req.messageRequest;
    const notFound = (what: string): ResponseInit => ({
      messageResponse: {
        case: "errorResponse",
        value: {
          $typeName: "grpc.reflection.v1.ErrorResponse",
          errorCode: Code.NotFound,
          errorMessage: what,
        },
      },
    });
    const files = (file: DescFile | undefined, what: string): ResponseInit =>
      file === undefined
        ? notFound(what)
        : {
            messageResponse: {
              case: "fileDescriptorResponse",
              value: {
                $typeName: "grpc.reflection.v1.FileDescriptorResponse",
                fileDescriptorProto: this.serialized(file),
              },
            },
          };
    switch (r.case) {
      case "listServices":
        return {
          messageResponse: {
            case: "listServicesResponse",
            value: {
              $typeName: "grpc.reflection.v1.ListServiceResponse",
              service: this.#services.map((name) => ({
                $typeName: "grpc.reflection.v1.ServiceResponse" as const,
                name,
              })),
            },
          },
        };
      case "fileByFilename":
        return files(this.#byName.get(r.value), `file '${r.value}' not found`);
      case "fileContainingSymbol":
        return files(this.#bySymbol.get(r.value), `symbol '${r.value}' not found`);
      case "fileContainingExtension":
        return notFound(`no extensions of '${r.value.containingType}'`);
      case "allExtensionNumbersOfType":
        return this.#bySymbol.has(r.value)
          ? {
              messageResponse: {
                case: "allExtensionNumbersResponse",
                value: {
                  $typeName: "grpc.reflection.v1.ExtensionNumberResponse",
                  baseTypeName: r.value,
                  extensionNumber: [],
                },
              },
            }
          : notFound(`type '${r.value}' not found`);
      default:
        return {
          messageResponse: {
            case: "errorResponse",
            value: {
              $typeName: "grpc.reflection.v1.ErrorResponse",
              errorCode: Code.InvalidArgument,
              errorMessage: "no request set",
            },
          },
        };
    }
  }
}

export function reflectionHandlers(index: ReflectionIndex): ServiceImpl<typeof ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, ...index.answer(req) };
      }
    },
  };
}
