#!/usr/bin/env node
import { formatErrorChain } from "../errors.js";
import { runCli } from "./program.js";

process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  // The reader went away (e.g. `strata nar pack x | head`): not an error of ours.
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

let settled = false;
runCli(process.argv.slice(2)).then(
  (code) => {
    settled = true;
    process.exitCode = code;
  },
  (err: unknown) => {
    settled = true;
    process.stderr.write(`${formatErrorChain(err)}\n`);
    process.exitCode = 1;
  },
);

// If the event loop runs dry while the command still waits for something,
// Node would exit 0 with the work half done: make that a visible failure.
process.on("exit", () => {
  if (!settled) {
    process.stderr.write("error: internal: strata exited before the command finished\n");
    process.exitCode = 70;
  }
});
