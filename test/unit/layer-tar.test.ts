/**
 * The image layer tar writer (src/image/layer-tar.ts) read back by the system's GNU tar, and by
 * our own header walk; and which layer each release path goes to (src/image/layers.ts).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { layerTar, listTar, type LayerEntry } from '../../src/image/layer-tar.js';
import { layerOf, releaseLayers, imagePaths, IMAGE_UID } from '../../src/image/layers.js';
import { tempDir } from '../helpers/project.js';

const t = tempDir('noderel-layer-tar-');
afterAll(() => t.cleanup());

const longDir = `opt/app/lib/${'d'.repeat(60)}/${'e'.repeat(60)}`;
const longName = `${longDir}/${'f'.repeat(120)}.js`;
const entries: LayerEntry[] = [
  { type: 'dir', path: 'opt', mode: 0o755, uid: 0, gid: 0 },
  { type: 'dir', path: 'opt/app', mode: 0o755, uid: 0, gid: 0 },
  { type: 'file', path: 'opt/app/run.sh', mode: 0o755, uid: 0, gid: 0, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'symlink', path: 'opt/app/current', target: 'run.sh', uid: 0, gid: 0 },
  { type: 'dir', path: 'var/lib/app', mode: 0o750, uid: 65532, gid: 65532 },
  { type: 'file', path: longName, mode: 0o644, uid: 0, gid: 0, data: Buffer.alloc(1000, 'x') },
  { type: 'file', path: 'opt/app/empty', mode: 0o644, uid: 0, gid: 0, data: Buffer.alloc(0) },
];

describe('layerTar', () => {
  it('writes a tar GNU tar lists with the owners, modes, link and long names given', () => {
    const file = path.join(t.dir, 'layer.tar');
    fs.writeFileSync(file, layerTar(entries, 315532800));
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toHaveLength(entries.length);
    expect(listing[0]).toMatch(/^drwxr-xr-x 0\/0 +0 1980-01-01 00:00 opt\/$/);
    expect(listing[2]).toMatch(/^-rwxr-xr-x 0\/0 +18 1980-01-01 00:00 opt\/app\/run\.sh$/);
    expect(listing[3]).toMatch(/^lrwxrwxrwx 0\/0 +0 1980-01-01 00:00 opt\/app\/current -> run\.sh$/);
    expect(listing[4]).toMatch(/^drwxr-x--- 65532\/65532 +0 1980-01-01 00:00 var\/lib\/app\/$/);
    expect(listing[5]).toContain(` 1000 1980-01-01 00:00 ${longName}`);
    const out = path.join(t.dir, 'x');
    fs.mkdirSync(out);
    execFileSync('tar', ['-xf', file, '-C', out]);
    expect(fs.readFileSync(path.join(out, longName)).length).toBe(1000);
    expect(fs.readFileSync(path.join(out, 'opt/app/run.sh'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
  });

  it('gives the same bytes for the same entries, and other bytes for another mtime', () => {
    expect(layerTar(entries, 0).equals(layerTar(entries, 0))).toBe(true);
    expect(layerTar(entries, 0).equals(layerTar(entries, 1))).toBe(false);
  });

  it('is read back by listTar, plain or gzipped', () => {
    const tar = layerTar(entries, 0);
    const paths = listTar(tar).map((e) => `${e.type} ${e.path}`);
    expect(paths).toEqual(listTar(gzipSync(tar)).map((e) => `${e.type} ${e.path}`));
    expect(paths).toContain(`file ${longName}`);
    expect(listTar(tar).find((e) => e.path === 'opt/app/current')?.linkname).toBe('run.sh');
  });

  it('listTar reads what GNU tar writes (./ prefixes, long names)', () => {
    const src = path.join(t.dir, 'gnu');
    fs.mkdirSync(path.join(src, 'usr/lib/x86_64-linux-gnu', 'z'.repeat(110)), { recursive: true });
    fs.writeFileSync(path.join(src, 'usr/lib/x86_64-linux-gnu/libc.so.6'), '');
    const file = path.join(t.dir, 'gnu.tar');
    execFileSync('tar', ['-cf', file, '-C', src, '.']);
    const paths = listTar(fs.readFileSync(file)).map((e) => e.path);
    expect(paths).toContain('usr/lib/x86_64-linux-gnu/libc.so.6');
    expect(paths).toContain(`usr/lib/x86_64-linux-gnu/${'z'.repeat(110)}`);
  });
});

describe('release layers', () => {
  it('puts each release path in the layer of its rate of change', () => {
    expect(layerOf('node-22.23.3/bin/node')).toBe('runtime');
    expect(layerOf('lib/crossbar-4.3.0/node_modules/yaml/index.js')).toBe('dependencies');
    expect(layerOf('lib/crossbar-4.3.0/src/app.js')).toBe('code');
    expect(layerOf('lib/noderel-0.1.0/boot.js')).toBe('code');
    expect(layerOf('bin/kazoo')).toBe('code');
    expect(layerOf('releases/4.3.0/vm.args')).toBe('config');
    expect(layerOf('etc/config.ini.example')).toBe('config');
  });

  it('makes every layer unpack on its own, root-owned, with the writable directories for the image user', () => {
    const rel = path.join(t.dir, 'rel');
    const files: Record<string, string> = {
      'node-22.0.0/bin/node': 'ELF',
      'lib/app-1.0.0/index.js': 'x',
      'lib/app-1.0.0/node_modules/dep/index.js': 'y',
      'bin/app': '#!/bin/sh',
      'releases/1.0.0/release.json': '{}',
    };
    for (const [p, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(rel, p)), { recursive: true });
      fs.writeFileSync(path.join(rel, p), text, { mode: p.startsWith('bin/') ? 0o755 : 0o644 });
    }
    const layers = releaseLayers(rel, ['node-22.0.0', 'lib/app-1.0.0', 'bin/app', 'releases/1.0.0'], imagePaths('app'));
    const paths = (k: keyof typeof layers) => layers[k].map((e) => e.path);
    expect(paths('runtime')).toEqual(['opt', 'opt/app', 'opt/app/node-22.0.0', 'opt/app/node-22.0.0/bin', 'opt/app/node-22.0.0/bin/node']);
    expect(paths('dependencies')).toEqual(['opt', 'opt/app', 'opt/app/lib', 'opt/app/lib/app-1.0.0', 'opt/app/lib/app-1.0.0/node_modules', 'opt/app/lib/app-1.0.0/node_modules/dep', 'opt/app/lib/app-1.0.0/node_modules/dep/index.js']);
    expect(paths('code')).toEqual(['opt', 'opt/app', 'opt/app/bin', 'opt/app/bin/app', 'opt/app/lib', 'opt/app/lib/app-1.0.0', 'opt/app/lib/app-1.0.0/index.js']);
    expect(paths('config')).toEqual(expect.arrayContaining(['opt/app/releases/1.0.0/release.json', 'var/lib/app/tmp', 'var/log/app']));
    const writable = layers.config.filter((e) => e.uid === IMAGE_UID).map((e) => e.path);
    expect(writable.sort()).toEqual(['var/lib/app/tmp', 'var/log/app']);
    for (const k of ['runtime', 'dependencies', 'code'] as const) expect(layers[k].every((e) => e.uid === 0)).toBe(true);
    expect(layers.code.find((e) => e.path === 'opt/app/bin/app')).toMatchObject({ mode: 0o755 });
  });
});
