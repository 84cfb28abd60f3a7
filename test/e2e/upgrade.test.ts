/**
 * Upgrades with two real versions of the demo release built by the test (issue 4): `upgrade`
 * from a tarball and `downgrade` back with no failed request, USR2 to a version whose app fails
 * to start (the old master keeps serving, nothing fails), and the unicorn procedure by hand:
 * USR2, WINCH, QUIT; and the rollback after WINCH: HUP the old master, QUIT the new one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { noderel, repoRoot, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { alive, cleanupSandboxes, httpGet, sandbox, waitFor, type Sandbox } from '../helpers/sandbox.js';

let project: { dir: string; cleanup: () => void };
let rel: string;
let bin: string;
const tarballs = tempDir('noderel-tarballs-');

/** Builds the demo release of this repository as VSN into `out` (a tarball), optionally broken. */
function buildVersion(vsn: string, broken = false): string {
  const src = tempDir(`noderel-kazoo-${vsn}-`);
  try {
    for (const d of ['rel', 'apps']) fs.cpSync(path.join(repoRoot, d), path.join(src.dir, d), { recursive: true });
    // New app versions (lib/ directories are keyed by app version, as in relx) that fail.
    for (const name of broken ? ['crossbar', 'ecallmgr'] : []) {
      const pkg = path.join(src.dir, `apps/${name}/package.json`);
      fs.writeFileSync(pkg, fs.readFileSync(pkg, 'utf8').replace(/"version": "[^"]+"/, `"version": "${vsn}"`));
      const app = path.join(src.dir, `apps/${name}/src/app.js`);
      fs.writeFileSync(app, fs.readFileSync(app, 'utf8').replace('export async function start(ctx) {', `export async function start(ctx) {\n  throw new Error('${name} of the broken version refuses to start');`));
    }
    const r = noderel(src.dir, ['tar', '-q', '--rel-version', vsn, '--output', tarballs.dir, '--force']);
    expect(r.code, r.stderr).toBe(0);
    return path.join(tarballs.dir, `kazoo-${vsn}.tar.gz`);
  } finally {
    src.cleanup();
  }
}

beforeAll(() => {
  project = tempDir('noderel-kazoo-');
  for (const d of ['rel', 'apps']) fs.cpSync(path.join(repoRoot, d), path.join(project.dir, d), { recursive: true });
  const r = noderel(project.dir, ['build', '-q']);
  expect(r.code, r.stderr).toBe(0);
  rel = path.join(project.dir, '_rel', 'kazoo');
  bin = path.join(rel, 'bin', 'kazoo');
  fs.copyFileSync(buildVersion('4.3.1'), path.join(rel, 'releases', 'kazoo-4.3.1.tar.gz'));
  fs.copyFileSync(buildVersion('4.3.9', true), path.join(rel, 'releases', 'kazoo-4.3.9.tar.gz'));
});
afterAll(() => {
  project?.cleanup();
  tarballs.cleanup();
});
afterEach(cleanupSandboxes);

/** GET / in a loop (a fresh connection each time) until stopped; counts answers by version. */
function traffic(s: Sandbox) {
  let running = true;
  const versions = new Map<string, number>();
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const r = await httpGet(s.port, '/');
        if (r.status !== 200) failures.push(`HTTP ${r.status}`);
        else {
          const v = (JSON.parse(r.body) as { version: string }).version;
          versions.set(v, (versions.get(v) ?? 0) + 1);
        }
      } catch (err) {
        failures.push(String(err));
      }
    }
  })();
  return {
    versions,
    failures,
    seen: (v: string) => (versions.get(v) ?? 0) > 0,
    async stop() {
      running = false;
      await loop;
    },
  };
}

const current = () => fs.readFileSync(path.join(rel, 'releases/start.data'), 'utf8').trim().split(' ')[1];

describe('upgrade and downgrade', () => {
  it('upgrade from a tarball and downgrade back, with no failed request', async () => {
    const s = await sandbox(bin, 'kazoo_apps', 'CROSSBAR_PORT');
    expect(s.run(['start']).status).toBe(0);
    const load = traffic(s);
    await waitFor(() => load.seen('4.3.0'), 'traffic on 4.3.0');
    const up = await s.runAsync(['upgrade', '4.3.1']);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/unpacked releases\/kazoo-4\.3\.1\.tar\.gz/);
    expect(up.stdout).toMatch(/node kazoo_apps@\S+ upgraded from 4\.3\.0 to 4\.3\.1 \(pid \d+\)/);
    await waitFor(() => load.seen('4.3.1'), 'traffic on 4.3.1');
    expect(current()).toBe('4.3.1');
    expect(s.run(['versions']).stdout).toMatch(/^\* kazoo 4\.3\.1 \(node 22\.\d+\.\d+\) running: kazoo_apps@/m);
    expect(JSON.parse(s.run(['status', '--json']).stdout).version).toBe('4.3.1');
    const down = await s.runAsync(['downgrade', '4.3.0']);
    expect(down.status, down.stderr).toBe(0);
    const before = load.versions.get('4.3.0') ?? 0;
    await waitFor(() => (load.versions.get('4.3.0') ?? 0) > before, 'traffic on 4.3.0 again');
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(current()).toBe('4.3.0');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a new version whose app fails to start: upgrade fails, the old master keeps serving, nothing fails', async () => {
    const s = await sandbox(bin, 'kazoo_apps', 'CROSSBAR_PORT');
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const load = traffic(s);
    await waitFor(() => load.seen('4.3.0'), 'traffic');
    const up = await s.runAsync(['upgrade', '4.3.9']);
    expect(up.status).toBe(1);
    expect(up.stderr).toMatch(/upgrade to 4\.3\.9 failed: the new master failed to start .*; 4\.3\.0 stays current/);
    const n = load.versions.get('4.3.0')!;
    await waitFor(() => load.versions.get('4.3.0')! > n + 10, 'traffic after the failed upgrade');
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(current()).toBe('4.3.0');
    expect(s.pid()).toBe(pid);
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/crossbar of the broken version refuses to start/);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a single-process node type (ecallmgr): upgrade and downgrade through USR2, with no failed request', async () => {
    const s = await sandbox(bin, 'ecallmgr', 'ECALLMGR_PORT');
    expect(s.run(['start']).status).toBe(0);
    const oldPid = s.pid()!;
    let running = true;
    let ok = 0;
    const failures: string[] = [];
    const loop = (async () => {
      while (running) {
        try {
          const r = await httpGet(s.port, '/health');
          if (r.status === 200) ok++;
          else failures.push(`HTTP ${r.status} ${r.body}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    })();
    await waitFor(() => ok > 10, 'traffic');
    const up = await s.runAsync(['upgrade', '4.3.1']);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/node ecallmgr@\S+ upgraded from 4\.3\.0 to 4\.3\.1 \(pid \d+\)/);
    expect(JSON.parse(s.run(['status', '--json']).stdout)).toMatchObject({ version: '4.3.1', workers: [] });
    const newPid = s.pid()!;
    expect(newPid).not.toBe(oldPid);
    expect(alive(oldPid)).toBe(false);
    const n = ok;
    await waitFor(() => ok > n + 10, 'traffic on 4.3.1');
    const down = await s.runAsync(['downgrade', '4.3.0']);
    expect(down.status, down.stderr).toBe(0);
    expect(JSON.parse(s.run(['status', '--json']).stdout).version).toBe('4.3.0');
    expect(alive(newPid)).toBe(false);
    const m = ok;
    await waitFor(() => ok > m + 10, 'traffic on 4.3.0 again');
    running = false;
    await loop;
    expect(failures).toEqual([]);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a single-process node and a new version whose app fails: upgrade fails, the old node keeps serving and its pid file', async () => {
    const s = await sandbox(bin, 'ecallmgr', 'ECALLMGR_PORT');
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const up = await s.runAsync(['upgrade', '4.3.9']);
    expect(up.status).toBe(1);
    expect(up.stderr).toMatch(/upgrade to 4\.3\.9 failed: the new node failed to start .*; 4\.3\.0 stays current/);
    expect(current()).toBe('4.3.0');
    expect(s.pid()).toBe(pid);
    expect((await httpGet(s.port, '/health')).status).toBe(200);
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/ecallmgr of the broken version refuses to start/);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a single-process node by hand: USR2, then the rollback: QUIT the new node and the old one takes its pid file, control socket and control port back', async () => {
    const controlPort = `127.0.0.1:${await freePort()}`;
    const s = await sandbox(bin, 'ecallmgr', 'ECALLMGR_PORT', { NODEREL_CONTROL_PORT: controlPort });
    expect(s.run(['start']).status).toBe(0);
    const oldPid = s.pid()!;
    const pidFile = path.join(s.tmp, fs.readdirSync(s.tmp).find((d) => d.startsWith('ecallmgr@'))!, 'node.pid');
    const statusPid = (...args: string[]): number | undefined => {
      const r = s.run(['status', '--json', ...args]);
      return r.status === 0 ? (JSON.parse(r.stdout) as { pid: number }).pid : undefined;
    };
    expect(statusPid('--remote', controlPort)).toBe(oldPid);
    process.kill(oldPid, 'SIGUSR2');
    await waitFor(() => fs.existsSync(`${pidFile}.oldbin`) && fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')) !== oldPid, 'the new node');
    const newPid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor(() => statusPid() === newPid, 'the new node to answer on the control socket');
    await waitFor(() => statusPid('--remote', controlPort) === newPid, 'the new node to answer on the control port');
    expect((await httpGet(s.port, '/health')).status).toBe(200);
    process.kill(newPid, 'SIGQUIT');
    await waitFor(() => !alive(newPid), 'the new node to leave');
    await waitFor(() => !fs.existsSync(`${pidFile}.oldbin`) && Number(fs.readFileSync(pidFile, 'utf8')) === oldPid, 'the pid file back');
    await waitFor(() => statusPid() === oldPid, 'the old node to answer on the control socket again');
    await waitFor(() => statusPid('--remote', controlPort) === oldPid, 'the old node to answer on the control port again');
    expect((await httpGet(s.port, '/health')).status).toBe(200);
    expect(s.run(['stop']).status).toBe(0);
  });

  it.each([
    ['ecallmgr', 'node', 'ECALLMGR_PORT'],
    ['kazoo_apps', 'master', 'CROSSBAR_PORT'],
  ])('USR2 of %s with the cookie from KAZOO_COOKIE: the new %s has the same cookie, and no app sees it (issue 10, item 16)', async (type, _what, portVar) => {
    const secret = 'env-c00kie-kept-from-the-apps';
    const s = await sandbox(bin, type, portVar, { KAZOO_COOKIE: secret });
    expect(s.run(['start']).status).toBe(0);
    const oldPid = s.pid()!;
    const pidFile = path.join(s.tmp, fs.readdirSync(s.tmp).find((d) => d.startsWith(`${type}@`))!, 'node.pid');
    expect(s.run(['eval', 'process.env.KAZOO_COOKIE']).stdout).toBe('undefined\n');
    process.kill(oldPid, 'SIGUSR2');
    await waitFor(() => fs.existsSync(`${pidFile}.oldbin`) && fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')) !== oldPid, 'the new node');
    const newPid = Number(fs.readFileSync(pidFile, 'utf8'));
    const statusPid = (): number | undefined => {
      const r = s.run(['status', '--json']);
      return r.status === 0 ? (JSON.parse(r.stdout) as { pid: number }).pid : undefined;
    };
    // the client authenticates with KAZOO_COOKIE: the new node answers with the same cookie
    await waitFor(() => statusPid() === newPid, 'the new node to answer with the cookie from the environment');
    expect(s.run(['ping'], { KAZOO_COOKIE: 'not-the-cookie' }).status).toBe(1);
    await waitFor(() => s.run(['eval', '1']).status === 0, 'the new node to evaluate');
    expect(s.run(['eval', 'process.env.KAZOO_COOKIE']).stdout).toBe('undefined\n');
    process.kill(oldPid, 'SIGQUIT');
    await waitFor(() => !alive(oldPid), 'the old one to leave');
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('the unicorn procedure by hand: USR2, WINCH, QUIT; and the rollback: HUP the old master, QUIT the new', async () => {
    const s = await sandbox(bin, 'kazoo_apps', 'CROSSBAR_PORT');
    expect(s.run(['start']).status).toBe(0);
    const oldPid = s.pid()!;
    const pidFile = path.join(s.tmp, fs.readdirSync(s.tmp).find((d) => d.startsWith('kazoo_apps@'))!, 'node.pid');
    const load = traffic(s);
    await waitFor(() => load.seen('4.3.0'), 'traffic');

    // USR2: a new master (of the same version here) beside the old one; the pid file moves.
    process.kill(oldPid, 'SIGUSR2');
    await waitFor(() => fs.existsSync(`${pidFile}.oldbin`) && fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')) !== oldPid, 'the new master');
    const newPid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(Number(fs.readFileSync(`${pidFile}.oldbin`, 'utf8'))).toBe(oldPid);
    // (one status per check: the two masters hand the control socket over in the meantime)
    const statusNow = (): { pid: number; workers: { state: string }[] } | undefined => {
      const r = s.run(['status', '--json']);
      return r.status === 0 ? JSON.parse(r.stdout) : undefined;
    };
    await waitFor(() => statusNow()?.pid === newPid, 'the new master to answer');
    await waitFor(() => statusNow()?.workers.filter((w) => w.state === 'ready').length === 2, 'its workers');

    // WINCH to the old master: its workers stop, the new ones serve.
    process.kill(oldPid, 'SIGWINCH');
    await waitFor(() => fs.readFileSync(`/proc/${oldPid}/task/${oldPid}/children`, 'utf8').trim().split(/\s+/).filter((p) => p && Number(p) !== newPid && alive(Number(p))).length === 0, 'the old workers to stop');
    // Rollback: HUP brings the old master's workers back, QUIT the new master.
    process.kill(oldPid, 'SIGHUP');
    await waitFor(() => fs.readFileSync(`/proc/${oldPid}/task/${oldPid}/children`, 'utf8').trim().split(/\s+/).filter((p) => p && Number(p) !== newPid && alive(Number(p))).length === 2, 'the old workers back');
    process.kill(newPid, 'SIGQUIT');
    await waitFor(() => !alive(newPid), 'the new master to leave');
    const n = load.versions.get('4.3.0')!;
    await waitFor(() => load.versions.get('4.3.0')! > n + 10, 'traffic on the old master alone');
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(alive(oldPid)).toBe(true);
    // The old master has its pid file and control socket back.
    await waitFor(() => s.pid() === oldPid && s.run(['ping']).status === 0, 'the old master to answer again');
    expect(fs.existsSync(`${pidFile}.oldbin`)).toBe(false);
    expect(s.run(['stop']).status).toBe(0);
  });
});
