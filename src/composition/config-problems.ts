/**
 * How a rejected config is described: schema issues as `path: message`
 * parts (the path as a config file spells it, `blobservices.root.stores[1]`),
 * and a value of the wrong type in a few words. Shared by the registry (one
 * instance's config) and the composition config (the whole file).
 */
import type { z } from "zod";

/**
 * The issues of a failed schema check, one `path: message` part each;
 * `where` is the path of the checked object ("" for the top level).
 */
export function schemaProblems(issues: readonly z.core.$ZodIssue[], where: string): string[] {
  return issues.flatMap((issue) => {
    const path = [where, ...issue.path.map(String)]
      .filter((p) => p !== "")
      .join(".")
      .replace(/\.(\d+)(?=\.|$)/g, "[$1]");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => `${path === "" ? k : `${path}.${k}`}: unknown field`);
    }
    return [path === "" ? issue.message : `${path}: ${issue.message}`];
  });
}

/** Short description of a value of the wrong type, for messages. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "string" ? `the string '${v}'` : `a ${typeof v}`;
}
