/**
 * Convenience entry points for code that opens one service from a URL (the
 * CLI's `--blob-service-addr` and friends), and the defaults of
 * ARCHITECTURE §7.
 */
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BlobService } from "../castore/blob/service.js";
import type { DirectoryService } from "../castore/directory/service.js";
import type { PathInfoService } from "../store/pathinfo/service.js";
import { defaultRegistry } from "./default-registry.js";
import type { Registry } from "./registry.js";

/** Opens a blob service from a URL with the given registry (default: the built-in types). */
export function openBlobService(url: string, registry?: Registry): Promise<BlobService> {
  return (registry ?? defaultRegistry()).build("blob", url);
}

/** Opens a directory service from a URL. */
export function openDirectoryService(url: string, registry?: Registry): Promise<DirectoryService> {
  return (registry ?? defaultRegistry()).build("directory", url);
}

/** Opens a path info service from a URL. */
export function openPathInfoService(url: string, registry?: Registry): Promise<PathInfoService> {
  return (registry ?? defaultRegistry()).build("pathinfo", url);
}

/** One URL per service kind. */
export interface ServiceUrls {
  readonly blob: string;
  readonly directory: string;
  readonly pathinfo: string;
}

/** The environment variables that override each default URL. */
export const SERVICE_ADDR_ENV = {
  blob: "BLOB_SERVICE_ADDR",
  directory: "DIRECTORY_SERVICE_ADDR",
  pathinfo: "PATH_INFO_SERVICE_ADDR",
} as const satisfies Record<keyof ServiceUrls, string>;

/** `$XDG_DATA_HOME/strata` (`~/.local/share/strata` when XDG_DATA_HOME is unset, empty or relative). */
export function strataDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  const home = env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir();
  const dataHome =
    xdg !== undefined && xdg !== "" && isAbsolute(xdg) ? xdg : join(home, ".local", "share");
  return join(dataHome, "strata");
}

/**
 * The service URLs a user gets without flags or config (ARCHITECTURE §7):
 * `$BLOB_SERVICE_ADDR` etc. when set (and non-empty), else stores under
 * `$XDG_DATA_HOME/strata` (`~/.local/share/strata` when XDG_DATA_HOME is
 * unset, empty, or relative — the XDG spec says to ignore relative values).
 * Command-line flags, which win over these, are the CLI's business.
 */
export function defaultServiceUrls(env: NodeJS.ProcessEnv = process.env): ServiceUrls {
  const base = strataDataDir(env);
  const pick = (kind: keyof ServiceUrls, fallback: string): string => {
    const v = env[SERVICE_ADDR_ENV[kind]];
    return v !== undefined && v !== "" ? v : fallback;
  };
  return {
    blob: pick("blob", `objectstore+file://${urlPath(join(base, "blobs"))}`),
    directory: pick("directory", `lmdb://${urlPath(join(base, "directories"))}`),
    pathinfo: pick("pathinfo", `lmdb://${urlPath(join(base, "pathinfo"))}`),
  };
}

/**
 * An absolute filesystem path percent-encoded for the path part of a URL,
 * so `lmdb://${urlPath(p)}` is right even when `p` holds ' ', '#', '?' or '%'.
 */
export function urlPath(path: string): string {
  return pathToFileURL(path).pathname;
}
