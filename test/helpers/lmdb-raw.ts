/** Direct access to an LMDB file, for tests that plant bad data behind a service. */
import { open } from "lmdb";

/** Writes raw bytes under a key of database `db`, bypassing the service (which must be closed). */
export async function writeRaw(
  path: string,
  db: string,
  key: Uint8Array,
  value: Uint8Array,
): Promise<void> {
  const env = open<Uint8Array, Uint8Array>({ path });
  const table = env.openDB<Uint8Array, Uint8Array>({
    name: db,
    keyEncoding: "binary",
    encoding: "binary",
  });
  await table.put(key, value);
  await env.close();
}
