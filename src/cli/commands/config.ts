/**
 * `strata config check FILE` and `strata config schema`: validate a
 * composition config file and print the graph it builds (README "Store
 * composition"), and print the JSON Schema of config files for editors.
 */
import { Command } from "commander";

export function configCommand(): Command {
  const config = new Command("config").description(
    "store composition config files (TOML or JSON): check one, or print their JSON Schema",
  );
  config
    .command("check")
    .description(
      "validate a config file (types, fields, references, cycles) without opening any store, " +
        "and print the graph it describes: one tree per root with instance names and types",
    )
    .argument("<file>", "config file (.toml or .json)")
    .action(async (file: string) => {
      const { defaultRegistry } = await import("../../composition/default-registry.js");
      const { defaultServiceUrls } = await import("../../composition/open.js");
      const { loadConfigFile } = await import("../../composition/config-file.js");
      const { formatGraph } = await import("../../composition/config.js");
      const parsed = await loadConfigFile(file, {
        registry: defaultRegistry(),
        defaults: defaultServiceUrls(),
      });
      process.stdout.write(`${formatGraph(parsed)}\n`);
    });
  config
    .command("schema")
    .description(
      "print the JSON Schema (draft 2020-12) of config files, generated from the registry",
    )
    .action(async () => {
      const { defaultRegistry } = await import("../../composition/default-registry.js");
      const { configJsonSchema } = await import("../../composition/config-schema.js");
      process.stdout.write(`${JSON.stringify(configJsonSchema(defaultRegistry()), null, 2)}\n`);
    });
  return config;
}
