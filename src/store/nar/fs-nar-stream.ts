/**
 * The NAR of a path on disk as a byte stream, serialised by a worker thread
 * (`fs-nar-worker.ts`) so that reading files overlaps with what the caller
 * does with the bytes (hashing, writing). Node-only.
 *
 * Chunks are views into a shared ring: each stays valid only until the
 * next one is asked for (the `transient` contract of NarWriteOptions);
 * `{ transient: false }` hands out copies instead.
 */
import { lstatSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { IntegrityError, InvalidInputError, throwIfAborted } from "../../errors.js";
import {
  createRing,
  RING_CANCELLED,
  type RingMessage,
  type RingWorkerData,
  SLOT_FREE,
} from "./fs-nar-ring.js";
import { fsNarSource } from "./fs-source.js";
import { writeNar } from "./writer.js";

export interface FsNarStreamOptions {
  signal?: AbortSignal;
  /** Chunks stay valid only until the next is asked for (default true). */
  transient?: boolean;
}

/** Below this, a lone file or symlink is serialised in-process: starting a thread costs more. */
const IN_PROCESS_MAX = 4 << 20;
const RING = { slots: 4, slotSize: 256 << 10 };

/** The NAR of `path` (what `nix-store --dump PATH` writes). */
export function fsNarStream(
  path: string,
  options: FsNarStreamOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const transient = options.transient ?? true;
  const st = lstatSync(path);
  if (!st.isDirectory() && st.size < IN_PROCESS_MAX) {
    return writeNar(fsNarSource(path, { reuseBuffer: transient }), {
      transient,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }
  return fromWorker(path, transient, options.signal);
}

async function* fromWorker(
  path: string,
  transient: boolean,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array, void, undefined> {
  throwIfAborted(signal);
  const ring = createRing(RING);
  const data: RingWorkerData = { path: Buffer.from(path), ring, readChunk: 1 << 20 };
  const worker = new Worker(new URL("./fs-nar-worker.js", import.meta.url), { workerData: data });
  const state = new Int32Array(ring.state);
  const inbox: RingMessage[] = [];
  let failure: unknown;
  let exited = false;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    wake?.();
    wake = undefined;
  };
  worker.on("message", (m: RingMessage) => {
    inbox.push(m);
    poke();
  });
  worker.on("error", (err) => {
    failure ??= err;
    poke();
  });
  worker.on("exit", () => {
    exited = true;
    poke();
  });
  signal?.addEventListener("abort", poke);
  let held = -1;
  try {
    while (true) {
      if (held >= 0) {
        Atomics.store(state, held, SLOT_FREE);
        Atomics.notify(state, held);
        held = -1;
      }
      while (inbox.length === 0 && failure === undefined && !exited && !signal?.aborted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      throwIfAborted(signal);
      const m = inbox.shift();
      if (m === undefined) {
        throw (
          failure ?? new Error(`internal: the NAR worker for '${path}' stopped without finishing`)
        );
      }
      if (m.kind === "done") return;
      if (m.kind === "error") throw rebuildError(m);
      held = m.slot;
      const view = new Uint8Array(ring.data, m.slot * ring.slotSize, m.used);
      yield transient ? view : view.slice();
    }
  } finally {
    signal?.removeEventListener("abort", poke);
    // Wakes a worker blocked on a full ring so it sees the cancel word and stops.
    Atomics.store(state, ring.slots, RING_CANCELLED);
    for (let i = 0; i < ring.slots; i++) Atomics.notify(state, i);
    await worker.terminate();
  }
}

/** The worker's error, as the same class and message the in-process source throws. */
function rebuildError(m: Extract<RingMessage, { kind: "error" }>): Error {
  if (m.name === "InvalidInputError") return new InvalidInputError(m.message);
  if (m.name === "IntegrityError") return new IntegrityError(m.message);
  const err: NodeJS.ErrnoException = new Error(m.message);
  if (m.code !== undefined) err.code = m.code;
  return err;
}
