/**
 * `noderel init`: a starter `rel/` for an existing Node project, from its package.json, so a
 * plain program that knows nothing of noderel becomes a release (mix release's `mix release.init`).
 */
import fs from 'node:fs';
import path from 'node:path';
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

/** The relx.config text for a single-program project. */
export function starterConfig(o: { name: string; version: string; entry: string; port?: number; readyOutput?: string; runtime: string }): string {
  const ready = o.port !== undefined ? { port: o.port } : o.readyOutput !== undefined ? { output: o.readyOutput } : 'at_once';
  const config = {
    release: { name: o.name, version: o.version },
    apps: [{ path: '.', name: o.name, version: o.version, type: 'program', entry: o.entry, ready }],
    node_types: { [o.name]: { apps: [o.name] } },
    runtime: { version: o.runtime },
  };
  return [
    '# noderel release config (SPEC §2). `noderel config` prints the final config;',
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
  if (typeof pkg.name !== 'string' || pkg.name === '') throw new NoderelError('EINIT', `${displayPath(pkgFile)} has no "name"; add one`);
  const version = typeof pkg.version === 'string' && pkg.version !== '' ? pkg.version : '0.1.0';
  const name = releaseNameOf(pkg.name);
  const files: [string, string][] = [
    [relConfig, starterConfig({ name, version, entry, port: o.port, readyOutput: o.readyOutput, runtime: o.runtime ?? 'system' })],
    [path.join(o.root, 'rel', 'vm.args'), starter('vm.args')],
    [path.join(o.root, 'rel', 'sys.config'), starter('sys.config')],
  ];
  fs.mkdirSync(path.join(o.root, 'rel'), { recursive: true });
  for (const [file, text] of files) {
    if (fs.existsSync(file) && !o.force && file !== relConfig) continue;
    fs.writeFileSync(file, text);
    o.reporter.step(`wrote ${displayPath(file)}`);
  }
  o.reporter.block([`Next: \`npx noderel\` builds _rel/${name}/; then _rel/${name}/bin/${name} foreground`]);
}
