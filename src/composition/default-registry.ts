/**
 * The registry with strata's built-in service types. Each call returns a
 * fresh Registry, so code that registers its own types (on this one, or on a
 * `clone()` of it) never changes what anybody else gets.
 */
import { Registry } from "./registry.js";
import { lmdbDirectoryType, lmdbPathInfoType } from "./types/lmdb.js";
import { memoryBlobType, memoryDirectoryType, memoryPathInfoType } from "./types/memory.js";
import { objectStoreBlobType } from "./types/objectstore.js";

/** A new registry holding the built-in types: memory, objectstore (blob), lmdb (directory, path info). */
export function defaultRegistry(): Registry {
  return new Registry()
    .register(memoryBlobType)
    .register(objectStoreBlobType)
    .register(memoryDirectoryType)
    .register(lmdbDirectoryType)
    .register(memoryPathInfoType)
    .register(lmdbPathInfoType);
}
