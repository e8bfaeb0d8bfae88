/**
 * The crash half of the durability tests: a child process writes and
 * reports what it wrote, one line per acknowledged write, and is killed with
 * SIGKILL part-way. (A process kill keeps the page cache: this tests atomic
 * visibility and the reporting order, not power loss.)
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";

export interface KillAfter {
  /** Whether the child is far enough along, judged by its output so far. */
  readonly ready: (stdout: string) => boolean;
  /** How long it keeps running after it was ready, in ms. */
  readonly runMs: number;
}

/** Longest wait for the child to become ready. */
const READY_TIMEOUT_MS = 30_000;

/**
 * Runs `node script ...args` until `when.runMs` after `when.ready` held,
 * SIGKILLs it, and returns the complete lines of its output (the kill may
 * cut the last one, which was never acknowledged then). Fails if the child
 * ends on its own or is not ready in time.
 */
export async function runAndKill(
  script: string,
  args: readonly string[],
  when: KillAfter,
): Promise<string[]> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    err += s;
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.on("exit", (code, signal) => resolve(signal ?? code)),
  );
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (child.exitCode !== null || child.signalCode !== null) {
        clearInterval(timer);
        reject(new Error(`child exited before it was ready (${child.exitCode}): ${err}`));
      } else if (when.ready(out)) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() - started > READY_TIMEOUT_MS) {
        clearInterval(timer);
        reject(new Error(`child was not ready within ${READY_TIMEOUT_MS} ms: ${err}`));
      }
    }, 5);
  });
  await new Promise((resolve) => setTimeout(resolve, when.runMs));
  child.kill("SIGKILL");
  assert.equal(await exited, "SIGKILL", `child ended on its own: ${err}`);
  return out.split("\n").slice(0, -1);
}
