import { Command, CommanderError } from "commander";
import { formatErrorChain } from "../errors.js";

/**
 * The subcommands, each loaded only when needed: a command line names one,
 * and loading all of them (protobuf, LMDB, gRPC, zod) would cost ~100 ms of
 * startup that `strata nar pack` or `strata store-path` never use.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  import: async () => (await import("./commands/import.js")).importCommand(),
  nar: async () => (await import("./commands/nar.js")).narCommand(),
  "path-info": async () => (await import("./commands/path-info.js")).pathInfoCommand(),
  ls: async () => (await import("./commands/browse.js")).lsCommand(),
  cat: async () => (await import("./commands/browse.js")).catCommand(),
  export: async () => (await import("./commands/browse.js")).exportCommand(),
  copy: async () => (await import("./commands/copy.js")).copyCommand(),
  "store-path": async () => (await import("./commands/store-path.js")).storePathCommand(),
  daemon: async () => (await import("./commands/daemon.js")).daemonCommand(),
  config: async () => (await import("./commands/config.js")).configCommand(),
  serve: async () => (await import("./commands/serve.js")).serveCommand(),
};

/**
 * The program with the subcommand `argv` starts with, or with all of them
 * otherwise (help, version, a typo: commander then lists them all).
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command("strata")
    .description(
      "strata: a content-addressed Nix store (castore blobs + directories, Nix path infos, NAR, narinfo)",
    )
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride();
  // Only a command in first position narrows the load: with options before
  // it (`strata -h import`), commander prints the full program help.
  const first = argv[0];
  const wanted =
    first !== undefined && Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
  for (const c of await Promise.all(wanted.map((name) => COMMANDS[name]!()))) {
    program.addCommand(c);
  }
  // Subcommands inherit the exit override so that their usage errors are handled here too.
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  return program;
}

/** Runs the CLI; resolves to the process exit code. Errors print as one readable chain. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = await buildProgram(argv);
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
