/**
 * The Kazoo workflow through the Makefile, verbatim (README, first lines): in a copy of this repository's
 * Makefile, rel/ and apps/ (sharing node_modules and dist), with the run and log directories,
 * ports and config of the test's own.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, tempDir, testCacheDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { Terminal } from '../helpers/tmux.js';

let work: { dir: string; cleanup: () => void };
let env: NodeJS.ProcessEnv;

/** Sets the mtime of every file under `p` (a file or a directory) to `when`. */
function setMtimes(p: string, when: Date): void {
  if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) setMtimes(path.join(p, e), when);
  else fs.utimesSync(p, when, when);
}

beforeAll(async () => {
  work = tempDir('noderel-make-');
  const copy = ['Makefile', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts', 'src', 'templates', 'rel', 'apps'];
  spawnSync('cp', ['-a', ...copy.map((f) => path.join(repoRoot, f)), work.dir]);
  for (const shared of ['node_modules', 'dist']) fs.symlinkSync(path.join(repoRoot, shared), path.join(work.dir, shared));
  env = {
    ...process.env,
    RELEASE_TMP: path.join(work.dir, 'run'),
    RUNNER_LOG_DIR: path.join(work.dir, 'logs'),
    ECALLMGR_PORT: String(await freePort()),
    CROSSBAR_PORT: String(await freePort()),
    NODEREL_CACHE_DIR: testCacheDir,
    MAKEFLAGS: '',
  };
  delete env.KAZOO_COOKIE;
  delete env.KAZOO_CONFIG;

  // node_modules and dist are the repository's own, shared with every other test: make in the
  // copy must neither `npm ci` (it would remove node_modules through the link) nor rebuild dist.
  // Their prerequisites in the copy (the files the Makefile's deps and dist rules list) are
  // made older than the repository's stamp and dist/cli/main.js, so make sees both up to date,
  // whatever was edited in the repository since they were made; `make -n` then proves it.
  const stamp = fs.statSync(path.join(repoRoot, 'node_modules/.package-lock.json'), { throwIfNoEntry: false });
  const built = fs.statSync(path.join(repoRoot, 'dist/cli/main.js'), { throwIfNoEntry: false });
  if (!stamp || !built) throw new Error('the repository has no node_modules/.package-lock.json or dist/cli/main.js: run `make build` there first');
  const older = new Date(Math.min(stamp.mtimeMs, built.mtimeMs) - 60_000);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'templates']) setMtimes(path.join(work.dir, f), older);
  const plan = spawnSync('make', ['-n', '--no-print-directory', 'build-release'], { cwd: work.dir, env, encoding: 'utf8' });
  expect(plan.status, plan.stderr).toBe(0);
  expect(plan.stdout, 'make in the copy would reinstall or rebuild the shared node_modules or dist').not.toMatch(/\bnpm\b/);
});

afterAll(() => {
  for (const node of fs.existsSync(env.RELEASE_TMP!) ? fs.readdirSync(env.RELEASE_TMP!) : []) {
    const pidFile = path.join(env.RELEASE_TMP!, node, 'node.pid');
    if (!fs.existsSync(pidFile)) continue;
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {
      // gone
    }
  }
  work.cleanup();
});

function make(args: string[], extra: NodeJS.ProcessEnv = {}) {
  return spawnSync('make', ['--no-print-directory', ...args], { cwd: work.dir, env: { ...env, ...extra }, encoding: 'utf8', timeout: 300_000 });
}

describe('the Kazoo workflow through make', () => {
  it('build-release, then start ecallmgr and kazoo_apps side by side, attach, stop', async () => {
    const build = make(['build-release']);
    expect(build.status, build.stderr).toBe(0);
    expect(build.stdout).not.toMatch(/^npm /m); // neither `npm ci` nor `npm run build` in the shared node_modules and dist
    expect(fs.existsSync(path.join(work.dir, '_rel/kazoo/bin/kazoo-4.3.0'))).toBe(true);

    // Trailing spaces in the variables are not carried into the launcher.
    const start = make(['release'], { REL: 'ecallmgr ', ACT: 'start ' });
    expect(start.status, start.stderr + start.stdout).toBe(0);
    expect(make(['release'], { REL: 'kazoo_apps', ACT: 'start' }).status).toBe(0);
    const ping = make(['release'], { REL: 'ecallmgr', ACT: 'ping' });
    expect(ping.stdout).toMatch(/^pong$/m);
    expect(make(['release'], { REL: 'kazoo_apps', ACT: 'ping' }).stdout).toMatch(/^pong$/m);

    const t = Terminal.start('make --no-print-directory release', { ...pick(env), REL: 'ecallmgr', ACT: 'attach' }, work.dir);
    try {
      await t.waitFor(/ecallmgr@\S+> $/m);
      t.type('node.type');
      await t.waitFor(/'ecallmgr'/);
      t.press('C-d');
      await t.waitFor(/\[exit 0\]/);
    } finally {
      t.close();
    }

    expect(make(['release'], { REL: 'ecallmgr', ACT: 'stop' }).status).toBe(0);
    const gone = make(['release'], { REL: 'ecallmgr', ACT: 'ping' });
    expect(gone.status).not.toBe(0);
    expect(gone.stderr).toMatch(/Node ecallmgr@\S+ is not running!/);
    expect(make(['release'], { REL: 'kazoo_apps', ACT: 'stop' }).status).toBe(0);

    // The launcher points V8's compile cache (Node >= 22.1: the demo pins 22.23.3) at each node's
    // own run directory; the nodes and the control commands filled it.
    for (const node of fs.readdirSync(env.RELEASE_TMP!).filter((n) => /^(ecallmgr|kazoo_apps)@/.test(n))) {
      const cache = path.join(env.RELEASE_TMP!, node, 'compile-cache');
      expect(fs.readdirSync(cache).flatMap((d) => fs.readdirSync(path.join(cache, d))).length, node).toBeGreaterThan(0);
    }
  });

  it('read-release-cookie reads the INI file with no node running, and names what it tried', () => {
    const ini = path.join(work.dir, 'config.ini');
    fs.writeFileSync(ini, '[kazoo_apps]\ncookie = apps-cookie\n\n[ecallmgr]\ncookie = fs-cookie\n', { mode: 0o600 });
    const apps = make(['read-release-cookie'], { KAZOO_CONFIG: ini });
    expect(apps.status, apps.stderr).toBe(0);
    expect(apps.stdout.trim()).toBe('apps-cookie');
    expect(make(['read-release-cookie'], { KAZOO_CONFIG: ini, REL: 'ecallmgr' }).stdout.trim()).toBe('fs-cookie');
    fs.writeFileSync(ini, '[kazoo_apps]\ncookie = apps-cookie\n', { mode: 0o600 });
    const noSection = make(['read-release-cookie'], { KAZOO_CONFIG: ini, REL: 'ecallmgr' });
    expect(noSection.status).not.toBe(0);
    expect(noSection.stderr).toMatch(/no \[ecallmgr\] section in .*config\.ini/);
    const noFile = make(['read-release-cookie'], { KAZOO_CONFIG: path.join(work.dir, 'missing.ini') });
    expect(noFile.status).not.toBe(0);
    expect(noFile.stderr).toMatch(/missing\.ini/);
  });
});

/** The variables a tmux shell needs from the test environment. */
function pick(e: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const keys = ['RELEASE_TMP', 'RUNNER_LOG_DIR', 'ECALLMGR_PORT', 'CROSSBAR_PORT', 'NODEREL_CACHE_DIR'];
  return Object.fromEntries(keys.map((k) => [k, e[k]]));
}
