/**
 * Reading composition config files from disk: TOML (`.toml`) or JSON
 * (`.json`); any other name is read as JSON when it starts with `{`, else as
 * TOML. Every failure is a ConfigError that starts with
 * `config file '<path>':` and says what is wrong (with line and column for
 * syntax errors).
 */
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseToml } from "smol-toml";
import { ConfigError } from "../errors.js";
import { Composition, type CompositionInit } from "./composition.js";
import { CompositionConfig, type CompositionConfigInit } from "./config.js";

/** Parses config text; `format` default: guessed from the first character. */
export function parseConfigText(text: string, format?: "toml" | "json"): unknown {
  const kind = format ?? (text.trimStart().startsWith("{") ? "json" : "toml");
  if (kind === "json") {
    try {
      return JSON.parse(text) as unknown;
    } catch (cause) {
      throw new ConfigError(`not valid JSON: ${(cause as Error).message}`, { cause });
    }
  }
  try {
    return parseToml(text);
  } catch (cause) {
    // smol-toml's message names the line and column and quotes the line.
    throw new ConfigError(`not valid TOML: ${(cause as Error).message}`, { cause });
  }
}

/** The format a file name implies, if any. */
function formatOf(path: string): "toml" | "json" | undefined {
  const ext = extname(path).toLowerCase();
  return ext === ".toml" ? "toml" : ext === ".json" ? "json" : undefined;
}

/** Reads and parses a config file (not yet validated). */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new ConfigError(`config file '${path}': cannot be read`, { cause });
  }
  try {
    return parseConfigText(text, formatOf(path));
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`config file '${path}': ${err.message}`);
    throw err;
  }
}

/** Reads and validates a config file. */
export async function loadConfigFile(
  path: string,
  init: CompositionConfigInit,
): Promise<CompositionConfig> {
  const raw = await readConfigFile(path);
  try {
    return CompositionConfig.parse(raw, init);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`config file '${path}': ${err.message}`);
    throw err;
  }
}

/** Reads and validates a config file and returns its (lazy) composition. */
export async function openConfigFile(
  path: string,
  init: CompositionConfigInit & CompositionInit,
): Promise<Composition> {
  return new Composition(await loadConfigFile(path, init), init);
}
