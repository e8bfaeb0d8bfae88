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
  type RingShape,
  type RingWorkerData,
  SLOT_FREE,
  type TreeEvent,
} from "./fs-nar-ring.js";
import { fsNarSource } from "./fs-source.js";
import { decodeTreeEvents } from "./tree-events.js";
import { writeNar } from "./writer.js";

export interface FsNarStreamOptions {
  signal?: AbortSignal;
  /** Chunks stay valid only until the next is asked for (default true). */
  transient?: boolean;
}

/** Below this, a lone file or symlink is serialised in-process: starting a thread costs more. */
const IN_PROCESS_MAX = 4 << 20;

/** Whether a root with these stats is cheaper to serialise in-process than in a worker thread. */
export function worthAThread(st: { isDirectory(): boolean; size: number }): boolean {
  return st.isDirectory() || st.size >= IN_PROCESS_MAX;
}
const RING: RingShape = { slots: 4, slotSize: 256 << 10 };
/** Files up to a slot are stored from the ring: large slots keep most files there. */
const DESCRIBE_RING: RingShape = { slots: 8, slotSize: 1 << 20 };

/** The NAR of `path` (what `nix-store --dump PATH` writes). */
export function fsNarStream(
  path: string,
  options: FsNarStreamOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const transient = options.transient ?? true;
  const st = lstatSync(path);
  if (!worthAThread(st)) {
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
  for await (const { bytes } of fsNarSlots(path, { describe: false, signal })) {
    yield transient ? bytes : bytes.slice();
  }
}

/** One slot of the worker's output: NAR bytes, and in describe mode the tree events they hold. */
export interface NarSlot {
  /** Valid until the next slot is asked for. */
  readonly bytes: Uint8Array;
  readonly events: readonly TreeEvent[];
}

export interface FsNarSlotsOptions {
  /** Ask the worker for TreeEvents with BLAKE3 digests (for ingestion). */
  describe: boolean;
  signal?: AbortSignal | undefined;
  /** Ring geometry (default 4 x 256 KiB, describe mode 8 x 1 MiB). */
  ring?: RingShape;
  /** describe mode: files up to this size come in one slot (default and maximum: the slot size). */
  inSlotMax?: number;
}

/**
 * The NAR of `path` slot by slot, straight from the worker's ring. A slot
 * is given back to the worker when the next one is asked for.
 */
export async function* fsNarSlots(
  path: string,
  options: FsNarSlotsOptions,
): AsyncGenerator<NarSlot, void, undefined> {
  const { signal, describe } = options;
  throwIfAborted(signal);
  const ring = createRing(options.ring ?? (describe ? DESCRIBE_RING : RING));
  const data: RingWorkerData = {
    path: Buffer.from(path),
    ring,
    readChunk: 1 << 20,
    describe,
    inSlotMax: Math.min(options.inSlotMax ?? ring.slotSize, ring.slotSize),
  };
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
  worker.on("messageerror", (err) => {
    // A lost slot message would leave a gap in the NAR: fail instead.
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
      yield {
        bytes: new Uint8Array(ring.data, m.slot * ring.slotSize, m.used),
        events: m.events === undefined ? NO_EVENTS : decodeTreeEvents(m.events),
      };
    }
  } finally {
    signal?.removeEventListener("abort", poke);
    // Wakes a worker blocked on a full ring so it sees the cancel word and stops.
    Atomics.store(state, ring.slots, RING_CANCELLED);
    for (let i = 0; i < ring.slots; i++) Atomics.notify(state, i);
    await worker.terminate();
  }
}

const NO_EVENTS: readonly TreeEvent[] = [];

/** The worker's error, as the same class and message the in-process source throws. */
function rebuildError(m: Extract<RingMessage, { kind: "error" }>): Error {
  const options = m.stack === undefined ? {} : { cause: new WorkerStack(m.stack) };
  if (m.name === "InvalidInputError") return new InvalidInputError(m.message, options);
  if (m.name === "IntegrityError") return new IntegrityError(m.message, options);
  const err: NodeJS.ErrnoException = new Error(m.message, options);
  if (m.code !== undefined) err.code = m.code;
  if (m.errno !== undefined) err.errno = m.errno;
  if (m.syscall !== undefined) err.syscall = m.syscall;
  if (m.path !== undefined) err.path = m.path;
  return err;
}

/** Where the worker was when it failed (its stack), as the cause of the rebuilt error. */
class WorkerStack extends Error {
  constructor(stack: string) {
    super("in the NAR worker thread");
    this.name = "WorkerStack";
    this.stack = stack;
  }
}
