/**
 * Runs `strata daemon` (the built CLI) as a child process for tests: waits
 * for its `listening on` lines, and stops it with SIGTERM (checking that it
 * exits cleanly).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { STRATA_BIN } from "./cli.js";

export interface RunningDaemon {
  readonly child: ChildProcess;
  /** What each listener printed after `listening on `, in order. */
  readonly listening: string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resident set size now and its peak (VmRSS, VmHWM), in bytes. */
  memory(): { rss: number; peak: number };
  /** SIGTERM, then resolves to the exit code (rejects after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface DaemonOptions {
  /** Arguments after `daemon` (store flags, listen addresses). */
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Listeners to wait for (default 1). */
  readonly listeners?: number;
}

/** Memory-only stores, for daemons whose content does not matter after the test. */
export const MEMORY_STORES = [
  "--blob-service-addr",
  "memory://",
  "--directory-service-addr",
  "memory://",
  "--path-info-service-addr",
  "memory://",
] as const;

export function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const child = spawn(process.execPath, [STRATA_BIN, "daemon", ...options.args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...options.env },
  });
  const want = options.listeners ?? 1;
  let err = "";
  const listening: string[] = [];
  let exited: Promise<number | null> | undefined;
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const daemon: RunningDaemon = {
    child,
    listening,
    stderr: () => err,
    memory() {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const kb = (key: string): number =>
        Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
      return { rss: kb("VmRSS"), peak: kb("VmHWM") };
    },
    stop(timeoutMs = 10_000) {
      exited ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        const timer = new Promise<never>((_, reject) => {
          setTimeout(() => reject(new Error(`daemon did not exit:\n${err}`)), timeoutMs).unref();
        });
        return Promise.race([exit, timer]);
      })();
      return exited;
    },
  };
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      err += chunk;
      listening.length = 0;
      for (const m of err.matchAll(/listening on (\S+)\n/g)) listening.push(m[1]!);
      if (listening.length >= want) resolve(daemon);
    });
    child.once("exit", (code) =>
      reject(new Error(`daemon exited (${code}) before listening:\n${err}`)),
    );
    child.once("error", reject);
  });
}
