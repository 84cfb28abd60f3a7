/**
 * The production closure from npm's tree (arborist) on hand-made installs (no network): hoisting,
 * nesting, workspaces (built as a workspace or from the root), aliases, links, optional and peer
 * dependencies, and the placement that keeps Node's resolution in the release.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { productionDependencies, type DependencyPackage } from '../../src/release/deps.js';
import { installFakePackage, tempDir, writeFiles } from '../helpers/project.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function project(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

const p = (...parts: string[]) => path.join(...parts);
const summary = (deps: DependencyPackage[]) => deps.map((d) => `${d.dest}@${d.version}`);

/** `<dir>/node_modules/<name>` -> a relative symlink to `target`, as npm links workspaces and `file:` deps. */
function link(dir: string, name: string, target: string): void {
  const at = path.join(dir, 'node_modules', name);
  fs.mkdirSync(path.dirname(at), { recursive: true });
  fs.symlinkSync(path.relative(path.dirname(at), target), at, 'dir');
}

function pkg(dir: string, manifest: Record<string, unknown>): void {
  writeFiles(dir, { 'package.json': JSON.stringify(manifest), 'index.js': 'module.exports = {};\n' });
}

/** A workspaces monorepo as `npm install` lays it out: api -> lib (workspace) + ms@2; lib -> ms@1 (nested). */
function monorepo(): string {
  const root = project();
  pkg(root, { name: 'mono', version: '1.0.0', private: true, workspaces: ['packages/*'], devDependencies: { devtool: '1' } });
  pkg(p(root, 'packages', 'api'), { name: 'api', version: '0.1.0', dependencies: { lib: '^0.2.0', ms: '^2' }, devDependencies: { devtool: '1' } });
  pkg(p(root, 'packages', 'lib'), { name: 'lib', version: '0.2.0', dependencies: { ms: '^1' } });
  link(root, 'api', p(root, 'packages', 'api'));
  link(root, 'lib', p(root, 'packages', 'lib'));
  installFakePackage(root, 'ms', '2.1.3');
  installFakePackage(root, 'devtool', '1.0.0');
  installFakePackage(p(root, 'packages', 'lib'), 'ms', '1.0.0');
  return root;
}

describe('productionDependencies', () => {
  it('follows dependencies transitively, hoisted or nested, and skips devDependencies', async () => {
    const root = project();
    const app = path.join(root, 'apps', 'web');
    writeFiles(app, {
      // e is in both dependencies and devDependencies: a production dependency.
      'package.json': JSON.stringify({ name: 'web', version: '1.0.0', dependencies: { a: '1', '@s/b': '2', e: '1' }, devDependencies: { dev: '1', e: '1' } }),
    });
    installFakePackage(app, 'a', '1.0.0', { c: '3' });
    installFakePackage(app, 'dev', '1.0.0');
    installFakePackage(app, 'e', '1.0.0');
    installFakePackage(root, '@s/b', '2.0.0'); // hoisted above the app, no lockfile: found where Node finds it
    installFakePackage(root, 'c', '3.0.0'); // needed by a, hoisted
    installFakePackage(root, 'unrelated', '1.0.0');
    installFakePackage(path.join(app, 'node_modules', 'a'), 'd', '4.0.0'); // nested, not required: not shipped
    const deps = await productionDependencies(app, 'web');
    expect(deps.map((d) => [d.name, d.version, d.dest])).toEqual([
      ['@s/b', '2.0.0', p('node_modules', '@s', 'b')],
      ['a', '1.0.0', p('node_modules', 'a')],
      ['c', '3.0.0', p('node_modules', 'c')],
      ['e', '1.0.0', p('node_modules', 'e')],
    ]);
    expect(deps[0]!.source).toBe(p(root, 'node_modules', '@s', 'b'));
  });

  it('keeps a nested copy where Node would find it', async () => {
    const root = project();
    writeFiles(root, { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { a: '1', c: '2' } }) });
    installFakePackage(root, 'a', '1.0.0', { c: '1' });
    installFakePackage(root, 'c', '2.0.0');
    installFakePackage(path.join(root, 'node_modules', 'a'), 'c', '1.0.0');
    expect(summary(await productionDependencies(root, 'app'))).toEqual([
      `${p('node_modules', 'a')}@1.0.0`,
      `${p('node_modules', 'a', 'node_modules', 'c')}@1.0.0`,
      `${p('node_modules', 'c')}@2.0.0`,
    ]);
  });

  it('skips a missing optional or peer dependency and names a missing required one, with the fix', async () => {
    const root = project();
    writeFiles(root, { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { gone: '1', also: '1' }, optionalDependencies: { maybe: '1' } }) });
    // No node_modules anywhere: the error, never an empty closure.
    await expect(productionDependencies(root, 'app')).rejects.toThrow(
      new RegExp(`^app app: dependency "also" \\(required by app\\) is not installed \\(and 1 more\\); run \`npm install\` in ${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    );
    fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', optionalDependencies: { maybe: '1' }, peerDependencies: { peer: '1' } }));
    expect(await productionDependencies(root, 'app')).toEqual([]);
  });

  it('names the package that requires a missing transitive dependency', async () => {
    const root = project();
    writeFiles(root, { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { a: '1' } }) });
    installFakePackage(root, 'a', '1.0.0', { b: '1' });
    await expect(productionDependencies(root, 'app')).rejects.toThrow(/app app: dependency "b" \(required by a@1\.0\.0 \(.*node_modules\/a\)\) is not installed; run `npm install` in /);
  });

  it('ships installed optional, peer and bundled dependencies', async () => {
    const root = project();
    pkg(root, { name: 'app', version: '1.0.0', dependencies: { host: '1' }, optionalDependencies: { opt: '1' } });
    installFakePackage(root, 'opt', '1.0.0');
    pkg(p(root, 'node_modules', 'host'), { name: 'host', version: '1.0.0', peerDependencies: { peer: '1', absent: '1' }, peerDependenciesMeta: { absent: { optional: true } }, dependencies: { bundled: '1' }, bundleDependencies: ['bundled'] });
    installFakePackage(root, 'peer', '1.0.0');
    installFakePackage(p(root, 'node_modules', 'host'), 'bundled', '1.0.0');
    expect(summary(await productionDependencies(root, 'app'))).toEqual([
      `${p('node_modules', 'bundled')}@1.0.0`,
      `${p('node_modules', 'host')}@1.0.0`,
      `${p('node_modules', 'opt')}@1.0.0`,
      `${p('node_modules', 'peer')}@1.0.0`,
    ]);
  });

  it('ships an npm: alias under its alias', async () => {
    const root = project();
    pkg(root, { name: 'app', version: '1.0.0', dependencies: { str: 'npm:real-str@^1' } });
    pkg(p(root, 'node_modules', 'str'), { name: 'real-str', version: '1.2.0' });
    const deps = await productionDependencies(root, 'app');
    expect(deps.map((d) => [d.name, d.version, d.dest])).toEqual([['str', '1.2.0', p('node_modules', 'str')]]);
  });

  it('copies a file: link target under the link name, its own dependencies with it', async () => {
    const root = project();
    const app = p(root, 'app');
    pkg(app, { name: 'app', version: '1.0.0', dependencies: { shared: 'file:../shared' } });
    pkg(p(root, 'shared'), { name: 'shared', version: '0.0.1', dependencies: { x: '1' } });
    installFakePackage(p(root, 'shared'), 'x', '1.0.0');
    link(app, 'shared', p(root, 'shared'));
    const deps = await productionDependencies(app, 'app');
    expect(deps.map((d) => [d.dest, d.source])).toEqual([
      [p('node_modules', 'shared'), p(root, 'shared')],
      [p('node_modules', 'x'), p(root, 'shared', 'node_modules', 'x')],
    ]);
  });

  it('builds a workspace package from the monorepo: links copied, hoisted and nested deps placed for the release', async () => {
    const root = monorepo();
    const deps = await productionDependencies(p(root, 'packages', 'api'), 'api');
    expect(summary(deps)).toEqual([
      `${p('node_modules', 'lib')}@0.2.0`,
      // lib's ms@1 was nested in packages/lib; in the release it sits under lib's copy.
      `${p('node_modules', 'lib', 'node_modules', 'ms')}@1.0.0`,
      `${p('node_modules', 'ms')}@2.1.3`,
    ]);
    expect(deps[0]!.source).toBe(p(root, 'packages', 'lib'));
  });

  it('builds the workspaces root as one app: every workspace and its dependencies, from its own path too', async () => {
    const root = monorepo();
    expect(summary(await productionDependencies(root, 'mono'))).toEqual([
      `${p('node_modules', 'api')}@0.1.0`,
      `${p('node_modules', 'lib')}@0.2.0`,
      `${p('node_modules', 'lib', 'node_modules', 'ms')}@1.0.0`,
      `${p('node_modules', 'ms')}@2.1.3`,
      // packages/lib/ is in the app's own copy; Node resolves its ms from there.
      `${p('packages', 'lib', 'node_modules', 'ms')}@1.0.0`,
    ]);
  });

  it('fails a monorepo that is not installed, naming the workspace and the root to install', async () => {
    const root = project();
    pkg(root, { name: 'mono', version: '1.0.0', workspaces: ['packages/*'] });
    pkg(p(root, 'packages', 'api'), { name: 'api', version: '0.1.0', dependencies: { ms: '^2' } });
    await expect(productionDependencies(root, 'mono')).rejects.toThrow(/^app mono: workspace package "api" \(required by mono\) is not installed \(and 1 more\); run `npm install` in /);
    await expect(productionDependencies(p(root, 'packages', 'api'), 'api')).rejects.toThrow(
      new RegExp(`^app api: dependency "ms" \\(required by api\\) is not installed; run \`npm install\` in ${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    );
  });

  it('tells copies apart by where they are installed, and nests under the requirer when the top is taken', async () => {
    // app -> a@1, b; b -> a@2 (nested in b), c (nested in b); c -> a@1, its own nested copy.
    const root = project();
    pkg(root, { name: 'app', version: '1.0.0', dependencies: { a: '1', b: '1' } });
    installFakePackage(root, 'a', '1.0.0');
    installFakePackage(root, 'b', '1.0.0', { a: '2', c: '1' });
    installFakePackage(p(root, 'node_modules', 'b'), 'a', '2.0.0');
    installFakePackage(p(root, 'node_modules', 'b'), 'c', '1.0.0', { a: '1' });
    installFakePackage(p(root, 'node_modules', 'b', 'node_modules', 'c'), 'a', '1.0.0');
    const deps = await productionDependencies(root, 'app');
    expect(summary(deps)).toEqual([
      `${p('node_modules', 'a')}@1.0.0`,
      `${p('node_modules', 'b')}@1.0.0`,
      `${p('node_modules', 'b', 'node_modules', 'a')}@2.0.0`,
      `${p('node_modules', 'c')}@1.0.0`,
      `${p('node_modules', 'c', 'node_modules', 'a')}@1.0.0`,
    ]);
    expect(deps[4]!.source).toBe(p(root, 'node_modules', 'b', 'node_modules', 'c', 'node_modules', 'a'));
  });
});
