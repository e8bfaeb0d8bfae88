/**
 * `strata daemon` as a process (issue 6, acceptance 3): systemd socket
 * activation with the real `systemd-socket-activate` (unix and TCP
 * sockets), unix sockets (mode 0660, stale socket replaced, live socket and
 * non-socket files refused), TCP, SIGTERM, `--help`.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { utf8 } from "../../src/castore/bytes.js";
import { hashB3 } from "../../src/castore/digest.js";
import { defaultRegistry } from "../../src/composition/default-registry.js";
import { runStrata, STRATA_BIN } from "../helpers/cli.js";
import { MEMORY_STORES, startDaemon } from "../helpers/daemon.js";
import { tempDir } from "../helpers/tmp.js";

const SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate";

function requireSocketActivate(t: TestContext): boolean {
  if (existsSync(SOCKET_ACTIVATE)) return true;
  const msg = "SKIPPED: systemd-socket-activate not installed (apt-get install -y systemd)";
  if (process.env.STRATA_REQUIRE_INTEROP === "1") throw new Error(msg);
  console.warn(`# ${msg}`);
  t.skip(msg);
  return false;
}

/** A TCP port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Puts a blob through a gRPC client URL and checks it is there. */
async function roundTrip(url: string): Promise<void> {
  const blobs = await defaultRegistry().build("blob", url);
  try {
    const data = utf8(`through ${url}`);
    const w = blobs.openWrite();
    await w.write(data);
    const digest = await w.close();
    assert.deepEqual(digest, hashB3(data));
    assert.equal(await blobs.has(digest), true);
  } finally {
    await blobs.close();
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("strata daemon", () => {
  test("--help explains the listen address forms and socket activation", async () => {
    const r = await runStrata(["daemon", "--help"]);
    assert.equal(r.code, 0);
    const help = r.stdout.toString();
    for (const needle of [
      "--listen-address",
      "HOST:PORT",
      "unix:///PATH",
      "0660",
      "LISTEN_FDS",
      "LISTEN_PID",
      "SIGTERM",
      "--blob-service-addr",
    ]) {
      assert.ok(help.includes(needle), `help mentions ${needle}`);
    }
  });

  test("a unix socket: mode 0660, serves, removed on SIGTERM", async (t) => {
    const dir = tempDir(t);
    const path = join(dir, "strata.sock");
    const daemon = await startDaemon({ args: [...MEMORY_STORES, "-l", `unix://${path}`] });
    try {
      assert.deepEqual(daemon.listening, [`unix://${path}`]);
      const st = lstatSync(path);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o660);
      await roundTrip(`grpc+unix://${path}`);
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.stderr());
    }
    assert.equal(existsSync(path), false, "socket file removed");
    assert.match(daemon.stderr(), /shutting down/);
  });

  test("a stale socket is replaced; a live one and a non-socket are refused", async (t) => {
    const dir = tempDir(t);
    const path = join(dir, "strata.sock");
    // A socket file nobody listens on (its process is gone).
    execFileSync("python3", [
      "-c",
      `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`,
    ]);
    assert.ok(lstatSync(path).isSocket());
    const daemon = await startDaemon({ args: [...MEMORY_STORES, "-l", `unix://${path}`] });
    try {
      await roundTrip(`grpc+unix://${path}`);
      const second = await runStrata(["daemon", ...MEMORY_STORES, "-l", `unix://${path}`]);
      assert.notEqual(second.code, 0);
      assert.match(second.stderr, /another process is serving on it/);
      await roundTrip(`grpc+unix://${path}`); // the first daemon is unharmed
    } finally {
      assert.equal(await daemon.stop(), 0);
    }
    const file = join(dir, "not-a-socket");
    writeFileSync(file, "precious");
    const r = await runStrata(["daemon", ...MEMORY_STORES, "-l", `unix://${file}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exists and is not a socket/);
    assert.equal(readFileSync(file, "utf8"), "precious");
  });

  test("TCP on a port picked by the kernel, and several listeners at once", async (t) => {
    const dir = tempDir(t);
    const path = join(dir, "s.sock");
    const daemon = await startDaemon({
      args: [...MEMORY_STORES, "-l", "127.0.0.1:0", "-l", `unix://${path}`],
      listeners: 2,
    });
    try {
      const m = /^127\.0\.0\.1:(\d+)$/.exec(daemon.listening[0]!);
      assert.ok(m, daemon.listening[0]);
      await roundTrip(`grpc+http://127.0.0.1:${m[1]}`);
      await roundTrip(`grpc+unix://${path}`);
    } finally {
      assert.equal(await daemon.stop(), 0);
    }
  });

  test("bad listen addresses are rejected before anything is opened", async () => {
    for (const [addr, message] of [
      ["8000", /expected HOST:PORT/],
      ["localhost:99999", /out of range/],
      ["unix://host/x.sock", /unix:\/\/\/ABSOLUTE\/PATH/],
    ] as const) {
      const r = await runStrata(["daemon", ...MEMORY_STORES, "-l", addr]);
      assert.notEqual(r.code, 0, addr);
      assert.match(r.stderr, message, addr);
    }
  });

  for (const kind of ["unix", "tcp"] as const) {
    test(`socket activation (systemd-socket-activate, ${kind} socket)`, async (t) => {
      if (!requireSocketActivate(t)) return;
      const dir = tempDir(t);
      const listen =
        kind === "unix" ? join(dir, "activated.sock") : `127.0.0.1:${await freePort()}`;
      const url = kind === "unix" ? `grpc+unix://${listen}` : `grpc+http://${listen}`;
      const child = spawn(
        SOCKET_ACTIVATE,
        [
          "-l",
          listen,
          "--fdname=strata-grpc",
          process.execPath,
          STRATA_BIN,
          "daemon",
          ...MEMORY_STORES,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let stderr = "";
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (d: string) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((resolve) =>
        child.once("exit", (code) => resolve(code)),
      );
      try {
        await waitFor("systemd-socket-activate to listen", () => /Listening on/.test(stderr));
        // The first connection starts the daemon, which takes over the socket.
        await roundTrip(url);
        await waitFor("the daemon", () =>
          /listening on fd 3 \(strata-grpc\) from systemd/.test(stderr),
        );
        assert.doesNotMatch(
          stderr,
          /listening on \[::1\]:8000/,
          "no default listener when activated",
        );
        await roundTrip(url); // and keeps serving
      } finally {
        child.kill("SIGTERM");
        assert.equal(await exited, 0, stderr);
      }
    });
  }

  test("LISTEN_PID of another process: the sockets are not ours", () => {
    // A unit test of the environment handling, without a real activation.
    const r = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { systemdListenAddresses } from ${JSON.stringify(new URL("../../src/server/grpc/listen.js", import.meta.url).href)};
         const env = { LISTEN_PID: "1", LISTEN_FDS: "2", LISTEN_FDNAMES: "a:b" };
         const mine = { LISTEN_PID: String(process.pid), LISTEN_FDS: "2", LISTEN_FDNAMES: "a:b" };
         console.log(JSON.stringify([systemdListenAddresses(env), env, systemdListenAddresses(mine)]));`,
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    const [other, envAfter, mine] = JSON.parse(r.stdout) as [unknown[], object, unknown[]];
    assert.deepEqual(other, []);
    assert.deepEqual(envAfter, {}, "the variables are removed (not passed on to children)");
    assert.deepEqual(mine, [
      { kind: "fd", fd: 3, name: "a" },
      { kind: "fd", fd: 4, name: "b" },
    ]);
  });
});
