/**
 * The release manifest at boot: `releases/<vsn>/release.json`, read and validated by the
 * contract shared with the build (contract/manifest.ts, which has the types and the rules);
 * here its errors become BootErrors, and the node type to run is chosen.
 */
import {
  ManifestError,
  parseManifest as parseManifestJson,
  readManifest as readManifestFile,
  type Manifest,
  type NodeTypeSpec,
} from '../../contract/manifest.js';
import { BootError } from '../errors.js';

export { DEFAULT_START_TIMEOUT_MS, manifestPath } from '../../contract/manifest.js';
export type { AppSpec, Manifest, NodeTypeSpec, Readiness } from '../../contract/manifest.js';

/** Reads `releases/<vsn>/release.json` under `root`; a BootError (`EMANIFEST`) names every problem. */
export function readManifest(root: string, vsn: string): Manifest {
  return asBootError(() => readManifestFile(root, vsn));
}

/** Validates and normalizes a parsed release.json; `root` makes app paths absolute. */
export function parseManifest(raw: unknown, root: string, file: string): Manifest {
  return asBootError(() => parseManifestJson(raw, root, file));
}

function asBootError<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ManifestError) throw new BootError(err.code, err.message, { cause: err });
    throw err;
  }
}

/** The node type to run: `requested` (from `REL`) or the manifest's default. */
export function selectNodeType(manifest: Manifest, requested: string | undefined): NodeTypeSpec {
  const name = requested ?? manifest.defaultNodeType;
  const spec = manifest.nodeTypes.get(name);
  if (!spec) {
    throw new BootError(
      'ENODETYPE',
      `unknown node type ${JSON.stringify(name)}; known: ${[...manifest.nodeTypes.keys()].sort().join(', ')} (set REL to one of them)`,
    );
  }
  return spec;
}
