/**
 * The edge between the domain Directory and the `castore.v1.Directory`
 * protobuf message: canonical encoding and strict decoding.
 */
import { create } from "@bufbuild/protobuf";
import { InvalidInputError } from "../errors.js";
import {
  type Directory as DirectoryPb,
  DirectorySchema,
  type Node as NodePb,
  NodeSchema,
} from "../proto/gen/tvix/castore/v1/castore_pb.js";
import { compareBytes } from "./bytes.js";
import { type B3Digest, b3Digest } from "./digest.js";
import { decodeDirectoryWire, encodeDirectoryWire } from "./directory-wire.js";
import { type Entry, type Node, symlinkTargetProblem, validateNode } from "./node.js";
import { pathComponent, showName } from "./path-component.js";

/** Converts sorted entries to the protobuf message (three lists, each in name order). */
export function directoryToProto(entries: readonly Entry[]): DirectoryPb {
  const msg = create(DirectorySchema);
  for (const { name, node } of entries) {
    switch (node.type) {
      case "directory":
        msg.directories.push({
          $typeName: "tvix.castore.v1.DirectoryNode",
          name,
          digest: node.digest,
          size: BigInt(node.size),
        });
        break;
      case "file":
        msg.files.push({
          $typeName: "tvix.castore.v1.FileNode",
          name,
          digest: node.digest,
          size: BigInt(node.size),
          executable: node.executable,
        });
        break;
      case "symlink":
        msg.symlinks.push({ $typeName: "tvix.castore.v1.SymlinkNode", name, target: node.target });
        break;
    }
  }
  return msg;
}

/** Canonical encoding: fields in number order, defaults omitted, no unknown fields. */
export function encodeDirectoryEntries(entries: readonly Entry[]): Uint8Array {
  return encodeDirectoryWire(entries);
}

function toSize(v: bigint, context: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidInputError(`${context}: size ${v} is larger than the largest safe integer`);
  }
  return Number(v);
}

function checkOrder(list: readonly { name: Uint8Array }[], kind: string): void {
  for (let i = 1; i < list.length; i++) {
    if (compareBytes(list[i - 1]!.name, list[i]!.name) >= 0) {
      const rel =
        compareBytes(list[i - 1]!.name, list[i]!.name) === 0 ? "duplicate" : "out of order";
      throw new InvalidInputError(
        `directory: ${kind} entry ${showName(list[i]!.name)} is ${rel} (each list must be sorted bytewise by name)`,
      );
    }
  }
}

function rejectUnknown(msg: { $unknown?: unknown[] | undefined }, what: string): void {
  if (msg.$unknown !== undefined && msg.$unknown.length > 0) {
    throw new InvalidInputError(`${what}: unknown protobuf fields are not allowed`);
  }
}

/** Converts a decoded protobuf Directory into validated entries (not yet merged/sorted). */
/**
 * Converts a decoded protobuf Directory into validated entries (not yet
 * merged/sorted). This runs on every directory read from a store, so error
 * labels are only built when something is wrong.
 */
export function directoryFromProto(msg: DirectoryPb): Entry[] {
  rejectUnknown(msg, "directory");
  checkOrder(msg.directories, "directory");
  checkOrder(msg.files, "file");
  checkOrder(msg.symlinks, "symlink");
  const out: Entry[] = [];
  const label = (kind: string, name: Uint8Array): string =>
    `directory: ${kind} entry ${showName(name)}`;
  for (const d of msg.directories) {
    if (d.$unknown?.length) rejectUnknown(d, label("directory", d.name));
    const name = pathComponent(d.name, "directory: directory entry");
    if (d.digest.length !== 32 || d.size > MAX_SAFE) {
      const ctx = label("directory", name);
      validateNode(
        { type: "directory", digest: b3Digest(d.digest, ctx), size: toSize(d.size, ctx) },
        ctx,
      );
    }
    out.push({
      name,
      node: { type: "directory", digest: d.digest as B3Digest, size: Number(d.size) },
    });
  }
  for (const f of msg.files) {
    if (f.$unknown?.length) rejectUnknown(f, label("file", f.name));
    const name = pathComponent(f.name, "directory: file entry");
    if (f.digest.length !== 32 || f.size > MAX_SAFE) {
      const ctx = label("file", name);
      b3Digest(f.digest, ctx);
      toSize(f.size, ctx);
    }
    out.push({
      name,
      node: {
        type: "file",
        digest: f.digest as B3Digest,
        size: Number(f.size),
        executable: f.executable,
      },
    });
  }
  for (const s of msg.symlinks) {
    if (s.$unknown?.length) rejectUnknown(s, label("symlink", s.name));
    const name = pathComponent(s.name, "directory: symlink entry");
    const problem = symlinkTargetProblem(s.target);
    if (problem !== undefined) throw new InvalidInputError(`${label("symlink", name)}: ${problem}`);
    out.push({ name, node: { type: "symlink", target: s.target } });
  }
  return out;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Decodes and validates a `castore.v1.Directory` (see directory-wire.ts). */
export function decodeDirectoryEntries(bytes: Uint8Array): Entry[] {
  return decodeDirectoryWire(bytes);
}

/** A named node to its protobuf `Node` (the form PathInfo and CalculateNAR use). */
export function entryToProto(name: Uint8Array, node: Node): NodePb {
  switch (node.type) {
    case "directory":
      return create(NodeSchema, {
        node: { case: "directory", value: { name, digest: node.digest, size: BigInt(node.size) } },
      });
    case "file":
      return create(NodeSchema, {
        node: {
          case: "file",
          value: {
            name,
            digest: node.digest,
            size: BigInt(node.size),
            executable: node.executable,
          },
        },
      });
    case "symlink":
      return create(NodeSchema, {
        node: { case: "symlink", value: { name, target: node.target } },
      });
  }
}

/**
 * A protobuf `Node` to a name and a validated node. The name is returned as
 * raw bytes: root nodes may carry an empty name (CalculateNAR) or a store
 * path basename (PathInfo); callers validate it for their context.
 */
export function entryFromProto(msg: NodePb, context: string): { name: Uint8Array; node: Node } {
  rejectUnknown(msg, context);
  const n = msg.node;
  switch (n.case) {
    case "directory":
      rejectUnknown(n.value, context);
      return {
        name: n.value.name,
        node: validateNode(
          {
            type: "directory",
            digest: b3Digest(n.value.digest, context),
            size: toSize(n.value.size, context),
          },
          context,
        ),
      };
    case "file":
      rejectUnknown(n.value, context);
      return {
        name: n.value.name,
        node: validateNode(
          {
            type: "file",
            digest: b3Digest(n.value.digest, context),
            size: toSize(n.value.size, context),
            executable: n.value.executable,
          },
          context,
        ),
      };
    case "symlink":
      rejectUnknown(n.value, context);
      return {
        name: n.value.name,
        node: validateNode({ type: "symlink", target: n.value.target }, context),
      };
    default:
      throw new InvalidInputError(`${context}: node is not set`);
  }
}
