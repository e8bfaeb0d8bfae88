/**
 * `grpc+unix://`, `grpc+http://`, `grpc+https://` — a store served over gRPC
 * (a `strata daemon`, Snix, Tvix, or any external store provider), for all
 * three kinds.
 *
 * URLs (Snix's forms and rules):
 * - `grpc+unix:///ABSOLUTE/PATH` (also `grpc+unix:/ABSOLUTE/PATH`): a unix
 *   socket; no host.
 * - `grpc+http://HOST[:PORT]` (HTTP/2 cleartext, port 80 by default),
 *   `grpc+https://HOST[:PORT]` (TLS, port 443, system CAs): no path, no
 *   credentials.
 * Query parameters: `wait-connect=1` connects while the service is built and
 * fails if nobody answers (default `0`: connect on first use, as Snix);
 * `package=snix|tvix` (strata's addition) picks the protobuf package the
 * services are addressed by — `snix` by default, `tvix` for Tvix servers
 * (strata's own daemon answers both).
 * Config, as Snix: `{ type = "grpc", url = "grpc+unix:///run/store.sock" }`.
 */
import { z } from "zod";
import { ConfigError } from "../../errors.js";
import type { ProtoPackage } from "../../proto/packages.js";
import { defineServiceType, redactUrl, type ServiceKind, type ServiceType } from "../registry.js";
import {
  checkQuery,
  localPathFromUrl,
  rejectFragment,
  rejectHost,
  rejectPath,
  schemeVariant,
} from "./url-parts.js";

const FORMS = [
  "grpc+unix:///ABSOLUTE/PATH",
  "grpc+http://HOST[:PORT]",
  "grpc+https://HOST[:PORT]",
] as const;

/** Where to connect and how, parsed from a grpc+ URL. */
export interface GrpcUrl {
  readonly target:
    | { readonly kind: "unix"; readonly path: string }
    | { readonly kind: "tcp"; readonly tls: boolean; readonly host: string; readonly port: number };
  readonly pkg: ProtoPackage;
  readonly waitConnect: boolean;
}

/** Parses and checks a `grpc+...` URL; ConfigErrors name the wrong part. */
export function parseGrpcUrl(url: URL): GrpcUrl {
  const variant = schemeVariant(url);
  if (variant === undefined) {
    throw new ConfigError(`grpc:// needs a transport: ${FORMS.join(", ")}`);
  }
  const form = `grpc+${variant}://`;
  const query = checkQuery(url, form, ["wait-connect", "package"]);
  rejectFragment(url, form);
  const wait = query.get("wait-connect") ?? "0";
  if (wait !== "0" && wait !== "1") {
    throw new ConfigError(`${form}: wait-connect must be 0 or 1, not '${wait}'`);
  }
  const pkg = query.get("package") ?? "snix";
  if (pkg !== "snix" && pkg !== "tvix") {
    throw new ConfigError(`${form}: package must be 'snix' or 'tvix', not '${pkg}'`);
  }
  const common = { pkg: pkg as ProtoPackage, waitConnect: wait === "1" };
  switch (variant) {
    case "unix": {
      rejectHost(url, form, "; a socket is written grpc+unix:///ABSOLUTE/PATH");
      const path = localPathFromUrl(url, form);
      if (path === undefined) throw new ConfigError(`${form} needs a socket path (${FORMS[0]})`);
      return { target: { kind: "unix", path }, ...common };
    }
    case "http":
    case "https": {
      if (url.hostname === "") throw new ConfigError(`${form} needs a host (${form}HOST[:PORT])`);
      if (url.username !== "" || url.password !== "") {
        throw new ConfigError(`${form} takes no credentials`);
      }
      rejectPath(url, form);
      const tls = variant === "https";
      const port = url.port === "" ? (tls ? 443 : 80) : Number(url.port);
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      return { target: { kind: "tcp", tls, host, port }, ...common };
    }
    default:
      throw new ConfigError(`${form} is not supported (${FORMS.join(", ")})`);
  }
}

const grpcConfigSchema = z
  .strictObject({
    type: z.literal("grpc"),
    url: z
      .string()
      .superRefine((value, ctx) => {
        let url: URL;
        try {
          url = new URL(value);
        } catch {
          ctx.addIssue({
            code: "custom",
            message: `'${value}' is not a URL (${FORMS.join(", ")})`,
          });
          return;
        }
        if (!url.protocol.startsWith("grpc")) {
          ctx.addIssue({ code: "custom", message: `expected a grpc+ URL (${FORMS.join(", ")})` });
          return;
        }
        try {
          parseGrpcUrl(url);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message });
        }
      })
      .describe(
        "The server: grpc+unix:///PATH, grpc+http://HOST[:PORT] or grpc+https://HOST[:PORT].",
      ),
  })
  .describe("A store served over gRPC (strata daemon, Snix, Tvix, external providers).");

export type GrpcConfig = z.infer<typeof grpcConfigSchema>;

function grpcFromUrl(url: URL): GrpcConfig {
  parseGrpcUrl(url);
  return { type: "grpc", url: url.href };
}

/** A connection for a config's URL (connected now when it says wait-connect=1). */
async function connectionFor(config: GrpcConfig) {
  const url = new URL(config.url);
  const parsed = parseGrpcUrl(url);
  const { createNodeConnection } = await import("../../castore/grpc/connection-node.js");
  const conn = createNodeConnection({
    target: parsed.target,
    pkg: parsed.pkg,
    display: redactUrl(url),
  });
  if (parsed.waitConnect) {
    try {
      await conn.connect();
    } catch (err) {
      conn.close();
      throw err;
    }
  }
  return conn;
}

function grpcType<K extends ServiceKind>(
  kind: K,
  build: ServiceType<K, GrpcConfig>["build"],
): ServiceType<K, GrpcConfig> {
  return defineServiceType({
    kind,
    tag: "grpc",
    description: "A store served over gRPC (strata daemon, Snix, Tvix, external providers).",
    urlForms: FORMS,
    schema: grpcConfigSchema,
    fromUrl: grpcFromUrl,
    build,
  });
}

export const grpcBlobType: ServiceType<"blob", GrpcConfig> = grpcType(
  "blob",
  async (config, ctx) => {
    const { GrpcBlobService } = await import("../../castore/blob/grpc.js");
    return new GrpcBlobService(await connectionFor(config), { instanceName: ctx.instanceName });
  },
);

export const grpcDirectoryType: ServiceType<"directory", GrpcConfig> = grpcType(
  "directory",
  async (config, ctx) => {
    const { GrpcDirectoryService } = await import("../../castore/directory/grpc.js");
    return new GrpcDirectoryService(await connectionFor(config), {
      instanceName: ctx.instanceName,
    });
  },
);

export const grpcPathInfoType: ServiceType<"pathinfo", GrpcConfig> = grpcType(
  "pathinfo",
  async (config, ctx) => {
    const { GrpcPathInfoService } = await import("../../store/pathinfo/grpc.js");
    return new GrpcPathInfoService(await connectionFor(config), {
      instanceName: ctx.instanceName,
    });
  },
);
