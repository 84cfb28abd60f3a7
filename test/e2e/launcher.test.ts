/**
 * The launcher's commands against real daemons (issue 3): start/stop/pid/ping/status/eval,
 * the cookie and the authenticated control socket, logs, and the bad input and faults list.
 * Every test has its own RELEASE_TMP, RUNNER_LOG_DIR and ports, and stops what it started.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture, listTree, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { alive, alsoRemove, cleanupSandboxes, httpGet, sandbox as makeSandbox, waitFor } from '../helpers/sandbox.js';

let project: { dir: string; cleanup: () => void };
let rel: string;
let bin: string;

beforeAll(() => {
  ({ rel, bin, ...project } = builtFixture('ops'));
});
afterAll(() => project?.cleanup());

const sandbox = (extra: NodeJS.ProcessEnv = {}) => makeSandbox(bin, 'web', 'OPS_PORT', { OPS_COOKIE: undefined, OPS_CONFIG: undefined, ...extra });
afterEach(cleanupSandboxes);
const get = httpGet;

describe('start, the control commands and stop', () => {
  it('start returns once ready; pid, ping, status, eval work; stop returns once the process is gone', async () => {
    const s = await sandbox();
    const start = s.run(['start']);
    expect(start.status, start.stderr).toBe(0);
    // Ready means serving: no waiting needed after start returns.
    expect(await get(s.port)).toEqual({ status: 200, body: 'hello\n' });
    const pid = s.pid()!;
    expect(pid).toBeGreaterThan(0);
    expect(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('web');
    // A daemon: its own session, no controlling terminal.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    expect(Number(stat[3])).toBe(pid); // session id == pid: setsid
    expect(Number(stat[4])).toBe(0); // tty_nr: none
    expect(s.run(['ping'])).toMatchObject({ status: 0, stdout: 'pong\n' });
    const status = JSON.parse(s.run(['status', '--json']).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ node: expect.stringMatching(/^web@/), release: 'ops', version: '1.0.0', pid, stage: 'running', in_flight: 0, apps: ['opsapp'] });
    expect(s.run(['status']).stdout).toMatch(/^stage: {5}running$/m);
    expect(s.run(['eval', 'apps.opsapp.port + 1']).stdout).toBe(`${s.port + 1}\n`);
    expect(s.run(['eval', 'process.env.OPS_FROM_VM_ARGS']).stdout).toBe('yes\n');
    // The runtime is one CommonJS file that requires built-ins: none of the lazy exports an ES
    // import (or a copy of every property) would load, such as util's worker_threads or
    // crypto's webcrypto (bench/README.md: memory per process).
    const loaded = s.run(['eval', "process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).join(' ')"]).stdout;
    expect(loaded).toContain('NativeModule net');
    for (const lazy of ['worker_threads', 'internal/crypto/webcrypto', 'internal/util/parse_args/parse_args']) {
      expect(loaded.split(' '), lazy).not.toContain(lazy);
    }
    const bad = s.run(['eval', 'nosuchthing.x']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/nosuchthing is not defined/);
    const stop = s.run(['stop']);
    expect(stop.status, stop.stderr).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(fs.existsSync(path.join(s.tmp, status.node as string, 'node.pid'))).toBe(false);
    for (const cmd of [['ping'], ['pid'], ['stop'], ['eval', '1'], ['status'], ['attach'], ['remote_console']]) {
      const r = s.run(cmd);
      expect(r.status, cmd.join(' ')).toBe(1);
      expect(r.stderr, cmd.join(' ')).toMatch(/^Node web@\S+ is not running!$/m);
    }
  });

  it('runs two node types of one release at once, each with its own pid, socket and log', async () => {
    const s = await sandbox();
    const otherPort = await freePort();
    expect(s.run(['start']).status).toBe(0);
    expect(s.run(['start'], { REL: 'other', OPS_PORT: String(otherPort) }).status).toBe(0);
    const a = s.pid('web')!;
    const b = s.pid('other')!;
    expect(a).not.toBe(b);
    expect(fs.readFileSync(`/proc/${b}/comm`, 'utf8').trim()).toBe('ops_other');
    expect((await get(otherPort)).status).toBe(200);
    expect(fs.readdirSync(s.logs).sort()).toEqual([expect.stringMatching(/^other@/), expect.stringMatching(/^web@/)]);
    expect(s.run(['stop'], { REL: 'other' }).status).toBe(0);
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a second start of a running node exits 1 saying so', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const again = s.run(['start']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/Node web@\S+ is already running \(pid \d+\)/);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('ten concurrent starts: exactly one node runs, the others exit 1', async () => {
    const s = await sandbox();
    const runs = await Promise.all(
      Array.from({ length: 10 }, () => new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(bin, ['start'], { env: s.env });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
        child.on('close', (code) => resolve({ code, stderr }));
      })),
    );
    expect(runs.filter((r) => r.code === 0)).toHaveLength(1);
    const losers = runs.filter((r) => r.code !== 0);
    expect(losers).toHaveLength(9);
    for (const l of losers) expect(l.stderr).toMatch(/already running/);
    const pgrep = spawnSync('pgrep', ['-x', 'web'], { encoding: 'utf8' });
    const environ = (p: number) => {
      try {
        return fs.readFileSync(`/proc/${p}/environ`, 'utf8');
      } catch {
        return ''; // another test's process, gone meanwhile
      }
    };
    const ours = pgrep.stdout.split('\n').filter(Boolean).map(Number).filter((p) => environ(p).includes(s.tmp));
    expect(ours).toEqual([s.pid()]);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('mid-USR2, with the pid file moved to node.pid.oldbin and no new one yet, pid names the old node and start refuses', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const node = JSON.parse(s.run(['status', '--json']).stdout).node as string;
    const pidFile = path.join(s.tmp, node, 'node.pid');
    // the state between the old node's rename (successor.ts) and the new node's first write
    fs.renameSync(pidFile, `${pidFile}.oldbin`);
    expect(s.run(['pid'])).toMatchObject({ status: 0, stdout: `${pid}\n` });
    expect(s.run(['start'])).toMatchObject({ status: 1, stderr: expect.stringMatching(new RegExp(`is already running \\(pid ${pid}\\)`)) });
    // a new node's pid file, once written, comes first
    fs.writeFileSync(pidFile, `${pid}\n`);
    expect(s.run(['pid']).stdout).toBe(`${pid}\n`);
    fs.rmSync(`${pidFile}.oldbin`);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a stale pid file (dead pid, or a pid now used by another program) does not block a start', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const node = JSON.parse(s.run(['status', '--json']).stdout).node as string;
    expect(s.run(['stop']).status).toBe(0);
    const pidFile = path.join(s.tmp, node, 'node.pid');
    const dead = spawnSync('true').pid!;
    fs.writeFileSync(pidFile, `${dead}\n`);
    expect(s.run(['pid']).status).toBe(1);
    expect(s.run(['start']).status).toBe(0);
    expect(s.run(['stop']).status).toBe(0);
    fs.writeFileSync(pidFile, `${process.pid}\n`); // alive, but it is vitest, not the node
    expect(s.run(['pid']).status).toBe(1);
    const start = s.run(['start']);
    expect(start.status, start.stderr).toBe(0);
    expect(s.run(['stop']).status).toBe(0);
  });
});

describe('boot failures surface at start', () => {
  it('a taken port: start fails at once with EADDRINUSE and the log tail', async () => {
    const s = await sandbox();
    const blocker = net.createServer().listen(s.port, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    try {
      const r = s.run(['start']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/failed to start: app opsapp failed to start: .*EADDRINUSE/);
      expect(r.stderr).toMatch(/--- last lines of .*console\.log ---/);
      expect(s.run(['pid']).status).toBe(1);
    } finally {
      blocker.close();
    }
  });

  it('an app that throws in start: non-zero, the error printed', async () => {
    const s = await sandbox({ OPS_FAIL: 'on purpose' });
    const r = s.run(['start']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Node web@\S+ failed to start: app opsapp failed to start: .*opsapp refuses to start: on purpose/);
  });

  it('no readiness within --timeout: exit 2 naming the log', async () => {
    const s = await sandbox({ OPS_DELAY_MS: '4000' });
    const r = s.run(['start', '--timeout', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/did not report ready within 1s; it may still be starting: see .*console\.log/);
    // It was still booting: once up it is a normal node.
    await waitFor(() => s.run(['ping']).status === 0, 'the slow node to answer');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('unknown command and unknown REL: usage or the known node types, exit 1', async () => {
    const s = await sandbox();
    const u = s.run(['frobnicate']);
    expect(u.status).toBe(1);
    expect(u.stderr).toMatch(/^Unknown command: frobnicate\nUsage:/);
    const t = s.run(['start'], { REL: 'nope' });
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/Unknown node type "nope" \(from REL\); known: web other pool/);
  });
});

describe('stop', () => {
  it('waits for work in flight; --timeout gives up with a clear message and exit 1; a second stop moves on', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const held = get(s.port, '/work?ms=60000');
    await waitFor(() => JSON.parse(s.run(['status', '--json']).stdout).in_flight === 1, 'the request to be in flight');
    const first = s.run(['stop', '--timeout', '1']);
    expect(first.status).toBe(1);
    expect(first.stderr).toMatch(/did not stop within 1s \(stage running, 1 in flight when asked\); run stop again/);
    expect(alive(pid)).toBe(true);
    expect(JSON.parse(s.run(['status', '--json']).stdout).stage).toBe('draining');
    s.run(['stop', '--timeout', '1']); // rejecting
    // hanging-up: this app does not hang up its work, so the 4th stage (exit at once) ends it
    expect(s.run(['stop', '--timeout', '1']).status).toBe(1);
    expect(s.run(['stop']).status).toBe(0);
    await waitFor(() => !alive(pid), 'the node to exit');
    await held.catch(() => undefined);
  });
});

describe('stop: bounded, and during boot', () => {
  for (const rel of ['web', 'pool']) {
    it(`stop of a node still starting (${rel}) aborts the boot: the node exits at once, start fails`, async () => {
      const s = await makeSandbox(bin, rel, 'OPS_PORT', { OPS_COOKIE: undefined, OPS_CONFIG: undefined, OPS_DELAY_MS: '600000' });
      const start = s.runAsync(['start']);
      await waitFor(() => {
        const r = s.run(['status', '--json']);
        return r.status === 0 && JSON.parse(r.stdout).stage === 'starting' && (rel === 'web' || JSON.parse(r.stdout).workers.length === 2);
      }, 'the node to answer while it starts');
      const pid = s.pid()!;
      const t0 = Date.now();
      const stop = s.run(['stop', '--timeout', '20']);
      expect(stop.status, stop.stderr).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000); // not the app's start timeout
      expect(alive(pid)).toBe(false);
      const started = await start;
      expect(started.status).not.toBe(0);
      expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/stop requested while starting: boot aborted, app opsapp abandoned mid-start; no app had started/);
    });
  }

  it('stop --timeout bounds the whole command, connection and handshake included (a node that never answers)', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    process.kill(pid, 'SIGSTOP'); // as good as an event loop blocked for good
    try {
      const t0 = Date.now();
      const r = s.run(['stop', '--timeout', '2']);
      const took = Date.now() - t0;
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`did not answer the stop request within 2s: its event loop is blocked or it is overloaded; nothing was asked of it.*kill -TERM ${pid}`));
      expect(took).toBeGreaterThanOrEqual(2_000);
      expect(took).toBeLessThan(3_500); // the launcher and the client's start, not 30 s
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(s.run(['stop']).status).toBe(0);
  });

  it('the 4th TERM is logged and immediate, even with a control connection open', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const held = get(s.port, '/work?ms=60000');
    held.catch(() => {});
    await waitFor(() => JSON.parse(s.run(['status', '--json']).stdout).in_flight === 1, 'the request to be in flight');
    // a peer that keeps its side open: a graceful teardown would wait for it
    const ctl = net.connect({ path: path.join(s.tmp, fs.readdirSync(s.tmp).find((d) => d.startsWith('web@'))!, 'ctl'), allowHalfOpen: true });
    ctl.on('error', () => {});
    await new Promise((resolve) => ctl.once('data', resolve));
    const log = () => fs.readFileSync(s.logFile(), 'utf8');
    for (const [step, stage] of [[1, 'draining'], [2, 'rejecting'], [3, 'hanging-up']] as const) {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => log().includes(`shutdown step ${step} of 4`) && log().includes(`stage ${stage}`), `stage ${stage}`);
    }
    const t0 = Date.now();
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !alive(pid), 'the node to exit', 5_000);
    expect(Date.now() - t0).toBeLessThan(500);
    ctl.destroy();
    expect(log()).toMatch(/received SIGTERM \(shutdown step 4 of 4\)\n.*exiting now with 1 in flight \(the last shutdown stage: no stop, no wait\)/);
    expect(s.pid()).toBeUndefined();
  });
});

describe('the cookie and the control channel', () => {
  it('a wrong cookie is refused with a clear message and logged by the node', async () => {
    const s = await sandbox();
    expect(s.run(['start']).status).toBe(0);
    const r = s.run(['ping'], { OPS_COOKIE: 'not-the-cookie' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^Node web@\S+ refused the connection: wrong cookie \(ours is from OPS_COOKIE\)/);
    // The node answers the refusal first and logs it after: wait for the line.
    const logFile = path.join(s.logs, fs.readdirSync(s.logs)[0]!, 'console.log');
    await waitFor(() => /warn .*refused a control connection: wrong cookie/.test(fs.readFileSync(logFile, 'utf8')), 'the refusal in the log');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('the socket is 0600 in a 0700 directory, and the cookie is on no command line', async () => {
    const s = await sandbox({ OPS_COOKIE: 'c00kie-from-env-123' });
    expect(s.run(['start']).status).toBe(0);
    const node = fs.readdirSync(s.tmp).find((d) => d.startsWith('web@'))!;
    expect(fs.statSync(path.join(s.tmp, node)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(s.tmp, node, 'ctl')).mode & 0o777).toBe(0o600);
    const pid = s.pid()!;
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain('c00kie');
    expect(s.run(['ping']).stdout).toBe('pong\n');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('cookie: env, then the INI file (host section wins), then releases/COOKIE; --ini refuses to fall back', async () => {
    const s = await sandbox();
    const dir = tempDir('noderel-ini-');
    alsoRemove(dir);
    const ini = path.join(dir.dir, 'config.ini');
    const host = spawnSync('uname', ['-n'], { encoding: 'utf8' }).stdout.trim();
    fs.writeFileSync(ini, `[web]\ncookie = generic\n\n[web]\nhost = ${host}\ncookie = for-this-host\n\n[other]\nhost = elsewhere.example\ncookie = not-here\n`, { mode: 0o600 });
    expect(s.run(['cookie'], { OPS_COOKIE: 'from-env' })).toMatchObject({ status: 0, stdout: 'from-env\n' });
    const fromIni = s.run(['cookie'], { OPS_CONFIG: ini });
    expect(fromIni.stdout).toBe('for-this-host\n');
    expect(fromIni.stderr).toMatch(/cookie from .*config\.ini \[web\]/);
    const fallback = s.run(['cookie'], { REL: 'other', OPS_CONFIG: ini });
    expect(fallback.stdout).toBe(`${fs.readFileSync(path.join(rel, 'releases/COOKIE'), 'utf8')}\n`);
    const strict = s.run(['cookie', '--ini'], { REL: 'other', OPS_CONFIG: ini });
    expect(strict.status).toBe(1);
    expect(strict.stderr).toMatch(/\[other\].*config\.ini/);
    const missing = s.run(['cookie', '--ini'], { OPS_CONFIG: path.join(dir.dir, 'nope.ini') });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/nope\.ini/);
    fs.chmodSync(ini, 0o644);
    const worldReadable = s.run(['cookie'], { OPS_CONFIG: ini });
    expect(worldReadable.status).toBe(1);
    expect(worldReadable.stderr).toMatch(/readable by other users .*; chmod 600 /);
  });

  it('a world-readable releases/COOKIE is refused, like ssh refuses keys', async () => {
    const s = await sandbox();
    const cookie = path.join(rel, 'releases/COOKIE');
    fs.chmodSync(cookie, 0o644);
    try {
      const r = s.run(['start']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/COOKIE is readable by other users .*; chmod 600 /);
    } finally {
      fs.chmodSync(cookie, 0o400);
    }
  });

  it('an INI file that cannot be read is named in the error', async () => {
    const s = await sandbox();
    const dir = tempDir('noderel-ini-');
    alsoRemove(dir);
    const r = s.run(['cookie'], { OPS_CONFIG: dir.dir }); // a directory: unreadable as a file, even for root
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(dir.dir);
  });
});

describe('logs', () => {
  it('reopen_logs and USR1 after an external rename lose no line; the log rotates by size', async () => {
    const s = await sandbox({ RUNNER_LOG_MAX_BYTES: '1M' });
    expect(s.run(['start']).status).toBe(0);
    const node = fs.readdirSync(s.logs)[0]!;
    const log = path.join(s.logs, node, 'console.log');
    const say = (n: number) => expect(s.run(['eval', `console.log('line-${n}')`]).status).toBe(0);
    say(1);
    fs.renameSync(log, `${log}.1`);
    say(2); // still into the renamed file
    expect(s.run(['reopen_logs']).stdout).toMatch(/reopened .*console\.log/);
    say(3);
    fs.renameSync(log, `${log}.2`);
    process.kill(s.pid()!, 'SIGUSR1');
    await waitFor(() => fs.existsSync(log), 'USR1 to reopen the log');
    say(4);
    const all = [`${log}.1`, `${log}.2`, log].map((f) => fs.readFileSync(f, 'utf8')).join('');
    for (const n of [1, 2, 3, 4]) expect(all.match(new RegExp(`^line-${n}$`, 'gm')), `line-${n}`).toHaveLength(1);
    expect(fs.readFileSync(`${log}.1`, 'utf8')).toMatch(/line-2/);
    // The node's own lines follow the reopen too (fds 1 and 2 still point at the renamed file).
    process.kill(s.pid()!, 'SIGALRM');
    await waitFor(() => fs.readFileSync(log, 'utf8').includes('ALRM: log level trace'), 'the ALRM line in the reopened log');
    expect(fs.readFileSync(`${log}.2`, 'utf8')).not.toContain('ALRM');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('rotates console.log by size with N generations', async () => {
    const s = await sandbox({ RUNNER_LOG_MAX_BYTES: '2K', RUNNER_LOG_GENERATIONS: '2' });
    expect(s.run(['start']).status).toBe(0);
    expect(s.run(['eval', "for (let i = 0; i < 200; i++) console.log('x'.repeat(60) + i)"]).status).toBe(0);
    const dir = path.join(s.logs, fs.readdirSync(s.logs)[0]!);
    expect(fs.readdirSync(dir).sort()).toEqual(['console.log', 'console.log.1', 'console.log.2']);
    for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).size).toBeLessThanOrEqual(2048);
    expect(fs.readFileSync(path.join(dir, 'console.log'), 'utf8')).toMatch(/x{60}199/);
    expect(s.run(['stop']).status).toBe(0);
  });
});

describe('log files: one mode, never world-readable (issue 10, item 16)', () => {
  it('console.log is 0640 in 0750 directories, as are rotated and reopened files; an old 0644 file gets the mode', async () => {
    const s = await sandbox({ RUNNER_LOG_MAX_BYTES: '2K', RUNNER_LOG_GENERATIONS: '2' });
    const mode = (f: string) => fs.statSync(f).mode & 0o777;
    const umask = process.umask(0o022); // the usual umask, which made 0644 files in 0755 directories
    try {
      expect(s.run(['start']).status).toBe(0);
    } finally {
      process.umask(umask);
    }
    const dir = path.dirname(s.logFile());
    expect(mode(s.logs)).toBe(0o750);
    expect(mode(dir)).toBe(0o750);
    expect(mode(s.logFile())).toBe(0o640);
    expect(s.run(['eval', "for (let i = 0; i < 100; i++) console.log('x'.repeat(60) + i)"]).status).toBe(0);
    fs.renameSync(s.logFile(), `${s.logFile()}.moved`);
    expect(s.run(['reopen_logs']).status).toBe(0);
    for (const f of fs.readdirSync(dir)) expect(mode(path.join(dir, f)), f).toBe(0o640);
    expect(s.run(['stop']).status).toBe(0);
    // a log left by an older release: the node gives it the mode
    fs.chmodSync(s.logFile(), 0o644);
    fs.chmodSync(dir, 0o755);
    expect(s.run(['start']).status).toBe(0);
    expect(mode(s.logFile())).toBe(0o640);
    expect(mode(dir)).toBe(0o750);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('RUNNER_LOG_MODE=0600 gives 0600 files in 0700 directories; a bad mode is refused before anything starts', async () => {
    const s = await sandbox({ RUNNER_LOG_MODE: '0600' });
    expect(s.run(['start']).status).toBe(0);
    expect(fs.statSync(s.logs).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.dirname(s.logFile())).mode & 0o777).toBe(0o700);
    expect(fs.statSync(s.logFile()).mode & 0o777).toBe(0o600);
    expect(s.run(['stop']).status).toBe(0);
    const bad = s.run(['start'], { RUNNER_LOG_MODE: '0444' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/RUNNER_LOG_MODE="0444" is not a mode for the log files; .*0640 \(the default\) or 0600/);
    expect(s.pid()).toBeUndefined();
  });
});

describe('the cookie is not the apps\' (issue 10, item 16)', () => {
  it('<NAME>_COOKIE is in no app\'s process.env, nor in a worker\'s environment; the node still uses it', async () => {
    const secret = 'c00kie-the-apps-must-not-see';
    const s = await sandbox({ OPS_COOKIE: secret });
    expect(s.run(['start']).status).toBe(0);
    expect(s.run(['eval', 'process.env.OPS_COOKIE']).stdout).toBe('undefined\n');
    // nor in what an app's children inherit
    expect(s.run(['eval', "require('node:child_process').execSync('echo \"[$OPS_COOKIE]\"').toString().trim()"]).stdout).toMatch(/\[\]/);
    expect(s.run(['ping'])).toMatchObject({ status: 0, stdout: 'pong\n' });
    expect(s.run(['ping'], { OPS_COOKIE: 'another' }).status).toBe(1);
    expect(s.run(['stop']).status).toBe(0);

    // with workers: the master keeps it, the workers (where the apps run) never get it
    expect(s.run(['start'], { REL: 'pool' }).status).toBe(0);
    expect(s.run(['eval', 'process.env.OPS_COOKIE'], { REL: 'pool' }).stdout).toBe('undefined\n');
    const master = s.pid('pool')!;
    const workers = fs.readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    expect(workers.length).toBe(2);
    for (const w of workers) expect(fs.readFileSync(`/proc/${w}/environ`, 'utf8'), `worker ${w}`).not.toContain(secret);
    expect(s.run(['ping'], { REL: 'pool' }).stdout).toBe('pong\n');
    expect(s.run(['stop'], { REL: 'pool' }).status).toBe(0);
  });
});

describe('a full log disk (issue 10, item 7)', () => {
  let mnt: string | undefined;
  let why = '';
  beforeAll(() => {
    mnt = fs.mkdtempSync('/tmp/noderel-fulllog-');
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) {
      why = `mount -t tmpfs is not permitted here (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})`;
      fs.rmSync(mnt, { recursive: true, force: true });
      mnt = undefined;
      console.warn(`SKIPPED the full-log-disk test: ${why}`);
    }
  });
  afterAll(() => {
    if (!mnt) return;
    spawnSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('apps log on under load: nothing throws, the node serves; status counts the lost lines; the log notes them once space returns', async (ctx) => {
    if (!mnt) return ctx.skip(why);
    const s = await sandbox({ RUNNER_LOG_DIR: mnt });
    expect(s.run(['start']).status).toBe(0);
    const pid = s.pid()!;
    const logFile = path.join(mnt, fs.readdirSync(mnt).find((d) => d.startsWith('web@'))!, 'console.log');
    const filler = path.join(mnt, 'filler');
    try {
      fs.writeFileSync(filler, Buffer.alloc(512 * 1024));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    // load: each GET /log makes the app log a line (ctx.log.info), and console.log from eval
    const statuses: number[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => get(s.port, `/log?id=${batch}-${i}`).catch(() => ({ status: 0, body: '' }))));
      statuses.push(...answers.map((a) => a.status));
    }
    expect(statuses.filter((c) => c !== 200)).toEqual([]);
    expect(s.run(['eval', "for (let i = 0; i < 100; i++) console.log('lost ' + i); 'said'"]).stdout).toBe('said\n');
    expect(alive(pid)).toBe(true);
    expect(s.run(['ping']).stdout).toBe('pong\n');
    const status = JSON.parse(s.run(['status', '--json']).stdout) as { stage: string; log: { dropped_lines: number; unreported_lines: number; last_error: string; file: string } };
    expect(status.stage).toBe('running');
    expect(status.log.dropped_lines).toBeGreaterThanOrEqual(300);
    expect(status.log.unreported_lines).toBe(status.log.dropped_lines);
    expect(status.log.last_error).toMatch(/^ENOSPC: /);
    expect(status.log.file).toBe(logFile);
    expect(s.run(['status']).stdout).toMatch(/^log: {7}\d+ lines could not be written \(ENOSPC: [^)]*\), \d+ not yet noted in .*console\.log$/m);
    expect(fs.readFileSync(logFile, 'utf8')).not.toMatch(/request 9-29/);
    // space returns: the note comes by itself, then lines are written again
    fs.rmSync(filler);
    await waitFor(() => /warn \[console\.log\] \d+ log lines could not be written to .* \(ENOSPC: [^)]*\) and are lost/.test(fs.readFileSync(logFile, 'utf8')), 'the note about the lost lines');
    expect((await get(s.port, '/log?id=back')).status).toBe(200);
    await waitFor(() => fs.readFileSync(logFile, 'utf8').includes('request back'), 'a line written again');
    const after = JSON.parse(s.run(['status', '--json']).stdout) as typeof status;
    expect(after.log.unreported_lines).toBe(0);
    expect(after.log.dropped_lines).toBeGreaterThanOrEqual(status.log.dropped_lines);
    expect(s.run(['status']).stdout).toMatch(/^log: {7}\d+ lines could not be written \(ENOSPC: [^)]*\)$/m);
    expect(s.run(['stop']).status).toBe(0);
  });
});

describe('restart and reload', () => {
  it('restart stops and starts the apps in the same process; reload hands the new config to configChange', async () => {
    const s = await sandbox();
    const dir = tempDir('noderel-appconfig-');
    alsoRemove(dir);
    const appConfig = path.join(dir.dir, 'app.config');
    fs.writeFileSync(appConfig, JSON.stringify({ opsapp: { greeting: 'hello' } }));
    expect(s.run(['start'], { OPS_APP_CONFIG: appConfig }).status).toBe(0);
    const pid = s.pid();
    expect(s.run(['restart']).stdout).toMatch(/restarted opsapp/);
    expect(s.pid()).toBe(pid);
    expect((await get(s.port)).body).toBe('hello\n');
    fs.writeFileSync(appConfig, JSON.stringify({ opsapp: { greeting: 'bonjour' } }));
    expect(s.run(['reload']).stdout).toMatch(/configChange called for opsapp/);
    expect((await get(s.port)).body).toBe('bonjour\n');
    expect(s.run(['stop']).status).toBe(0);
  });
});

describe('a read-only release directory', () => {
  it('with RELEASE_TMP and RUNNER_LOG_DIR elsewhere, the release directory is not written', async () => {
    const s = await sandbox();
    const before = listTree(rel);
    const mtimes = before.map((f) => fs.statSync(path.join(rel, f)).mtimeMs);
    expect(s.run(['start']).status).toBe(0);
    expect(s.run(['ping']).status).toBe(0);
    expect(s.run(['stop']).status).toBe(0);
    expect(listTree(rel)).toEqual(before);
    expect(before.map((f) => fs.statSync(path.join(rel, f)).mtimeMs)).toEqual(mtimes);
  });
});

describe('eval: Node\'s REPL semantics, within a time limit (issue 10, items 9 and 10)', () => {
  for (const relName of ['web', 'pool']) {
    it(`${relName}: the last value, require, await; an endless loop stops at --timeout and the node keeps serving`, async () => {
      const s = await sandbox({ REL: relName });
      expect(s.run(['start']).status).toBe(0);
      const pid = s.pid(relName)!;
      expect(s.run(['eval', 'const v = apps.opsapp.port + 1; v'])).toMatchObject({ status: 0, stdout: `${s.port + 1}\n` });
      expect(s.run(['eval', 'const v = 2; v']).stdout).toBe('2\n'); // each eval has its own bindings
      expect(s.run(['eval', 'typeof require']).stdout).toBe('function\n');
      expect(s.run(['eval', '--timeout', '5', `require("os").hostname() === ${JSON.stringify(os.hostname())}`]).stdout).toBe('true\n');
      expect(s.run(['eval', 'const r = await Promise.resolve(20); r * 2 + 2']).stdout).toBe('42\n');
      const t0 = Date.now();
      const loop = s.run(['eval', '--timeout', '1', 'while (true) {}']);
      expect(loop.status).toBe(1);
      expect(loop.stderr).toMatch(/eval timed out after 1 s/);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(s.run(['ping'])).toMatchObject({ status: 0, stdout: 'pong\n' });
      expect(await get(s.port)).toEqual({ status: 200, body: 'hello\n' });
      expect(s.run(['eval', '--timeout', 'soon', '1'])).toMatchObject({ status: 1, stderr: 'eval: --timeout must be a number of seconds, found "soon"\n' });
      expect(s.pid(relName)).toBe(pid);
      expect(s.run(['help', 'eval']).stdout).toMatch(/default 60 s/);
      const stop = s.run(['stop', '--timeout', '10']);
      expect(stop.status, stop.stderr).toBe(0);
    });
  }
});
