/** Resolving `/nix/store/<hash>-<name>[/sub/path]` arguments against a store. */
import { formatB3 } from "../castore/digest.js";
import type { Node } from "../castore/node.js";
import { IntegrityError, InvalidInputError } from "../errors.js";
import type { PathInfo } from "../store/path-info.js";
import { StorePath } from "../store/store-path.js";
import type { Stores } from "./store-options.js";

export async function requirePathInfo(stores: Stores, storePath: StorePath): Promise<PathInfo> {
  const info = await stores.pathInfos.get(storePath.digest);
  if (info === undefined || info.storePath.name !== storePath.name) {
    throw new InvalidInputError(`'${storePath.absolute}' is not in the store`);
  }
  return info;
}

/** The node at a store path or below it; symlinks inside the path are not followed. */
export async function resolveNode(
  stores: Stores,
  arg: string,
): Promise<{ info: PathInfo; node: Node; path: string }> {
  const { storePath, subpath } = StorePath.parseWithSubpath(arg);
  const info = await requirePathInfo(stores, storePath);
  let node = info.node;
  let walked = storePath.absolute;
  for (const component of subpath) {
    if (node.type !== "directory") {
      throw new InvalidInputError(`'${walked}' is a ${node.type}, not a directory`);
    }
    const dir = await stores.directories.get(node.digest);
    if (dir === undefined)
      throw new IntegrityError(`directory ${formatB3(node.digest)} of '${walked}' is missing`);
    const child = dir.get(component);
    walked += `/${component}`;
    if (child === undefined) throw new InvalidInputError(`'${walked}' does not exist`);
    node = child;
  }
  return { info, node, path: walked };
}
