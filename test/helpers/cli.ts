/** Runs the built `strata` executable (dist/src/cli/main.js) as a child process. */
import { spawn } from "node:child_process";
import { join } from "node:path";

export const STRATA_BIN = join(
  import.meta.dirname ?? new URL(".", import.meta.url).pathname,
  "../../src/cli/main.js",
);

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs strata with `args`, stdin `input`, and `env` added to this process's environment. */
export function runStrata(
  args: readonly string[],
  input?: Uint8Array | string,
  env?: NodeJS.ProcessEnv,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STRATA_BIN, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
    child.stdin.on("error", () => {
      // the child may exit before reading all input (e.g. a rejected NAR)
    });
    child.stdin.end(input);
  });
}

/**
 * An environment whose default stores ($XDG_DATA_HOME/strata/...) live
 * under `dir`/xdg, with any store addresses from the outer environment
 * cleared: each test gets a fresh, private default store.
 */
export function defaultStoreEnv(dir: string): NodeJS.ProcessEnv {
  return {
    XDG_DATA_HOME: join(dir, "xdg"),
    BLOB_SERVICE_ADDR: "",
    DIRECTORY_SERVICE_ADDR: "",
    PATH_INFO_SERVICE_ADDR: "",
  };
}
