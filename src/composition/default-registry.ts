/**
 * The registry with strata's built-in service types. Each call returns a
 * fresh Registry, so code that registers its own types (on this one, or on a
 * `clone()` of it) never changes what anybody else gets.
 */
import { Registry } from "./registry.js";
import { cacheBlobType, cacheDirectoryType, cachePathInfoType } from "./types/cache.js";
import { grpcBlobType, grpcDirectoryType, grpcPathInfoType } from "./types/grpc.js";
import { lmdbDirectoryType, lmdbPathInfoType } from "./types/lmdb.js";
import { lruDirectoryType, lruPathInfoType } from "./types/lru.js";
import { memoryBlobType, memoryDirectoryType, memoryPathInfoType } from "./types/memory.js";
import { objectStoreBlobType } from "./types/objectstore.js";
import { priorityBlobType, priorityDirectoryType, priorityPathInfoType } from "./types/priority.js";
import { raceBlobType, raceDirectoryType, racePathInfoType } from "./types/race.js";
import { retryBlobType, retryDirectoryType, retryPathInfoType } from "./types/retry.js";

/**
 * A new registry holding the built-in types: memory, objectstore (blob), lmdb
 * (directory, path info), and the combinators cache, priority, race, retry
 * (all kinds) and lru (directory, path info).
 */
export function defaultRegistry(): Registry {
  return (
    new Registry()
      .register(memoryBlobType)
      .register(objectStoreBlobType)
      .register(memoryDirectoryType)
      .register(lmdbDirectoryType)
      .register(memoryPathInfoType)
      .register(lmdbPathInfoType)
      // gRPC clients (issue 6): grpc+unix://, grpc+http://, grpc+https://.
      .register(grpcBlobType)
      .register(grpcDirectoryType)
      .register(grpcPathInfoType)
      // Combinators (issue 4): ordinary types that hold other instances.
      .register(cacheBlobType)
      .register(cacheDirectoryType)
      .register(cachePathInfoType)
      .register(priorityBlobType)
      .register(priorityDirectoryType)
      .register(priorityPathInfoType)
      .register(raceBlobType)
      .register(raceDirectoryType)
      .register(racePathInfoType)
      .register(lruDirectoryType)
      .register(lruPathInfoType)
      .register(retryBlobType)
      .register(retryDirectoryType)
      .register(retryPathInfoType)
  );
}
