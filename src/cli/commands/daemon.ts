/**
 * `strata daemon`: serves the store (the store flags, or a composition
 * config) over gRPC, wire-compatible with Tvix and Snix, until SIGTERM or
 * SIGINT; then shuts down gracefully. Prints one `listening on ADDR` line
 * per listener to stderr once it accepts connections.
 */
import { Command, Option } from "commander";
import { addStoreOptions, openStores, type StoreFlags } from "../store-options.js";

interface DaemonFlags extends StoreFlags {
  listenAddress?: string[];
  shutdownGrace: string;
}

const HELP = `
Listen addresses (--listen-address, repeatable):
  HOST:PORT            TCP, e.g. [::1]:8000 (the default), 127.0.0.1:8000,
                       localhost:8000; [::]:8000 or 0.0.0.0:8000 listen on all
                       interfaces (loopback only unless you ask). Port 0 picks
                       a free port (printed at startup).
  unix:///PATH         a unix socket, created with mode 0660 (owner and group
                       may connect). A stale socket file left by a crashed
                       daemon is replaced; a live one (another daemon serving)
                       or a file that is not a socket is an error.

Socket activation (systemd, or systemd-socket-activate for testing): when
started with LISTEN_PID set to its pid and LISTEN_FDS=N, the daemon serves
on the N sockets passed from file descriptor 3 on (names from
LISTEN_FDNAMES), and on no default address. --listen-address adds more.
The service manager starts store daemons; strata never spawns them. A
minimal unit pair:
  strata.socket:  [Socket]  ListenStream=/run/strata/strata.sock
  strata.service: [Service] ExecStart=strata daemon --blob-service-addr ...
Clients reach it as grpc+unix:///run/strata/strata.sock.

Every listener speaks gRPC over HTTP/2 (services under both the
tvix.castore.v1/tvix.store.v1 and snix.castore.v1/snix.store.v1 package
names, plus grpc.health.v1 and server reflection), and gRPC-Web and Connect
over HTTP/1.1 on the same port (browsers). Messages are limited to 4 MiB.

SIGTERM or SIGINT: stop accepting, let running calls finish for up to
--shutdown-grace seconds, cancel the rest, close the stores. A second
signal exits at once.
`;

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function daemonCommand(): Command {
  return addStoreOptions(
    new Command("daemon")
      .description("serve the store over gRPC (Tvix/Snix protocol) until SIGTERM/SIGINT")
      .addOption(
        new Option(
          "-l, --listen-address <addr>",
          "HOST:PORT or unix:///PATH to listen on; repeatable (default [::1]:8000, or the sockets from systemd)",
        ).argParser(collect),
      )
      .option(
        "--shutdown-grace <seconds>",
        "how long running calls may take to finish after SIGTERM/SIGINT",
        "10",
      )
      .addHelpText("after", HELP),
  ).action(async (opts: DaemonFlags) => {
    await daemon(opts);
  });
}

async function daemon(opts: DaemonFlags): Promise<void> {
  const { ConfigError } = await import("../../errors.js");
  const { DEFAULT_LISTEN_ADDRESS, parseListenAddress, systemdListenAddresses } = await import(
    "../../server/grpc/listen.js"
  );
  const grace = Number(opts.shutdownGrace);
  if (!Number.isFinite(grace) || grace < 0) {
    throw new ConfigError(`--shutdown-grace '${opts.shutdownGrace}' is not a number of seconds`);
  }
  // Flags are checked before anything is opened.
  const addresses = [
    ...systemdListenAddresses(),
    ...(opts.listenAddress ?? []).map(parseListenAddress),
  ];
  if (addresses.length === 0) addresses.push(parseListenAddress(DEFAULT_LISTEN_ADDRESS));

  const { GrpcServer } = await import("../../server/grpc/server.js");
  const stores = await openStores(opts);
  const server = new GrpcServer({ stores });
  let stopping = false;
  let wake: (() => void) | undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`strata daemon: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    wake?.();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  try {
    for (const b of await server.listen(addresses)) {
      process.stderr.write(`strata daemon: listening on ${b.display}\n`);
    }
    if (!stopping) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    process.stderr.write("strata daemon: shutting down\n");
  } finally {
    await server.close(grace * 1000);
    await stores.close();
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
  }
}
