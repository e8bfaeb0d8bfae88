/**
 * Where the daemon listens: `host:port` (TCP), `unix:///path` (a unix
 * socket, mode 0660, a stale socket file replaced safely), or sockets passed
 * by systemd socket activation (`LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`,
 * descriptors from 3). strata never spawns store providers; the service
 * manager does, and hands over the sockets this way.
 */
import { chmodSync, lstatSync, type Stats, unlinkSync } from "node:fs";
import { connect as netConnect, type Server } from "node:net";
import { ConfigError, UnavailableError } from "../../errors.js";

export type ListenAddress =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "fd"; readonly fd: number; readonly name: string };

export const DEFAULT_LISTEN_ADDRESS = "[::1]:8000";

/** The mode of unix sockets the daemon creates: owner and group may connect. */
export const UNIX_SOCKET_MODE = 0o660;

/** Parses `host:port`, `[v6]:port` or `unix:///abs/path` (also `unix:/abs/path`). */
export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith("unix:")) {
    let url: URL;
    try {
      url = new URL(text);
    } catch (cause) {
      throw new ConfigError(`listen address '${text}': not a URL`, { cause });
    }
    if (url.host !== "" || url.search !== "" || url.hash !== "") {
      throw new ConfigError(
        `listen address '${text}': a unix socket is written unix:///ABSOLUTE/PATH (no host, query or fragment)`,
      );
    }
    const path = decodeURIComponent(url.pathname);
    if (!path.startsWith("/") || path === "/" || path.includes("\0")) {
      throw new ConfigError(`listen address '${text}': the socket path must be absolute`);
    }
    return { kind: "unix", path };
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (m === null) {
    throw new ConfigError(
      `listen address '${text}': expected HOST:PORT ([::1]:8000, 127.0.0.1:8000, localhost:8000) or unix:///PATH`,
    );
  }
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`listen address '${text}': port ${port} out of range`);
  return { kind: "tcp", host: m[1] ?? m[2]!, port };
}

/** How an address is shown in logs. */
export function describeListenAddress(a: ListenAddress): string {
  switch (a.kind) {
    case "tcp":
      return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
    case "unix":
      return `unix://${a.path}`;
    case "fd":
      return `fd ${a.fd}${a.name === "" ? "" : ` (${a.name})`} from systemd`;
  }
}

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const SD_LISTEN_FDS_START = 3;

/**
 * The sockets passed by systemd socket activation, as `sd_listen_fds(3)`
 * finds them: only when `LISTEN_PID` is this process. The variables are
 * removed from `env` so that child processes do not take the sockets for
 * theirs.
 */
export function systemdListenAddresses(env: NodeJS.ProcessEnv = process.env): ListenAddress[] {
  const pid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  if (pid === undefined || count === undefined) return [];
  const names = (env.LISTEN_FDNAMES ?? "").split(":");
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== String(process.pid)) return [];
  const n = Number(count);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ConfigError(`LISTEN_FDS='${count}' is not a number of file descriptors`);
  }
  return Array.from({ length: n }, (_, i) => ({
    kind: "fd" as const,
    fd: SD_LISTEN_FDS_START + i,
    name: names[i] ?? "",
  }));
}

/** Whether something accepts connections on the unix socket at `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * Makes room for a unix socket at `path`: a socket file nobody listens on
 * (left by a daemon that crashed) is removed; a live socket, or a file that
 * is not a socket, is an error (never delete what is not ours to delete).
 */
async function clearStaleSocket(path: string): Promise<void> {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new ConfigError(`cannot listen on ${path}: it exists and is not a socket`);
  }
  if (await socketIsLive(path)) {
    throw new UnavailableError(`cannot listen on ${path}: another process is serving on it`);
  }
  unlinkSync(path);
}

/** A listening socket, and how to clean up after it. */
export interface BoundListener {
  readonly address: ListenAddress;
  /** What it actually listens on (with the real port for port 0). */
  readonly display: string;
  /** Removes the socket file, if we created one. */
  cleanup(): void;
}

/** Starts `server` listening on `address`. */
export async function bindListener(server: Server, address: ListenAddress): Promise<BoundListener> {
  const listen = (options: Parameters<Server["listen"]>[0]): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once("error", onError);
      server.listen(options, () => {
        server.off("error", onError);
        resolve();
      });
    });
  switch (address.kind) {
    case "tcp": {
      await listen({ host: address.host, port: address.port });
      const a = server.address();
      const port = typeof a === "object" && a !== null ? a.port : address.port;
      const real = { ...address, port };
      return { address: real, display: describeListenAddress(real), cleanup: () => {} };
    }
    case "fd": {
      await listen({ fd: address.fd });
      return { address, display: describeListenAddress(address), cleanup: () => {} };
    }
    case "unix": {
      await clearStaleSocket(address.path);
      // Created with the right mode from the start (no window in which the
      // socket is reachable with the umask's mode), then set explicitly.
      const previous = process.umask(0o777 & ~UNIX_SOCKET_MODE);
      try {
        await listen({ path: address.path });
      } finally {
        process.umask(previous);
      }
      chmodSync(address.path, UNIX_SOCKET_MODE);
      const ours = lstatSync(address.path);
      return {
        address,
        display: describeListenAddress(address),
        cleanup: () => {
          // Only our own socket: another daemon may have replaced it.
          try {
            const now = lstatSync(address.path);
            if (now.ino === ours.ino && now.dev === ours.dev) unlinkSync(address.path);
          } catch {
            // already gone
          }
        },
      };
    }
  }
}
