/** Where the noderel package's own files are (its templates and the runtime it ships into releases), and path helpers both the config and the build use. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The installed noderel package root (holds package.json, dist/, templates/). */
export const packageRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** noderel's own version, from its package.json. */
export const noderelVersion: string = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;

export const templatesDir: string = path.join(packageRoot, 'templates');

/**
 * The node runtime a release ships as `lib/noderel-<vsn>/`: `src/node/` (Node built-ins only)
 * compiled, then bundled into one CommonJS `boot.js` by scripts/post-build.mjs.
 */
export const shippedRuntimeDir: string = path.join(packageRoot, 'dist', 'runtime');

/** Is `child` inside `parent` (or equal to it)? */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * The top-level directories of a release that hold what the build does not own as a whole:
 * other installed versions (bin/, lib/, releases/ and the cookie) and the nodes' run state and
 * logs (tmp/, log/). An overlay never replaces or removes anything there (config/resolve.ts
 * refuses such destinations, assemble/plan.ts and assemble/apply.ts keep to them).
 */
export const PROTECTED_DIRS = ['bin', 'lib', 'releases', 'tmp', 'log'] as const;
