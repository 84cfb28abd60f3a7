/**
 * Hermetic releases: real `npm install`s from the registry, built with the CLI,
 * and the release unpacked from its tarball into a directory with no node_modules above it, where
 * the system node requires every dependency from the app's directory. Covers a workspaces
 * monorepo (a workspace built as an app, and the root built as one app), an `npm:` alias, two
 * versions of one package that must nest, and the error for a project that is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noderel, tempDir, writeFiles } from '../helpers/project.js';

const cleanups: (() => void)[] = [];
afterAll(() => {
  while (cleanups.length) cleanups.pop()!();
});

function temp(prefix: string): string {
  const t = tempDir(prefix);
  cleanups.push(t.cleanup);
  return t.dir;
}

/** `npm install` from the registry, quietly; no scripts, no audit. */
function npmInstall(dir: string): void {
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`npm install in ${dir} failed (the npm registry must be reachable):\n${r.stderr}`);
}

/** A copy of an installed project (symlinks kept as they are: workspace links stay relative). */
function copyProject(from: string): string {
  const dir = temp('noderel-deps-copy-');
  fs.cpSync(from, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

function build(dir: string, name: string): string {
  const r = noderel(dir, ['tar', '-q']);
  expect(r.code, r.stderr).toBe(0);
  return path.join(dir, '_rel', `${name}-1.0.0.tar.gz`);
}

/** Unpacks a release tarball where Node's lookup cannot leave it: no node_modules in any ancestor. */
function unpack(tarball: string): string {
  const dir = temp('noderel-deps-unpacked-');
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    expect(fs.existsSync(path.join(d, 'node_modules')), `${d}/node_modules exists: the check would not be contained`).toBe(false);
    if (path.dirname(d) === d) break;
  }
  execFileSync('tar', ['xzf', tarball, '-C', dir]);
  return dir;
}

/** Runs JavaScript with the system node in `cwd` and returns its JSON output. */
function nodeEval(cwd: string, code: string): unknown {
  const r = spawnSync(process.execPath, ['-e', code], { cwd, encoding: 'utf8', env: { PATH: process.env.PATH } });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const json = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

/** Every symlink under `dir` (a release ships files, never links into the project). */
function symlinksUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) out.push(p);
      else if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

const SERVER = `const lib = require('@mono/lib');
const isNumber = require('is-number');
const out = { lib: lib.twoSeconds(), isNumber: isNumber(5), from: require.resolve('@mono/lib') };
if (require.main === module) console.log(JSON.stringify(out));
`;

/** The whole monorepo as one app, its entry in a workspace package. */
const ROOT_APP = 'release: {name: mono, version: 1.0.0}\napps:\n  - {path: ., type: program, entry: packages/api/server.js}\nnode_types:\n  web: {apps: [mono]}\nruntime: system\n';

/** An npm workspaces monorepo: @mono/api -> @mono/lib (workspace) + is-number; @mono/lib -> ms. */
function writeMonorepo(dir: string): void {
  writeFiles(dir, {
    'package.json': JSON.stringify({ name: 'mono', version: '1.0.0', private: true, workspaces: ['packages/*'] }),
    'packages/api/package.json': JSON.stringify({ name: '@mono/api', version: '1.0.0', main: 'server.js', dependencies: { '@mono/lib': '1.0.0', 'is-number': '7.0.0' } }),
    'packages/api/server.js': SERVER,
    'packages/lib/package.json': JSON.stringify({ name: '@mono/lib', version: '1.0.0', main: 'index.js', dependencies: { ms: '2.1.3' } }),
    'packages/lib/index.js': "const ms = require('ms');\nexports.twoSeconds = () => ms(2000);\n",
  });
}

describe('the production closure of a workspaces monorepo, built from its root', () => {
  let installed: string;
  beforeAll(() => {
    installed = temp('noderel-deps-mono-');
    writeMonorepo(installed);
    npmInstall(installed);
  });

  it('a workspace package as an app (noderel init --entry packages/api/server.js) ships the workspace it needs (files, not links), its deps and the registry package', () => {
    const dir = copyProject(installed);
    const init = noderel(dir, ['init', '--entry', 'packages/api/server.js']);
    expect(init.code, init.stderr).toBe(0);
    const tarball = build(dir, 'mono');
    const lib = path.join(dir, '_rel', 'mono', 'lib', 'api-1.0.0');
    expect(fs.readFileSync(path.join(lib, 'node_modules', '@mono', 'lib', 'index.js'), 'utf8')).toMatch(/require\('ms'\)/);
    expect(json(path.join(lib, 'node_modules', 'is-number', 'package.json')).version).toBe('7.0.0');
    expect(json(path.join(lib, 'node_modules', 'ms', 'package.json')).version).toBe('2.1.3');
    expect(symlinksUnder(lib)).toEqual([]);

    const where = unpack(tarball);
    const app = path.join(where, 'lib', 'api-1.0.0');
    expect(nodeEval(app, "const s = require('./server.js'); console.log(JSON.stringify({ lib: require('@mono/lib').twoSeconds(), n: require('is-number')(1) }))")).toEqual({ lib: '2s', n: true });
    const run = spawnSync(process.execPath, ['server.js'], { cwd: app, encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { lib: string; isNumber: boolean; from: string };
    expect(out).toMatchObject({ lib: '2s', isNumber: true });
    expect(out.from.startsWith(app + path.sep)).toBe(true);
  });

  it('the root as one app (path: ., entry in a workspace) ships every workspace and their deps', () => {
    const dir = copyProject(installed);
    writeFiles(dir, { 'rel/relx.config': ROOT_APP });
    const tarball = build(dir, 'mono');
    const lib = path.join(dir, '_rel', 'mono', 'lib', 'mono-1.0.0');
    for (const f of ['packages/api/server.js', 'node_modules/@mono/lib/index.js', 'node_modules/@mono/api/server.js', 'node_modules/is-number/index.js', 'node_modules/ms/index.js']) {
      expect(fs.existsSync(path.join(lib, f)), f).toBe(true);
    }
    expect(symlinksUnder(lib)).toEqual([]);

    const where = unpack(tarball);
    const app = path.join(where, 'lib', 'mono-1.0.0');
    const run = spawnSync(process.execPath, ['packages/api/server.js'], { cwd: app, encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ lib: '2s', isNumber: true });
    expect(nodeEval(app, "console.log(JSON.stringify([require('@mono/lib').twoSeconds(), require('is-number')('3'), typeof require('ms')]))")).toEqual(['2s', true, 'function']);
  });

  it('a monorepo that is not installed fails the build naming the package, its requirer and the root to install', () => {
    const dir = temp('noderel-deps-bare-');
    writeMonorepo(dir);
    expect(noderel(dir, ['init', '--entry', 'packages/api/server.js']).code).toBe(0);
    const r = noderel(dir, ['build']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/app api: dependency "@mono\/lib" \(required by api\) is not installed \(and 1 more\); run `npm install` in \.$/m);
    expect(fs.existsSync(path.join(dir, '_rel', 'mono', 'lib'))).toBe(false);

    // Built from the root as one app: the workspaces themselves are not linked.
    writeFiles(dir, { 'rel/relx.config': ROOT_APP });
    const root = noderel(dir, ['build']);
    expect(root.code).not.toBe(0);
    expect(root.stderr).toMatch(/app mono: workspace package "@mono\/api" \(required by mono\) is not installed \(and \d+ more\); run `npm install` in \.$/m);
  });
});

describe('the production closure of an app with an npm: alias and two versions of one package', () => {
  let dir: string;
  let tarball: string;
  beforeAll(() => {
    dir = temp('noderel-deps-web-');
    writeFiles(dir, {
      // debug@2.6.9 requires ms@2.0.0; the app requires ms@2.1.3: npm nests one under debug.
      'package.json': JSON.stringify({ name: 'web', version: '1.0.0', main: 'index.js', dependencies: { numcheck: 'npm:is-number@7.0.0', ms: '2.1.3', debug: '2.6.9' }, devDependencies: { 'is-odd': '3.0.1' } }),
      'index.js': "module.exports = { isNumber: require('numcheck'), ms: require('ms'), debug: require('debug') };\n",
      'rel/relx.config': 'release: {name: web, version: 1.0.0}\napps:\n  - {path: ., type: program, entry: index.js}\nnode_types:\n  web: {apps: [web]}\nruntime: system\n',
    });
    npmInstall(dir);
    tarball = build(dir, 'web');
  });

  it('ships the alias under its alias, nests the other version under its requirer, and no devDependency', () => {
    const lib = path.join(dir, '_rel', 'web', 'lib', 'web-1.0.0');
    expect(json(path.join(lib, 'node_modules', 'numcheck', 'package.json'))).toMatchObject({ name: 'is-number', version: '7.0.0' });
    expect(json(path.join(lib, 'node_modules', 'ms', 'package.json')).version).toBe('2.1.3');
    expect(json(path.join(lib, 'node_modules', 'debug', 'node_modules', 'ms', 'package.json')).version).toBe('2.0.0');
    expect(fs.existsSync(path.join(lib, 'node_modules', 'is-odd'))).toBe(false);
    expect(fs.existsSync(path.join(lib, 'node_modules', 'is-number'))).toBe(false);
  });

  it('resolves each copy from the unpacked tarball, contained in it', () => {
    const app = path.join(unpack(tarball), 'lib', 'web-1.0.0');
    const out = nodeEval(
      app,
      `const path = require('path');
       const m = require('./index.js');
       const debugDir = path.dirname(require.resolve('debug/package.json'));
       const nestedMs = require.resolve('ms/package.json', { paths: [path.join(debugDir, 'src')] });
       console.log(JSON.stringify({
         alias: m.isNumber(5), ms: m.ms(60000), debug: typeof m.debug('x'),
         top: require('ms/package.json').version, nested: require(nestedMs).version,
         contained: [require.resolve('numcheck'), require.resolve('ms'), nestedMs].every((f) => f.startsWith(process.cwd() + path.sep)),
       }));`,
    );
    expect(out).toEqual({ alias: true, ms: '1m', debug: 'function', top: '2.1.3', nested: '2.0.0', contained: true });
  });

  it('an app with dependencies and no install at all fails the build in one line, naming the app, the package and the fix', () => {
    const bare = temp('noderel-deps-bare-');
    for (const f of ['package.json', 'index.js', 'rel/relx.config']) writeFiles(bare, { [f]: fs.readFileSync(path.join(dir, f), 'utf8') });
    const r = noderel(bare, ['build']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/app web: dependency "debug" \(required by web\) is not installed \(and 2 more\); run `npm install` in \S+/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
