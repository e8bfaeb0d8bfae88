import { fromBase64 } from "../../castore/bytes.js";
import { InvalidInputError } from "../../errors.js";
import { contentAddressedStorePath } from "../../store/content-address.js";
import { ingestNar } from "../../store/import/nar-ingest.js";
import { nixbase32DecodeOrUndefined } from "../../store/nixbase32.js";
import type { PathInfo } from "../../store/path-info.js";
import { StorePath } from "../../store/store-path.js";
import { openStores, type StoreFlags } from "../store-options.js";

export interface NarImportFlags extends StoreFlags {
  storePath?: string;
  name?: string;
  reference: string[];
  narHash?: string;
}

/** `sha256-<base64>` (SRI) or `sha256:<nixbase32>` to 32 bytes. */
export function parseSha256(text: string): Uint8Array {
  let bytes: Uint8Array | undefined;
  if (text.startsWith("sha256-")) bytes = fromBase64(text.slice(7));
  else if (text.startsWith("sha256:")) bytes = nixbase32DecodeOrUndefined(text.slice(7));
  if (bytes === undefined || bytes.length !== 32) {
    throw new InvalidInputError(
      `'${text}' is not a SHA-256 hash (expected sha256-<base64> or sha256:<nixbase32>)`,
    );
  }
  return bytes;
}

export async function narImport(
  source: AsyncIterable<Uint8Array>,
  flags: NarImportFlags,
): Promise<PathInfo> {
  if ((flags.storePath === undefined) === (flags.name === undefined)) {
    throw new InvalidInputError(
      "give either --store-path (register under that path) or --name (compute the path)",
    );
  }
  const given =
    flags.storePath === undefined ? undefined : StorePath.parseAbsolute(flags.storePath);
  const refs = flags.reference.map((r) => StorePath.parseAbsolute(r));
  const expected =
    flags.narHash === undefined ? {} : { expectedNarSha256: parseSha256(flags.narHash) };
  await using stores = await openStores(flags);
  const { node, narSha256, narSize } = await ingestNar(source, stores, expected);
  let storePath: StorePath;
  let ca: PathInfo["ca"];
  if (given !== undefined) {
    storePath = given;
  } else {
    ca = { method: "nar", algo: "sha256", digest: narSha256 };
    storePath = contentAddressedStorePath(flags.name!, ca, refs);
  }
  const info: PathInfo = {
    storePath,
    node,
    references: refs,
    narSize,
    narSha256,
    signatures: [],
    ...(ca === undefined ? {} : { ca }),
  };
  return stores.pathInfos.put(info);
}
