/**
 * `noderel init`: a starter `rel/` for an existing Node project, from its package.json, so a
 * plain program that knows nothing of noderel becomes a release (mix release's `mix release.init`).
 */
import fs from 'node:fs';
import path from 'node:path';
import fse from 'fs-extra';
import YAML from 'yaml';
import { NoderelError } from '../errors.js';
import { displayPath, type Reporter } from '../reporter.js';
import { templatesDir } from '../paths.js';

export interface InitOptions {
  root: string;
  entry?: string;
  port?: number;
  readyOutput?: string;
  runtime?: string;
  force?: boolean;
  reporter: Reporter;
}

type PackageJson = { name?: unknown; version?: unknown; main?: unknown; bin?: unknown };

/** The program's entry: `main`, else the first `bin`, else a conventional file name. */
function findEntry(root: string, pkg: PackageJson): string | undefined {
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin && typeof pkg.bin === 'object' ? Object.values(pkg.bin)[0] : undefined;
  const candidates = [pkg.main, bin, 'index.js', 'server.js', 'app.js', 'main.js', 'index.mjs', 'server.mjs'];
  return candidates
    .filter((c): c is string => typeof c === 'string')
    .map((c) => c.replace(/^\.\//, ''))
    .find((c) => fs.existsSync(path.join(root, c)));
}

/** The release name: the package name without scope, as letters, digits, _ and -. */
export function releaseNameOf(pkgName: string): string {
  const bare = pkgName.replace(/^@[^/]+\//, '').replace(/[^A-Za-z0-9_-]/g, '_');
  return /^[A-Za-z]/.test(bare) ? bare : `app_${bare}`;
}

/**
 * The package an entry file belongs to: for `packages/api/server.js` in an npm workspaces
 * monorepo, `packages/api` (its package.json is the app's); else the project root. A file under
 * node_modules (a dependency's bin) belongs to the project.
 */
export function owningPackage(root: string, entry: string): string {
  const abs = path.resolve(root, entry);
  if (path.relative(root, abs).split(path.sep).includes('node_modules')) return root;
  for (let dir = path.dirname(abs); dir !== root && dir.startsWith(`${root}${path.sep}`); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return root;
}

/** The relx.config text for a single-program project. */
export function starterConfig(o: { name: string; version: string; entry: string; port?: number; readyOutput?: string; runtime: string; app?: { path: string; name: string; version: string } }): string {
  const ready = o.port !== undefined ? { port: o.port } : o.readyOutput !== undefined ? { output: o.readyOutput } : 'at_once';
  const app = o.app ?? { path: '.', name: o.name, version: o.version };
  const config = {
    release: { name: o.name, version: o.version },
    apps: [{ path: app.path, name: app.name, version: app.version, type: 'program', entry: o.entry, ready }],
    node_types: { [o.name]: { apps: [app.name] } },
    runtime: { version: o.runtime },
  };
  return [
    '# noderel release config (see the README, "Configuration"). `noderel config` prints the final config;',
    '# rel/relx.config.script (a JS module) may rewrite it: export default (CONFIG, { env }) => CONFIG',
    YAML.stringify(config),
  ].join('\n');
}

/** The starter vm.args and sys.config, from templates/init/. */
const starter = (file: string): string => fs.readFileSync(path.join(templatesDir, 'init', file), 'utf8');

export function initProject(o: InitOptions): void {
  const pkgFile = path.join(o.root, 'package.json');
  let pkg: PackageJson;
  try {
    pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as PackageJson;
  } catch {
    throw new NoderelError('EINIT', `${displayPath(pkgFile)} is missing or not JSON; run noderel init in a Node project (npm init creates one)`);
  }
  const relConfig = path.join(o.root, 'rel', 'relx.config');
  if (fs.existsSync(relConfig) && !o.force) {
    throw new NoderelError('EINIT', `${displayPath(relConfig)} already exists; edit it, or pass --force to overwrite`);
  }
  const entry = o.entry ?? findEntry(o.root, pkg);
  if (!entry) throw new NoderelError('EINIT', `cannot tell the program's entry file from ${displayPath(pkgFile)} ("main", "bin"); pass --entry FILE`);
  if (!fs.existsSync(path.resolve(o.root, entry))) throw new NoderelError('EINIT', `--entry ${entry}: ${displayPath(path.resolve(o.root, entry))} does not exist; pass the program's entry file, relative to ${displayPath(o.root) || '.'}`);
  if (typeof pkg.name !== 'string' || pkg.name === '') throw new NoderelError('EINIT', `${displayPath(pkgFile)} has no "name"; add one`);
  const version = typeof pkg.version === 'string' && pkg.version !== '' ? pkg.version : '0.1.0';
  const name = releaseNameOf(pkg.name);
  // An entry inside a workspace package (built from the monorepo's root): that package is the app.
  const owner = owningPackage(o.root, entry);
  let app: { path: string; name: string; version: string } | undefined;
  let appEntry = entry;
  if (owner !== o.root) {
    let ownerPkg: PackageJson = {};
    try {
      ownerPkg = JSON.parse(fs.readFileSync(path.join(owner, 'package.json'), 'utf8')) as PackageJson;
    } catch {
      throw new NoderelError('EINIT', `${displayPath(path.join(owner, 'package.json'))} is not JSON; fix it, or pass an --entry outside that package`);
    }
    const appName = typeof ownerPkg.name === 'string' && ownerPkg.name !== '' ? releaseNameOf(ownerPkg.name) : path.basename(owner);
    app = {
      path: path.relative(o.root, owner).split(path.sep).join('/'),
      name: appName,
      version: typeof ownerPkg.version === 'string' && ownerPkg.version !== '' ? ownerPkg.version : version,
    };
    appEntry = path.relative(owner, path.resolve(o.root, entry)).split(path.sep).join('/');
  }
  const files: [string, string][] = [
    [relConfig, starterConfig({ name, version, entry: appEntry, port: o.port, readyOutput: o.readyOutput, runtime: o.runtime ?? 'system', app })],
    [path.join(o.root, 'rel', 'vm.args'), starter('vm.args')],
    [path.join(o.root, 'rel', 'sys.config'), starter('sys.config')],
  ];
  for (const [file, text] of files) {
    if (fs.existsSync(file) && !o.force && file !== relConfig) continue;
    fse.outputFileSync(file, text);
    o.reporter.step(`wrote ${displayPath(file)}`);
  }
  o.reporter.block([`Next: \`npx noderel\` builds _rel/${name}/; then _rel/${name}/bin/${name} foreground`]);
}
