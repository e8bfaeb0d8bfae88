/**
 * Who may upload: HTTP basic auth against a credentials file of
 * `user:password` lines (what Nix sends from its `netrc-file`). Blank lines
 * and lines starting with `#` are ignored; the password is everything after
 * the first `:`. Credentials are compared as SHA-256 digests in constant
 * time, so neither their length nor their content leaks through timing.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../../errors.js";

export class UploadCredentials {
  readonly #digests: readonly Buffer[];

  private constructor(digests: readonly Buffer[]) {
    this.#digests = digests;
  }

  /** Parses the text of a credentials file (`where` names it in errors). */
  static parse(text: string, where: string): UploadCredentials {
    const digests: Buffer[] = [];
    for (const [i, raw] of text.split("\n").entries()) {
      const line = raw.replace(/\r$/, "");
      if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
      const colon = line.indexOf(":");
      if (colon <= 0 || colon === line.length - 1) {
        throw new ConfigError(`${where} line ${i + 1}: expected 'user:password' (both non-empty)`);
      }
      digests.push(sha256(line));
    }
    if (digests.length === 0) {
      throw new ConfigError(`${where}: no 'user:password' lines (nobody could upload)`);
    }
    return new UploadCredentials(digests);
  }

  static fromFile(path: string): UploadCredentials {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (cause) {
      throw new ConfigError(`cannot read the upload credentials file '${path}'`, { cause });
    }
    return UploadCredentials.parse(text, path);
  }

  /**
   * Checks an `Authorization` header: "ok", "missing" (no basic credentials
   * sent) or "invalid" (wrong user or password).
   */
  check(header: string | undefined): "ok" | "missing" | "invalid" {
    if (header === undefined) return "missing";
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (m === null) return "missing";
    const given = sha256(Buffer.from(m[1]!, "base64").toString("utf8"));
    let ok = false;
    for (const d of this.#digests) ok = timingSafeEqual(d, given) || ok;
    return ok ? "ok" : "invalid";
  }
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
