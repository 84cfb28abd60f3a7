import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { productionDependencies } from '../../src/release/deps.js';
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

describe('productionDependencies', () => {
  it('follows dependencies transitively, hoisted or nested, and skips devDependencies', () => {
    const root = project();
    const app = path.join(root, 'apps', 'web');
    writeFiles(app, {
      'package.json': JSON.stringify({ name: 'web', version: '1.0.0', dependencies: { a: '1', '@s/b': '1' }, devDependencies: { dev: '1' } }),
    });
    installFakePackage(app, 'a', '1.0.0', { c: '1' });
    installFakePackage(app, 'dev', '1.0.0');
    installFakePackage(root, '@s/b', '2.0.0'); // hoisted to the workspace root
    installFakePackage(root, 'c', '3.0.0'); // needed by a, hoisted
    installFakePackage(root, 'unrelated', '1.0.0');
    installFakePackage(path.join(app, 'node_modules', 'a'), 'd', '4.0.0'); // nested, not required: not shipped
    const deps = productionDependencies(app, 'web');
    expect(deps.map((d) => [d.name, d.version, d.dest])).toEqual([
      ['@s/b', '2.0.0', path.join('node_modules', '@s', 'b')],
      ['a', '1.0.0', path.join('node_modules', 'a')],
      ['c', '3.0.0', path.join('node_modules', 'c')],
    ]);
  });

  it('keeps a nested copy where Node would find it', () => {
    const root = project();
    writeFiles(root, { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { a: '1', c: '2' } }) });
    installFakePackage(root, 'a', '1.0.0', { c: '1' });
    installFakePackage(root, 'c', '2.0.0');
    installFakePackage(path.join(root, 'node_modules', 'a'), 'c', '1.0.0');
    const deps = productionDependencies(root, 'app');
    expect(deps.map((d) => `${d.dest}@${d.version}`)).toEqual([
      `${path.join('node_modules', 'a')}@1.0.0`,
      `${path.join('node_modules', 'a', 'node_modules', 'c')}@1.0.0`,
      `${path.join('node_modules', 'c')}@2.0.0`,
    ]);
  });

  it('skips a missing optional dependency and names a missing required one', () => {
    const root = project();
    writeFiles(root, { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { gone: '1' }, optionalDependencies: { maybe: '1' } }) });
    expect(() => productionDependencies(root, 'app')).toThrow(/app app: dependency "gone" \(required by app\) is not installed; run `npm install`/);
    fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', optionalDependencies: { maybe: '1' } }));
    expect(productionDependencies(root, 'app')).toEqual([]);
  });
});
