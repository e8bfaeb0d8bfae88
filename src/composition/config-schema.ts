/**
 * The JSON Schema (draft 2020-12) of a composition config file, generated
 * from a registry: one definition per registered (kind, type) from the
 * type's zod schema, plus the common options every instance accepts. Editors
 * use it to complete and check configs (`strata config schema > schema.json`;
 * JSON configs can point at it with `"$schema"`, TOML editors through their
 * schema settings). Refinements zod cannot express in JSON Schema (absolute
 * paths, URL parts) are left to `strata config check`.
 */
import { z } from "zod";
import { commonOptionsSchema } from "./common-options.js";
import { configFileSchema } from "./config.js";
import { CONFIG_SECTION, type Registry, SERVICE_KINDS, type ServiceKind } from "./registry.js";

type JsonSchema = Record<string, unknown>;

function toJson(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
  delete out.$schema;
  return out;
}

/** The JSON Schema of a config file for the types `registry` knows. */
export function configJsonSchema(registry: Registry): JsonSchema {
  const common = (toJson(commonOptionsSchema).properties ?? {}) as JsonSchema;
  const defs: Record<string, JsonSchema> = {};
  const entry = (kind: ServiceKind): JsonSchema => {
    const refs = registry.tags(kind).map((tag) => {
      const type = registry.lookup(kind, tag)!;
      const def = toJson(type.schema);
      if (def.type === "object" && typeof def.properties === "object") {
        def.properties = { ...(def.properties as JsonSchema), ...common };
      }
      def.description ??= type.description;
      const id = `${kind}.${tag}`;
      defs[id] = def;
      return { $ref: `#/$defs/${id}` };
    });
    return {
      anyOf: [
        {
          type: "string",
          pattern: "://",
          description: "A URL: the entry is the config this URL parses to.",
        },
        ...refs,
      ],
    };
  };
  const root = toJson(configFileSchema);
  const properties = { ...((root.properties ?? {}) as Record<string, JsonSchema>) };
  for (const kind of SERVICE_KINDS) {
    properties[CONFIG_SECTION[kind]] = {
      type: "object",
      description: `Named ${kind} service instances; 'root' is the entry point.`,
      propertyNames: { pattern: "^[A-Za-z0-9_][A-Za-z0-9_-]*$" },
      additionalProperties: entry(kind),
    };
  }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "strata composition config",
    ...root,
    properties,
    $defs: defs,
  };
}
