/**
 * Builds real releases from fixture projects in temp dirs and boots them: the release layout (docs/release-layout.md),
 * production dependencies only, the launcher's foreground/escript/versions/help, reproducible
 * tarballs that run where they are unpacked, and `noderel init` on plain programs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFixture, installFakePackage, listTree, minimalProject as minimalFixture, noderel, tempDir, writeFiles } from '../helpers/project.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';
import { freePort } from '../helpers/ports.js';
import { httpGet } from '../helpers/sandbox.js';

useChildProcesses();
const cleanups: (() => void)[] = [];
afterAll(() => {
  while (cleanups.length) cleanups.pop()!();
});

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const get = httpGet;

function minimalProject(): string {
  const t = minimalFixture();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Runs `bin/<name> foreground` until the probe file appears; then TERM and a clean exit. */
async function bootAndProbe(releaseDir: string, name: string, env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> {
  const probe = path.join(releaseDir, 'tmp', 'probe.json');
  const node = spawnChild(path.join(releaseDir, 'bin', name), ['foreground'], {
    env: { ...process.env, GREETER_PROBE: probe, ...env },
  });
  await node.waitForOutput(/ready \(mini 1\.0\.0, apps: greeter\)/);
  const data = JSON.parse(fs.readFileSync(probe, 'utf8')) as Record<string, unknown>;
  node.signal('SIGTERM');
  expect((await node.waitForExit()).code).toBe(0);
  return data;
}

describe('noderel build on a fixture project', () => {
  let dir: string;
  let rel: string;
  beforeAll(() => {
    dir = minimalProject();
    const r = noderel(dir, ['build']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\* assembling mini-1\.0\.0$/m);
    expect(r.stdout).toMatch(/Release mini-1\.0\.0 \(node \d+\.\d+\.\d+\) is ready in _rel\/mini/);
    rel = path.join(dir, '_rel', 'mini');
  });

  it('writes the release layout of docs/release-layout.md', () => {
    const files = listTree(rel);
    const nodeVsn = process.versions.node;
    expect(files).toEqual(
      expect.arrayContaining([
        'bin/mini',
        'bin/mini-1.0.0',
        `node-${nodeVsn}/bin/node`,
        'lib/greeter-0.3.0/package.json',
        'lib/greeter-0.3.0/src/app.js',
        'lib/greeter-0.3.0/node_modules/shout/index.js',
        'lib/greeter-0.3.0/node_modules/caps/index.js',
        'lib/noderel-0.1.0/boot.js',
        'lib/noderel-0.1.0/ctl.js',
        'lib/noderel-0.1.0/package.json',
        'releases/1.0.0/release.json',
        'releases/1.0.0/config.yaml',
        'releases/1.0.0/vm.args',
        'releases/1.0.0/sys.config',
        'releases/start.data',
        'releases/COOKIE',
      ]),
    );
    expect(files.filter((f) => f.includes('devonly'))).toEqual([]);
    expect(fs.readFileSync(path.join(rel, 'bin/mini'))).toEqual(fs.readFileSync(path.join(rel, 'bin/mini-1.0.0')));
    expect(fs.statSync(path.join(rel, 'releases/COOKIE')).mode & 0o777).toBe(0o400);
    expect(fs.readFileSync(path.join(rel, 'releases/COOKIE'), 'utf8')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fs.readFileSync(path.join(rel, 'releases/start.data'), 'utf8')).toBe(`${nodeVsn} 1.0.0\n`);
    const version = execFileSync(path.join(rel, `node-${nodeVsn}/bin/node`), ['--version'], { encoding: 'utf8' }).trim();
    expect(version).toBe(`v${nodeVsn}`);
    // The shipped runtime depends on nothing but Node built-ins.
    for (const f of files.filter((x) => x.startsWith('lib/noderel-') && x.endsWith('.js'))) {
      const code = fs.readFileSync(path.join(rel, f), 'utf8');
      expect(code).not.toMatch(/^import |^export /m);
      for (const m of code.matchAll(/require\(["']([^"']+)["']\)/g)) {
        expect(m[1], `${f} requires ${m[1]}`).toMatch(/^node:/);
      }
    }
  });

  it('keeps ${VAR} in the shipped vm.args and writes sys.config as JSON', () => {
    expect(fs.readFileSync(path.join(rel, 'releases/1.0.0/vm.args'), 'utf8')).toContain('-env GREETING ${GREETING:-hello}');
    expect(JSON.parse(fs.readFileSync(path.join(rel, 'releases/1.0.0/sys.config'), 'utf8'))).toEqual({ greeter: { port: 0 } });
  });

  it('boots in the foreground with its config, dependencies and vm.args environment', async () => {
    const probe = await bootAndProbe(rel, 'mini');
    expect(probe).toMatchObject({ greeting: 'HELLO!', config: { port: 0 } });
    const again = await bootAndProbe(rel, 'mini', { GREETING: 'bonjour' });
    expect(again.greeting).toBe('BONJOUR!');
    // The substituted copy lives in the node's own run directory, never in place.
    const perNode = fs.readdirSync(path.join(rel, 'tmp')).filter((d) => d.startsWith('web@'));
    expect(perNode).toHaveLength(1);
    expect(fs.readFileSync(path.join(rel, 'tmp', perNode[0]!, 'vm.args'), 'utf8')).toContain('-env GREETING bonjour');
  });

  it('an unset ${VAR} without a default stops the launch with its name', () => {
    writeFiles(rel, { 'releases/1.0.0/vm.args': '-env X ${NODEREL_SURELY_UNSET}\n' });
    try {
      const r = spawnSync(path.join(rel, 'bin/mini'), ['foreground'], { encoding: 'utf8', env: { ...process.env, NODEREL_SURELY_UNSET: undefined } });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/\$\{NODEREL_SURELY_UNSET\} is not set and has no default; set NODEREL_SURELY_UNSET or write/);
    } finally {
      expect(noderel(dir, ['build', '-q']).code).toBe(0);
    }
  });

  it('runs escript, versions and help without a running node', () => {
    writeFiles(dir, { 'script.cjs': "console.log('escript', require.main === module, process.env.GREETING, process.argv.slice(2).join(','));\nprocess.exit(3);\n" });
    const r = spawnSync(path.join(rel, 'bin/mini'), ['escript', path.join(dir, 'script.cjs'), 'a', 'b'], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('escript true hello a,b');
    expect(r.status).toBe(3);
    const v = spawnSync(path.join(rel, 'bin/mini'), ['versions'], { encoding: 'utf8' });
    expect(v.stdout.trim()).toBe(`* mini 1.0.0 (node ${process.versions.node})`);
    const h = spawnSync(path.join(rel, 'bin/mini'), ['help'], { encoding: 'utf8' });
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/foreground/);
    const u = spawnSync(path.join(rel, 'bin/mini'), ['frobnicate'], { encoding: 'utf8' });
    expect(u.status).toBe(1);
    expect(u.stderr).toMatch(/^Unknown command: frobnicate\nUsage:/);
    const t = spawnSync(path.join(rel, 'bin/mini'), ['foreground'], { encoding: 'utf8', env: { ...process.env, REL: 'nope' } });
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/Unknown node type "nope" \(from REL\); known: web/);
  });

  it('the launcher works through a symlink and passes shellcheck', () => {
    const link = path.join(dir, 'mini-link');
    fs.symlinkSync(path.join(rel, 'bin/mini'), link);
    const v = spawnSync(link, ['versions'], { encoding: 'utf8' });
    expect(v.stdout).toMatch(/\* mini 1\.0\.0/);
    const sc = spawnSync('shellcheck', ['-s', 'sh', path.join(rel, 'bin/mini')], { encoding: 'utf8' });
    expect(sc.error, 'shellcheck must be installed (apt-get install shellcheck)').toBeUndefined();
    expect(sc.stdout + sc.stderr).toBe('');
    expect(sc.status).toBe(0);
  });

  it('a rebuild keeps the cookie; --dry-run writes nothing', () => {
    const cookie = fs.readFileSync(path.join(rel, 'releases/COOKIE'), 'utf8');
    expect(noderel(dir, ['build', '-q']).code).toBe(0);
    expect(fs.readFileSync(path.join(rel, 'releases/COOKIE'), 'utf8')).toBe(cookie);
    const before = listTree(path.join(dir, '_rel'));
    const dry = noderel(dir, ['build', '--dry-run', '--rel-version', '9.9.9']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^write releases\/9\.9\.9\/release\.json/m);
    expect(listTree(path.join(dir, '_rel'))).toEqual(before);
  });

  it('builds a second version side by side', () => {
    expect(noderel(dir, ['build', '-q', '--rel-version', '1.1.0']).code).toBe(0);
    const v = spawnSync(path.join(rel, 'bin/mini'), ['versions'], { encoding: 'utf8' });
    expect(v.stdout.split('\n').filter(Boolean)).toEqual([`  mini 1.0.0 (node ${process.versions.node})`, `* mini 1.1.0 (node ${process.versions.node})`]);
    expect(fs.existsSync(path.join(rel, 'bin/mini-1.0.0'))).toBe(true);
    expect(fs.existsSync(path.join(rel, 'bin/mini-1.1.0'))).toBe(true);
  });

  it('noderel config prints the final config as YAML', () => {
    writeFiles(dir, { 'rel/relx.config.script': "export default (CONFIG, { env }) => ({ ...CONFIG, release: { ...CONFIG.release, version: env.MINI_VSN ?? '7.0.0' } });\n" });
    const r = noderel(dir, ['config'], { MINI_VSN: '3.2.1' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^release:\n {2}name: mini\n {2}version: 3\.2\.1$/m);
    expect(r.stdout).toMatch(/node_types:\n {2}web:\n {4}apps:\n {6}- greeter/);
    fs.rmSync(path.join(dir, 'rel/relx.config.script'));
  });
});

describe('noderel tar', () => {
  it('is byte-identical across two builds of the same inputs, and the unpacked tarball runs', async () => {
    const a = minimalProject();
    const b = minimalProject();
    const ra = noderel(a, ['tar', '-q']);
    expect(ra.code, ra.stderr).toBe(0);
    expect(noderel(b, ['tar', '-q']).code).toBe(0);
    const ta = path.join(a, '_rel', 'mini-1.0.0.tar.gz');
    const tb = path.join(b, '_rel', 'mini-1.0.0.tar.gz');
    expect(sha256(ta)).toBe(sha256(tb));
    // Build again in the same project: still the same bytes.
    expect(noderel(a, ['tar', '-q']).code).toBe(0);
    expect(sha256(ta)).toBe(sha256(tb));

    const listing = execFileSync('tar', ['tzf', ta], { encoding: 'utf8' }).split('\n');
    expect(listing).toContain('bin/mini');
    expect(listing).toContain('releases/start.data');
    expect(listing.filter((l) => /COOKIE|^tmp\/|^log\//.test(l))).toEqual([]);

    const where = tempDir('noderel-unpacked-');
    cleanups.push(where.cleanup);
    execFileSync('tar', ['xzf', ta, '-C', where.dir]);
    const probe = await bootAndProbe(where.dir, 'mini');
    expect(probe.greeting).toBe('HELLO!');
  });
});

describe('noderel init on projects that know nothing of noderel', () => {
  it('a CommonJS program: main module, readiness by port, production deps only', async () => {
    const t = copyFixture('plain-cjs');
    cleanups.push(t.cleanup);
    installFakePackage(t.dir, 'tiny-dep', '1.0.0', {}, "module.exports = { name: 'tiny' };\n");
    installFakePackage(t.dir, 'big-dev-tool', '9.0.0');
    const port = await freePort();
    const init = noderel(t.dir, ['init', '--port', String(port)]);
    expect(init.code, init.stderr).toBe(0);
    expect(fs.readFileSync(path.join(t.dir, 'rel/relx.config'), 'utf8')).toMatch(/name: hello-plain\n {2}version: 1\.2\.3/);
    expect(noderel(t.dir, ['init']).code).toBe(1); // refuses to overwrite
    const build = noderel(t.dir, ['build']);
    expect(build.code, build.stderr).toBe(0);
    const rel = path.join(t.dir, '_rel', 'hello-plain');
    expect(listTree(rel).filter((f) => f.includes('node_modules'))).toEqual(['lib/hello-plain-1.2.3/node_modules/tiny-dep/index.js', 'lib/hello-plain-1.2.3/node_modules/tiny-dep/package.json']);
    const node = spawnChild(path.join(rel, 'bin', 'hello-plain'), ['foreground'], { env: { ...process.env, PORT: String(port) } });
    await node.waitForOutput(/node hello-plain@\S+ ready/);
    expect(JSON.parse((await get(port)).body)).toEqual({ main: true, tiny: 'tiny' });
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('an ESM program: main module, readiness by output pattern', async () => {
    const t = copyFixture('plain-esm');
    cleanups.push(t.cleanup);
    const port = await freePort();
    expect(noderel(t.dir, ['init', '--ready-output', 'esm ready on \\d+']).code).toBe(0);
    expect(noderel(t.dir, ['build', '-q']).code).toBe(0);
    const node = spawnChild(path.join(t.dir, '_rel/hello-esm/bin/hello-esm'), ['foreground'], { env: { ...process.env, PORT: String(port) } });
    await node.waitForOutput(/node hello-esm@\S+ ready/);
    expect((await get(port)).body).toBe('esm main');
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('installs from a packed tarball and works through npx', () => {
    const t = copyFixture('plain-esm');
    cleanups.push(t.cleanup);
    const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
    const packDir = tempDir('noderel-pack-');
    cleanups.push(packDir.cleanup);
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir.dir], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { filename: string }[];
    const tgz = path.join(packDir.dir, packed[0]!.filename);
    execFileSync('npm', ['install', '-D', '--no-audit', '--no-fund', tgz], { cwd: t.dir, stdio: 'ignore' });
    expect(spawnSync('npx', ['noderel', 'init'], { cwd: t.dir, encoding: 'utf8' }).status).toBe(0);
    const build = spawnSync('npx', ['noderel', 'build'], { cwd: t.dir, encoding: 'utf8', env: { ...process.env } });
    expect(build.status, build.stderr).toBe(0);
    expect(fs.existsSync(path.join(t.dir, '_rel/hello-esm/bin/hello-esm'))).toBe(true);
    // noderel is a devDependency of the project: it must not ship inside the release.
    expect(listTree(path.join(t.dir, '_rel/hello-esm/lib')).filter((f) => f.includes('node_modules'))).toEqual([]);
  });
});

