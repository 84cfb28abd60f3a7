/**
 * `noderel systemd`: the template unit passes `systemd-analyze verify` (the Debian systemd
 * package; `.ci/run` installs it), and its commands do what Type=forking needs when run as
 * systemd runs them: ExecStart returns 0 only once the node serves, with the PID file naming the
 * live node; it fails when the node cannot come up; ExecReload's HUP keeps it serving; ExecStop
 * stops it. The unit's /run and /var/log paths are redirected to this test's own directories.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture, noderel, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { useChildProcesses } from '../helpers/proc.js';
import { alive, waitFor } from '../helpers/sandbox.js';

useChildProcesses();

let project: { dir: string; rel: string; cleanup: () => void };
let tmp: { dir: string; cleanup: () => void };
let unit: string;
beforeAll(() => {
  ({ ...project } = builtFixture('ops'));
  tmp = tempDir('noderel-systemd-');
  const r = noderel(project.dir, ['systemd', '--prefix', project.rel, '--user', 'root']);
  expect(r.code).toBe(0);
  unit = r.stdout;
});
afterAll(() => {
  project?.cleanup();
  tmp?.cleanup();
});

/** The unit's `Key=value` lines of [Service], in order. */
function serviceLines(text: string): [string, string][] {
  const body = text.split('[Service]\n')[1]!.split('\n[Install]')[0]!;
  return body.split('\n').filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describe('noderel systemd', () => {
  it('writes a template unit that systemd-analyze verify accepts (and the check can fail)', () => {
    expect(unit).toMatch(/^Type=forking$/m);
    expect(unit).toMatch(/^PIDFile=\/run\/ops\/%i\/node\.pid$/m);
    expect(unit).toContain(`ExecStart=${project.rel}/bin/ops start\n`);
    const dir = path.join(tmp.dir, 'units');
    fs.mkdirSync(dir, { recursive: true });
    const verify = (text: string) => {
      fs.writeFileSync(path.join(dir, 'ops@web.service'), text);
      // its findings on stderr, whatever stderr is (a pipe would send them to the journal)
      const env = { ...process.env, SYSTEMD_LOG_TARGET: 'console' };
      return spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'ops@web.service')], { encoding: 'utf8', env });
    };
    const good = verify(unit);
    expect(good.error).toBeUndefined(); // systemd-analyze is installed
    expect({ status: good.status, out: good.stdout + good.stderr }).toEqual({ status: 0, out: '' });
    const bad = verify(unit.replace(/^Type=forking$/m, 'Type=forkin'));
    expect(bad.stdout + bad.stderr).toMatch(/Failed to parse service type/);
    // --journal: the foreground variant (run under a real systemd in systemd-running.test.ts)
    const journal = noderel(project.dir, ['systemd', '--journal', '--prefix', project.rel]);
    expect(journal.code, journal.stderr).toBe(0);
    expect(journal.stdout).toMatch(/^Type=exec$/m);
    expect(journal.stdout).toContain(`ExecStart=${project.rel}/bin/ops foreground\n`);
    const journalVerified = verify(journal.stdout);
    expect({ status: journalVerified.status, out: journalVerified.stdout + journalVerified.stderr }).toEqual({ status: 0, out: '' });
  });

  it('refuses a relative --prefix, or a --unit-file it cannot write, in one line', () => {
    const r = noderel(project.dir, ['systemd', '--prefix', 'opt/ops']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('noderel: --prefix must be an absolute path, found "opt/ops"\n');
    const missing = path.join(tmp.dir, 'no-such-dir', 'ops@.service');
    const w = noderel(project.dir, ['systemd', '--unit-file', missing]);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(new RegExp(`^noderel: cannot write the unit to ${missing.replace(/[.]/g, '\\.')}: ENOENT.*; give --unit-file a path in a writable directory\n$`));
    const written = path.join(tmp.dir, 'ops@.service');
    expect(noderel(project.dir, ['systemd', '--unit-file', written]).code).toBe(0);
    expect(fs.readFileSync(written, 'utf8')).toMatch(/^Type=forking$/m);
  });

  it('its commands, run as systemd runs them: start returns once the node serves, reload keeps it, stop stops it; a node that cannot come up fails start', async () => {
    const run = path.join(tmp.dir, 'run');
    const logs = path.join(tmp.dir, 'log');
    const local = (v: string): string => v.replaceAll('%i', 'web').replace('/run/ops', run).replace('/var/log/ops', logs);
    const lines = serviceLines(unit);
    const get = (key: string): string => local(lines.find(([k]) => k === key)![1]);
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, OPS_PORT: String(port) };
    for (const [k, v] of lines) if (k === 'Environment') env[v.slice(0, v.indexOf('='))] = local(v.slice(v.indexOf('=') + 1));
    // what systemd does before ExecStart: RuntimeDirectory (0700) and LogsDirectory
    fs.mkdirSync(local(`/run/ops/${'%i'}`), { recursive: true, mode: 0o700 });
    fs.mkdirSync(logs, { recursive: true });
    const exec = (key: string) => {
      const [cmd, ...args] = get(key).split(' ');
      return spawnSync(cmd!, args, { env, cwd: get('WorkingDirectory'), encoding: 'utf8', timeout: 120_000 });
    };
    const pidFile = get('PIDFile');

    const started = exec('ExecStart');
    expect(started.status, started.stderr).toBe(0);
    // Type=forking: when ExecStart has exited, the PID file names the main process, and it serves
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    try {
      expect(alive(pid)).toBe(true);
      expect(await answers(port)).toBe(true);

      const reload = get('ExecReload').replace('$MAINPID', String(pid)).split(' ');
      expect(spawnSync(reload[0]!, reload.slice(1)).status).toBe(0);
      await waitFor(() => fs.readFileSync(path.join(logs, 'web', 'console.log'), 'utf8').includes('HUP'), 'the HUP in the log');
      expect(alive(pid)).toBe(true);
      expect(await answers(port)).toBe(true);

      const stopped = exec('ExecStop');
      expect(stopped.status, stopped.stderr).toBe(0);
      expect(alive(pid)).toBe(false);
      expect(fs.existsSync(pidFile)).toBe(false);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }

    // a port held by someone else: the node cannot come up, and ExecStart says so and fails
    const holder = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    try {
      const failed = exec('ExecStart');
      expect(failed.status).not.toBe(0);
      expect(failed.stderr).toMatch(/failed to start/);
      expect(fs.existsSync(pidFile) && alive(Number(fs.readFileSync(pidFile, 'utf8')))).toBe(false);
    } finally {
      holder.close();
    }
  }, 180_000);
});
