/**
 * The URL space of a Nix binary cache, as Nix 2.8 uses it:
 *
 *   /nix-cache-info                 cache parameters (GET; PUT accepted, changes nothing)
 *   /<hash>.narinfo                 path metadata by the 32-character hash part (GET, HEAD, PUT)
 *   /<hash>.ls                      the NAR's listing (GET, HEAD; PUT accepted and dropped)
 *   /nar/<id>.nar[.xz|.zst|.bz2|.br]  NARs (GET, HEAD, PUT); <id> is the nix32 SHA-256
 *                                   of the NAR (what our narinfos say) or, for uploads,
 *                                   of the file as uploaded (what Nix names them by)
 *   /log/<drv basename>             build logs (GET, HEAD, PUT)
 */
import { CODEC_BY_SUFFIX, type Codec } from "./compression.js";

export type Route =
  | { readonly kind: "root" }
  | { readonly kind: "cache-info" }
  | { readonly kind: "narinfo"; readonly hash: string }
  | { readonly kind: "listing"; readonly hash: string }
  | {
      readonly kind: "nar";
      /** The path without the leading `/` (`nar/<id>.nar.xz`), the upload registry's key. */
      readonly file: string;
      readonly id: string;
      /** Compression named by the suffix; undefined for a plain `.nar`. */
      readonly codec: Codec | undefined;
    }
  | { readonly kind: "log"; readonly drv: string }
  | { readonly kind: "unknown"; readonly path: string };

const HASH_PART = /^[0-9abcdfghijklmnpqrsvwxyz]{32}$/;
const NAR_FILE = /^([A-Za-z0-9_-]{1,128})\.nar(\.[a-z0-9]{1,8})?$/;
const STORE_BASENAME = /^[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]{1,211}$/;

/** Routes a request path (`req.url`: path and optional query). */
export function route(url: string): Route {
  const q = url.indexOf("?");
  const raw = q < 0 ? url : url.slice(0, q);
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return { kind: "unknown", path: raw };
  }
  if (path === "/") return { kind: "root" };
  if (path === "/nix-cache-info") return { kind: "cache-info" };
  if (path.startsWith("/nar/")) {
    const m = NAR_FILE.exec(path.slice(5));
    if (m !== null) {
      const suffix = m[2];
      if (suffix === undefined)
        return { kind: "nar", file: path.slice(1), id: m[1]!, codec: undefined };
      const codec = CODEC_BY_SUFFIX[suffix];
      if (codec !== undefined) return { kind: "nar", file: path.slice(1), id: m[1]!, codec };
    }
    return { kind: "unknown", path };
  }
  if (path.startsWith("/log/")) {
    const drv = path.slice(5);
    if (STORE_BASENAME.test(drv)) return { kind: "log", drv };
    return { kind: "unknown", path };
  }
  const dot = path.lastIndexOf(".");
  if (dot === 33 && path.charAt(0) === "/") {
    const hash = path.slice(1, dot);
    if (HASH_PART.test(hash)) {
      const ext = path.slice(dot);
      if (ext === ".narinfo") return { kind: "narinfo", hash };
      if (ext === ".ls") return { kind: "listing", hash };
    }
  }
  return { kind: "unknown", path };
}
