/**
 * After any rebuild the release holds exactly one runtime and nothing stale: a rebuild
 * with another runtime, another app version or another noderel leaves nothing of the old one
 * in node-*, lib/ or bin/, while other installed versions, run state (tmp/) and logs (log/)
 * are kept. The pinned runtime 22.23.3 comes from the shared test cache (see runtime.test.ts).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minimalProject, noderel, writeFiles } from '../helpers/project.js';

const cleanups: (() => void)[] = [];
afterAll(() => {
  while (cleanups.length) cleanups.pop()!();
});

const PINNED = '22.23.3';
const SYSTEM = process.versions.node;

function build(dir: string, args: string[]): string {
  const r = noderel(dir, ['build', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

const ls = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

describe('a rebuild leaves exactly one runtime and nothing stale', () => {
  let dir: string;
  let rel: string;
  beforeAll(() => {
    const t = minimalProject();
    cleanups.push(t.cleanup);
    dir = t.dir;
    rel = path.join(dir, '_rel', 'mini');
    build(dir, ['-q', '--runtime', 'system']);
    // Run state and logs of a node that ran the first build: never touched by a rebuild.
    writeFiles(rel, { 'tmp/web@host/node.pid': '123\n', 'log/web@host/console.log': 'a line\n' });
  });

  it('building with another runtime removes the old one (regression: node-<old>/ was left beside the new one)', () => {
    expect(ls(rel).filter((d) => d.startsWith('node-'))).toEqual([`node-${SYSTEM}`]);
    const out = build(dir, ['--runtime', PINNED]);
    expect(ls(rel).filter((d) => d.startsWith('node-'))).toEqual([`node-${PINNED}`]);
    expect(out).toMatch(new RegExp(`^\\* removed what no installed version uses: node-${SYSTEM.replace(/\./g, '\\.')}$`, 'm'));
    expect(fs.readFileSync(path.join(rel, 'tmp/web@host/node.pid'), 'utf8')).toBe('123\n');
    expect(fs.readFileSync(path.join(rel, 'log/web@host/console.log'), 'utf8')).toBe('a line\n');
    expect(fs.readFileSync(path.join(rel, 'releases/start.data'), 'utf8')).toBe(`${PINNED} 1.0.0\n`);
    // The rebuilt release still runs with the runtime it has.
    const v = spawnSync(path.join(rel, 'bin/mini'), ['versions'], { encoding: 'utf8' });
    expect(v.stdout.trim()).toBe(`* mini 1.0.0 (node ${PINNED})`);
  });

  it('a new app version or release version leaves no stale lib/ dir or launcher, and keeps installed versions', () => {
    // Another installed version (as `upgrade` unpacks one) keeps everything it uses.
    build(dir, ['-q', '--runtime', 'system', '--rel-version', '0.9.0']);
    expect(ls(rel).filter((d) => d.startsWith('node-'))).toEqual([`node-${PINNED}`, `node-${SYSTEM}`].sort());
    expect(ls(path.join(rel, 'bin'))).toEqual(['mini', 'mini-0.9.0', 'mini-1.0.0']);

    // The app's version changes and 1.0.0 is rebuilt: its old lib/greeter-<vsn> goes, 0.9.0's stays.
    const pkgFile = path.join(dir, 'apps/greeter/package.json');
    const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { version: string };
    const oldApp = `greeter-${pkg.version}`;
    expect(ls(path.join(rel, 'lib'))).toContain(oldApp);
    fs.writeFileSync(pkgFile, JSON.stringify({ ...pkg, version: '9.9.9' }));
    build(dir, ['-q', '--runtime', PINNED]);
    expect(ls(path.join(rel, 'lib'))).toEqual([oldApp, 'greeter-9.9.9', 'noderel-0.1.0'].sort()); // oldApp: 0.9.0 uses it

    // 0.9.0 is uninstalled by hand; the next build removes what only it used.
    fs.rmSync(path.join(rel, 'releases/0.9.0'), { recursive: true });
    const out = build(dir, ['--runtime', PINNED]);
    expect(out).toMatch(new RegExp(`^\\* removed what no installed version uses: bin/mini-0\\.9\\.0, lib/${oldApp.replace(/\./g, '\\.')}, node-${SYSTEM.replace(/\./g, '\\.')}$`, 'm'));
    expect(ls(rel).filter((d) => d.startsWith('node-'))).toEqual([`node-${PINNED}`]);
    expect(ls(path.join(rel, 'lib'))).toEqual(['greeter-9.9.9', 'noderel-0.1.0']);
    expect(ls(path.join(rel, 'bin'))).toEqual(['mini', 'mini-1.0.0']);
    expect(ls(rel)).toEqual(expect.arrayContaining(['tmp', 'log']));
  });

  it('removes a stale noderel runtime and leftovers of an interrupted swap, never a file it did not write', () => {
    fs.cpSync(path.join(rel, 'lib/noderel-0.1.0'), path.join(rel, 'lib/noderel-0.0.9'), { recursive: true });
    fs.mkdirSync(path.join(rel, 'lib/greeter-9.9.9.old-4242'));
    fs.mkdirSync(path.join(rel, 'node-18.0.0'));
    writeFiles(rel, { 'bin/mini-tool': '#!/bin/sh\necho mine\n', 'bin/other-1.0.0': '#!/bin/sh\nREL_NAME="other"\n', 'node-notes/readme': 'mine' });
    const out = build(dir, ['--runtime', PINNED]);
    expect(out).toMatch(/^\* removed what no installed version uses: lib\/greeter-9\.9\.9\.old-4242, lib\/noderel-0\.0\.9, node-18\.0\.0$/m);
    expect(ls(path.join(rel, 'bin'))).toEqual(['mini', 'mini-1.0.0', 'mini-tool', 'other-1.0.0']);
    expect(fs.existsSync(path.join(rel, 'node-notes/readme'))).toBe(true);
  });

  it('removes nothing while an installed manifest cannot be read, and says why', () => {
    fs.mkdirSync(path.join(rel, 'node-18.0.0'));
    writeFiles(rel, { 'releases/0.1.0/release.json': '{ not json' });
    const r = noderel(dir, ['build', '--runtime', PINNED]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^warning: nothing stale was removed from .*: releases\/0\.1\.0\/release\.json is not readable JSON/m);
    expect(fs.existsSync(path.join(rel, 'node-18.0.0'))).toBe(true);
  });
});
