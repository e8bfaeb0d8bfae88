import { InvalidInputError } from "../errors.js";
import type { B3Digest } from "./digest.js";
import { type PathComponent, showName } from "./path-component.js";

/** A pointer to a Directory by its digest, with the Tvix/Snix `size` (see `Directory.size`). */
export interface DirectoryNode {
  readonly type: "directory";
  readonly digest: B3Digest;
  readonly size: number;
}

/** A regular file: BLAKE3 of its contents, content length, executable bit. */
export interface FileNode {
  readonly type: "file";
  readonly digest: B3Digest;
  readonly size: number;
  readonly executable: boolean;
}

export interface SymlinkNode {
  readonly type: "symlink";
  readonly target: Uint8Array;
}

/**
 * A node is unnamed: names come from the Directory holding it, or from the
 * context of a root node (a PathInfo names its root after the store path).
 */
export type Node = DirectoryNode | FileNode | SymlinkNode;

/** A named node: an entry of a Directory, or a root node with its name. */
export interface Entry {
  readonly name: PathComponent;
  readonly node: Node;
}

/** Linux refuses symlink targets of PATH_MAX (4096) bytes or more. */
export const MAX_SYMLINK_TARGET_LENGTH = 4095;

export function symlinkTargetProblem(target: Uint8Array): string | undefined {
  if (target.length === 0) return "symlink target is empty";
  if (target.length > MAX_SYMLINK_TARGET_LENGTH) {
    return `symlink target is longer than ${MAX_SYMLINK_TARGET_LENGTH} bytes`;
  }
  if (target.includes(0)) return "symlink target contains a NUL byte";
  return undefined;
}

/** Validates a node's own fields (sizes, target). Digest lengths are enforced by B3Digest. */
export function validateNode(node: Node, context: string): Node {
  switch (node.type) {
    case "directory":
    case "file":
      if (!Number.isSafeInteger(node.size) || node.size < 0) {
        throw new InvalidInputError(
          `${context}: size ${node.size} is not a non-negative safe integer`,
        );
      }
      if (node.digest.length !== 32) {
        throw new InvalidInputError(
          `${context}: digest has ${node.digest.length} bytes, expected 32`,
        );
      }
      return node;
    case "symlink": {
      const problem = symlinkTargetProblem(node.target);
      if (problem !== undefined) throw new InvalidInputError(`${context}: ${problem}`);
      return node;
    }
  }
}

export function describeEntry(name: Uint8Array, node?: Node): string {
  return node === undefined ? `entry ${showName(name)}` : `${node.type} entry ${showName(name)}`;
}

export function directoryNode(digest: B3Digest, size: number): DirectoryNode {
  return { type: "directory", digest, size };
}

export function fileNode(digest: B3Digest, size: number, executable = false): FileNode {
  return { type: "file", digest, size, executable };
}

export function symlinkNode(target: Uint8Array): SymlinkNode {
  return { type: "symlink", target };
}
