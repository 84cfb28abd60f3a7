/** Where the noderel package's own files are: its templates and the runtime it ships into releases. */
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
