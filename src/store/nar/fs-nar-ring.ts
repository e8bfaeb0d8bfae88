/**
 * The shared-memory ring between the thread that serialises a tree on disk
 * to NAR (`fs-nar-worker.ts`) and the thread that consumes the bytes
 * (`fs-nar-stream.ts`). Node-only (SharedArrayBuffer + Atomics across
 * worker threads).
 *
 * `slots` buffers of `slotSize` bytes, each with a state word: the producer
 * fills a FREE slot, marks it FULL and posts `{ slot, used }`; the consumer
 * marks it FREE again once the bytes are no longer needed. The producer
 * blocks (Atomics.wait) when the next slot is still FULL, so at most
 * `slots * slotSize` bytes are ever in flight, whatever the tree's size.
 */

export const SLOT_FREE = 0;
export const SLOT_FULL = 1;
/** Set in the extra state word after the last slot: the consumer gave up. */
export const RING_CANCELLED = 1;

export interface RingShape {
  readonly slots: number;
  readonly slotSize: number;
}

export interface RingBuffers extends RingShape {
  /** `slots * slotSize` bytes of NAR. */
  readonly data: SharedArrayBuffer;
  /** One state word per slot, then the cancel word. */
  readonly state: SharedArrayBuffer;
}

export function createRing(shape: RingShape): RingBuffers {
  return {
    ...shape,
    data: new SharedArrayBuffer(shape.slots * shape.slotSize),
    state: new SharedArrayBuffer(4 * (shape.slots + 1)),
  };
}

/**
 * What the NAR bytes of a slot contain, for consumers that ingest the tree
 * (`describe` mode). In NAR order; `name` is absent for the root.
 */
export type TreeEvent =
  | { readonly t: "dir"; readonly name?: Uint8Array }
  | { readonly t: "end" }
  | { readonly t: "symlink"; readonly name?: Uint8Array; readonly target: Uint8Array }
  | {
      readonly t: "file";
      readonly name?: Uint8Array;
      readonly executable: boolean;
      readonly size: number;
      /** BLAKE3 of the contents, computed by the worker as it read them. */
      readonly digest: Uint8Array;
      /**
       * Where the contents lie in this message's slot, when they fit in one
       * (files up to `slotSize` never straddle slots in describe mode).
       */
      readonly at?: number;
      /** The file's path, for files not held in one slot (re-read them to store them). */
      readonly path?: Uint8Array;
    };

/** Worker -> consumer messages. */
export type RingMessage =
  | {
      readonly kind: "slot";
      readonly slot: number;
      readonly used: number;
      /**
       * describe mode: the tree events whose bytes end in this slot (or
       * before), encoded by TreeEventEncoder (tree-events.ts).
       */
      readonly events?: ArrayBuffer;
    }
  | { readonly kind: "done" }
  | {
      readonly kind: "error";
      /** The error class (InvalidInputError, IntegrityError, Error, ...). */
      readonly name: string;
      readonly message: string;
      /** errno code of a failed system call (ENOENT, EACCES, ...), and its details. */
      readonly code?: string;
      readonly errno?: number;
      readonly syscall?: string;
      readonly path?: string;
      /** The worker's stack, kept as the `cause` of the rebuilt error. */
      readonly stack?: string;
    };

/** What the worker is started with (`workerData`). */
export interface RingWorkerData {
  readonly path: Uint8Array;
  readonly ring: RingBuffers;
  /** Bytes per read of a large file: larger reads fill slots with fewer calls. */
  readonly readChunk: number;
  /** Also send TreeEvents with BLAKE3 digests of the files (for ingestion). */
  readonly describe: boolean;
  /** describe mode: files up to this size are placed in one slot (at most `slotSize`). */
  readonly inSlotMax: number;
}
