/**
 * Installing noderel itself (issue 9, item 7): it is compiled once. `make` on a fresh clone ran
 * `npm ci`, whose prepare script built noderel, and then built it again; installs from git (and
 * `npm ci` in a clone, before `npm pack`) build through that prepare script. The tarball route of
 * the README is exercised in build.test.ts ("installs from a packed tarball and works through npx").
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from '../helpers/project.js';

const work = tempDir('noderel-fresh-clone-');
afterAll(() => work.cleanup());

describe('noderel is built once', () => {
  it('make build on a fresh clone: npm ci runs no build, then one build', () => {
    // What a clone holds (no node_modules, no dist), mtimes as checked out.
    const files = ['Makefile', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts', 'src', 'templates', 'rel', 'apps'];
    spawnSync('cp', ['-a', ...files.map((f) => path.join(repoRoot, f)), work.dir]);
    const r = spawnSync('make', ['-n', '--no-print-directory', 'build'], { cwd: work.dir, encoding: 'utf8', env: { ...process.env, MAKEFLAGS: '' } });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    // npm ci without the package's prepare script (which is `npm run build`) ...
    expect(lines.filter((l) => /^npm ci\b/.test(l))).toEqual(['npm ci --ignore-scripts --no-audit --no-fund']);
    // ... and the one build.
    expect(lines.filter((l) => /\bnpm run\b.*\bbuild\b|\btsc\b/.test(l))).toEqual(['npm run --silent build']);
  });

  it('a plain npm ci by hand builds dist/ after writing the stamp make checks: make has nothing left to build', () => {
    fs.mkdirSync(path.join(work.dir, 'node_modules'), { recursive: true });
    fs.mkdirSync(path.join(work.dir, 'dist', 'cli'), { recursive: true });
    const stamp = path.join(work.dir, 'node_modules', '.package-lock.json');
    const main = path.join(work.dir, 'dist', 'cli', 'main.js');
    fs.writeFileSync(stamp, '{}\n');
    fs.writeFileSync(main, '');
    // npm ci writes its hidden lockfile, then runs prepare; both after every source file.
    const later = Date.now() / 1000 + 100;
    fs.utimesSync(stamp, later, later);
    fs.utimesSync(main, later + 10, later + 10);
    const r = spawnSync('make', ['-n', '--no-print-directory', 'build'], { cwd: work.dir, encoding: 'utf8', env: { ...process.env, MAKEFLAGS: '' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/\bnpm (ci|run)\b|\btsc\b/);
  });

  it('the package builds itself when npm installs it from git or a clone: prepare is `npm run build`, and it packs dist/ and templates/', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string>; files: string[]; bin: Record<string, string> };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'templates']));
    expect(pkg.bin.noderel).toBe('dist/cli/main.js');
  });
});
