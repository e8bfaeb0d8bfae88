/**
 * `memory://` — in-process, non-persistent services, for all three kinds.
 *
 * URL: `memory://` (or `memory:`, the form the Snix docs use; both parse to
 * the same thing). No host, path, query or fragment — `memory://foo` and
 * `memory:///` are rejected as in Snix.
 * Config: `{ type = "memory" }` (Snix: the same).
 */
import { z } from "zod";
import { defineServiceType, type ServiceKind, type ServiceType } from "../registry.js";
import { rejectAllParts } from "./url-parts.js";

const memoryConfigSchema = z
  .strictObject({ type: z.literal("memory") })
  .describe("In-process store; contents are lost when the process exits.");

export type MemoryConfig = z.infer<typeof memoryConfigSchema>;

const FORM = "memory://";

function memoryFromUrl(url: URL): MemoryConfig {
  rejectAllParts(url, FORM);
  return { type: "memory" };
}

function memoryType<K extends ServiceKind>(
  kind: K,
  build: ServiceType<K, MemoryConfig>["build"],
): ServiceType<K, MemoryConfig> {
  return defineServiceType({
    kind,
    tag: "memory",
    description: "In-process store; contents are lost when the process exits.",
    urlForms: [FORM],
    schema: memoryConfigSchema,
    fromUrl: memoryFromUrl,
    build,
  });
}

export const memoryBlobType: ServiceType<"blob", MemoryConfig> = memoryType("blob", async () => {
  const { MemoryBlobService } = await import("../../castore/blob/memory.js");
  return new MemoryBlobService();
});

export const memoryDirectoryType: ServiceType<"directory", MemoryConfig> = memoryType(
  "directory",
  async () => {
    const { MemoryDirectoryService } = await import("../../castore/directory/memory.js");
    return new MemoryDirectoryService();
  },
);

export const memoryPathInfoType: ServiceType<"pathinfo", MemoryConfig> = memoryType(
  "pathinfo",
  async () => {
    const { MemoryPathInfoService } = await import("../../store/pathinfo/memory.js");
    return new MemoryPathInfoService();
  },
);
