/**
 * The production dependency closure of an app, found the way Node's resolver finds packages
 * (`node_modules` of the requiring package, then of each ancestor directory), and where each
 * package goes inside `lib/<app>-<vsn>/` so that the same resolution holds in the release.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NoderelError } from '../errors.js';
import { displayPath } from '../reporter.js';

export interface DependencyPackage {
  name: string;
  version: string;
  /** Real (symlink-resolved) directory of the package. */
  source: string;
  /** Destination relative to the app's directory in the release, e.g. `node_modules/ini`. */
  dest: string;
}

type Manifest = { name?: string; version?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };

function readManifest(dir: string): Manifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** Node's lookup: `<dir>/node_modules/<name>` for `dir` and each of its ancestors. */
function findPackage(fromDir: string, name: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Where a package found at `found` goes, relative to the app: the path from the first
 * `node_modules` under the app directory or under one of its ancestors (a hoisted install).
 */
function destinationOf(appDir: string, found: string, name: string): string {
  let base = appDir;
  for (;;) {
    const rel = path.relative(base, found);
    if (rel.startsWith(`node_modules${path.sep}`)) return rel;
    const parent = path.dirname(base);
    if (parent === base) return path.join('node_modules', name);
    base = parent;
  }
}

/** Every package the app needs at run time: `dependencies` and installed `optionalDependencies`, transitively. */
export function productionDependencies(appDir: string, appName: string): DependencyPackage[] {
  const byDest = new Map<string, DependencyPackage>();
  const visit = (requirerReal: string, requirerFound: string, manifest: Manifest, via: string) => {
    const required = Object.keys(manifest.dependencies ?? {});
    const optional = Object.keys(manifest.optionalDependencies ?? {});
    for (const name of [...new Set([...required, ...optional])]) {
      // Resolve from where the requirer sits in the tree (its found path), as Node does with
      // preserved symlinks off; fall back to its real directory for workspace links.
      const found = findPackage(requirerFound, name) ?? findPackage(requirerReal, name);
      if (!found) {
        if (optional.includes(name) && !required.includes(name)) continue;
        throw new NoderelError(
          'EDEPS',
          `app ${appName}: dependency "${name}" (required by ${via}) is not installed; run \`npm install\` in ${displayPath(appDir)} (or at the workspace root)`,
        );
      }
      const source = fs.realpathSync(found);
      const dest = destinationOf(appDir, found, name);
      const seen = byDest.get(dest);
      if (seen) {
        if (seen.source !== source) {
          throw new NoderelError(
            'EDEPS',
            `app ${appName}: two copies of "${name}" (${displayPath(seen.source)} and ${displayPath(source)}) would land at ${dest}; install with \`npm install --install-strategy=nested\` or dedupe them`,
          );
        }
        continue;
      }
      const pkg = readManifest(source) ?? {};
      byDest.set(dest, { name, version: String(pkg.version ?? ''), source, dest });
      visit(source, found, pkg, name);
    }
  };
  const manifest = readManifest(appDir);
  if (!manifest) throw new NoderelError('EDEPS', `app ${appName}: ${displayPath(path.join(appDir, 'package.json'))} is not readable JSON`);
  visit(fs.realpathSync(appDir), appDir, manifest, appName);
  return [...byDest.values()].sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
}
