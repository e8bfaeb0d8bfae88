/**
 * Test helpers for the HTTP binary cache: a raw HTTP/1.1 client (node:http,
 * so that `Expect: 100-continue`, Range and HEAD are fully under control),
 * an in-process server on memory stores, and a spawned `strata serve`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { TestContext } from "node:test";
import { MemoryBlobService } from "../../src/castore/blob/memory.js";
import { MemoryDirectoryService } from "../../src/castore/directory/memory.js";
import { parseListenAddress } from "../../src/server/grpc/listen.js";
import { UploadCredentials } from "../../src/server/http/auth.js";
import {
  HttpCacheServer,
  type HttpCacheServerOptions,
  listenerUrl,
} from "../../src/server/http/server.js";
import { MemoryPathInfoService } from "../../src/store/pathinfo/memory.js";
import { STRATA_BIN } from "./cli.js";
import { requireOrSkip } from "./require.js";

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Whether the server sent `100 Continue` before its answer. */
  continued: boolean;
}

export interface RequestInit {
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Send `Expect: 100-continue` and the body only after `100 Continue`. */
  expectContinue?: boolean;
}

/** One request on a fresh connection. */
export function http(method: string, url: string, init: RequestInit = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const body = init.body === undefined ? undefined : Buffer.from(init.body);
    const headers: Record<string, string | number> = { ...init.headers };
    if (body !== undefined) headers["Content-Length"] = body.length;
    if (init.expectContinue) headers.Expect = "100-continue";
    let continued = false;
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (b: Buffer) => parts.push(b));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(parts),
          continued,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (init.expectContinue && body !== undefined) {
      req.on("continue", () => {
        continued = true;
        req.end(body);
      });
    } else {
      req.end(body);
    }
  });
}

export const CREDENTIALS = "alice:s3cret";
export const AUTH = { Authorization: `Basic ${Buffer.from(CREDENTIALS).toString("base64")}` };

export interface TestServer {
  url: string;
  server: HttpCacheServer;
  stores: {
    blobs: MemoryBlobService;
    directories: MemoryDirectoryService;
    pathInfos: MemoryPathInfoService;
  };
}

/** An in-process cache on fresh memory stores (uploads allowed for alice:s3cret unless `readOnly`), closed after the test. */
export async function startTestServer(
  t: TestContext,
  options: Partial<HttpCacheServerOptions> & { readOnly?: boolean } = {},
): Promise<TestServer> {
  const stores = (options.stores as TestServer["stores"] | undefined) ?? {
    blobs: new MemoryBlobService(),
    directories: new MemoryDirectoryService(),
    pathInfos: new MemoryPathInfoService(),
  };
  const { readOnly, ...rest } = options;
  const server = new HttpCacheServer({
    ...(readOnly ? {} : { uploadCredentials: UploadCredentials.parse(CREDENTIALS, "test") }),
    ...rest,
    stores,
  });
  const bound = await server.listen(parseListenAddress("127.0.0.1:0"));
  t.after(() => server.close(1000));
  return { url: listenerUrl(bound), server, stores };
}

/** Whether a command-line tool is installed; skips the test (fails in CI) when it is not. */
export function requireTool(t: TestContext, cmd: string, pkg: string): boolean {
  const available = spawnSync(cmd, ["--version"], { stdio: "ignore" }).status === 0;
  const msg = `SKIPPED: '${cmd}' not installed (apt-get install -y ${pkg}; CI installs it)`;
  return requireOrSkip(t, available, msg, "STRATA_REQUIRE_NIX");
}

export interface ServeProcess {
  url: string;
  /** Everything the server printed on stdout before it was ready. */
  banner: string;
  child: ChildProcess;
  /** SIGTERM, then the exit code (a graceful shutdown exits 0). */
  stop(): Promise<number | null>;
  stderr(): string;
}

/** Spawns `strata serve ARGS` on a free port and waits for its banner. */
export function spawnServe(
  t: TestContext,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<ServeProcess> {
  const child = spawn(
    process.execPath,
    [
      STRATA_BIN,
      "serve",
      "--listen-address",
      "127.0.0.1:0",
      "--grpc-listen-address",
      "none",
      ...args,
    ],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stderr!.on("data", (b: Buffer) => {
    err += b.toString("utf8");
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    return exited;
  };
  t.after(() => stop());
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString("utf8");
      const m = /^binary cache: (\S+)$/m.exec(out);
      // The banner is written in one piece, ending with a newline.
      if (m !== null && out.endsWith("\n")) {
        resolve({ url: m[1]!, banner: out, child, stop, stderr: () => err });
      }
    });
    void exited.then((code) =>
      reject(new Error(`strata serve exited with ${code} before listening:\n${err}`)),
    );
  });
}
