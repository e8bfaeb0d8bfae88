import { InvalidInputError } from "../errors.js";
import { fromUtf8 } from "./bytes.js";

/** A validated directory entry name: bytes, non-empty, no `/`, no NUL, not `.` or `..`. */
export type PathComponent = Uint8Array & { readonly __brand: "PathComponent" };

/** Nix and Tvix limit a name to 255 bytes (NAME_MAX on Linux). */
export const MAX_NAME_LENGTH = 255;

/** Returns why `name` is not a valid path component, or undefined if it is. */
export function pathComponentProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return "name is empty";
  if (name.length > MAX_NAME_LENGTH) return `name is longer than ${MAX_NAME_LENGTH} bytes`;
  if (name.length === 1 && name[0] === 0x2e) return "name is '.'";
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return "name is '..'";
  for (let i = 0; i < name.length; i++) {
    if (name[i] === 0x2f) return "name contains '/'";
    if (name[i] === 0) return "name contains a NUL byte";
  }
  return undefined;
}

export function pathComponent(name: Uint8Array | string, context = "entry"): PathComponent {
  const bytes = typeof name === "string" ? new TextEncoder().encode(name) : name;
  const problem = pathComponentProblem(bytes);
  if (problem !== undefined) {
    throw new InvalidInputError(`${context} ${showName(bytes)}: ${problem}`);
  }
  return bytes as PathComponent;
}

/** Shows a name for error messages: JSON-quoted UTF-8, or hex-escaped bytes when not UTF-8. */
export function showName(name: Uint8Array): string {
  try {
    return JSON.stringify(fromUtf8(name));
  } catch {
    let s = "";
    for (const b of name)
      s +=
        b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
          ? String.fromCharCode(b)
          : `\\x${b.toString(16).padStart(2, "0")}`;
    return `"${s}"`;
  }
}
