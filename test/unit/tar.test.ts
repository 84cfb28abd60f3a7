import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { archiveMtime, makeTar, tarEntries } from '../../src/archive/tar.js';
import { tempDir, writeFiles } from '../helpers/project.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function tree(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  writeFiles(t.dir, { 'bin/app': '#!/bin/sh\necho hi\n', 'lib/a-1/x.js': 'x', 'lib/a-1/z/y.js': 'y', 'releases/1/r.json': '{}', 'releases/COOKIE': 'secret', 'tmp/pid': '1' });
  fs.chmodSync(path.join(t.dir, 'bin/app'), 0o755);
  return t.dir;
}

describe('makeTar', () => {
  const units = ['bin/app', 'lib/a-1', 'releases/1'];

  it('lists the units with their parents, sorted, and nothing else', () => {
    expect(tarEntries(tree(), units)).toEqual(['bin', 'bin/app', 'lib', 'lib/a-1', 'lib/a-1/x.js', 'lib/a-1/z', 'lib/a-1/z/y.js', 'releases', 'releases/1', 'releases/1/r.json']);
  });

  it('is byte-identical for the same content whatever the mtimes, and readable by system tar', async () => {
    const a = tree();
    const b = tree();
    fs.utimesSync(path.join(b, 'lib/a-1/x.js'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const out = tempDir();
    cleanups.push(out.cleanup);
    await makeTar(a, units, path.join(out.dir, 'a.tar.gz'));
    await makeTar(b, units, path.join(out.dir, 'b.tar.gz'));
    expect(sha(path.join(out.dir, 'a.tar.gz'))).toBe(sha(path.join(out.dir, 'b.tar.gz')));
    const listing = execFileSync('tar', ['tvzf', path.join(out.dir, 'a.tar.gz')], { encoding: 'utf8' });
    expect(listing).toMatch(/-rwxr-xr-x .* bin\/app/);
    expect(listing).not.toMatch(/COOKIE|tmp\/pid/);
  });

  it('honours SOURCE_DATE_EPOCH', () => {
    expect(archiveMtime({ SOURCE_DATE_EPOCH: '1700000000' }).getTime()).toBe(1700000000000);
    expect(archiveMtime({}).toISOString()).toBe('1980-01-01T00:00:00.000Z');
  });

  it('refuses to pack a unit that is missing', async () => {
    await expect(makeTar(tree(), ['nope'], '/tmp/never.tar.gz')).rejects.toThrow(/nope is missing/);
  });
});
