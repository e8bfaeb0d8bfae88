import { Command, CommanderError } from "commander";
import { formatErrorChain } from "../errors.js";
import { catCommand, exportCommand, lsCommand } from "./commands/browse.js";
import { configCommand } from "./commands/config.js";
import { copyCommand } from "./commands/copy.js";
import { daemonCommand } from "./commands/daemon.js";
import { importCommand } from "./commands/import.js";
import { narCommand } from "./commands/nar.js";
import { pathInfoCommand } from "./commands/path-info.js";
import { serveCommand } from "./commands/serve.js";
import { storePathCommand } from "./commands/store-path.js";

export function buildProgram(): Command {
  const program = new Command("strata")
    .description(
      "strata: a content-addressed Nix store (castore blobs + directories, Nix path infos, NAR, narinfo)",
    )
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(importCommand());
  program.addCommand(narCommand());
  program.addCommand(pathInfoCommand());
  program.addCommand(lsCommand());
  program.addCommand(catCommand());
  program.addCommand(exportCommand());
  program.addCommand(copyCommand());
  program.addCommand(storePathCommand());
  program.addCommand(daemonCommand());
  program.addCommand(configCommand());
  program.addCommand(serveCommand());
  // Subcommands inherit the exit override so that their usage errors are handled here too.
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  return program;
}

/** Runs the CLI; resolves to the process exit code. Errors print as one readable chain. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed the message (or the help / version).
      return err.exitCode;
    }
    if ((err as NodeJS.ErrnoException).code === "EPIPE") return 0;
    process.stderr.write(`${formatErrorChain(err)}\n`);
    return 1;
  }
}
