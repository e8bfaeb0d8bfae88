#!/usr/bin/env node
import { formatErrorChain } from "../errors.js";
import { runCli } from "./program.js";

process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  // The reader went away (e.g. `strata nar pack x | head`): not an error of ours.
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${formatErrorChain(err)}\n`);
    process.exitCode = 1;
  },
);
