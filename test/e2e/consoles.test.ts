/**
 * attach and remote_console in a real terminal (tmux): what the screen shows, Ctrl-D detaching,
 * Ctrl-C never killing the node, and remote_console into a node started in the foreground.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';
import { Terminal } from '../helpers/tmux.js';
import { makeCa } from '../helpers/tls.js';

useChildProcesses();

let project: { dir: string; cleanup: () => void };
let bin: string;
beforeAll(() => {
  ({ bin, ...project } = builtFixture('ops'));
});
afterAll(() => project?.cleanup());

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function env(): Promise<NodeJS.ProcessEnv> {
  const t = tempDir('noderel-console-');
  const e: NodeJS.ProcessEnv = { REL: 'web', RELEASE_TMP: path.join(t.dir, 'tmp'), RUNNER_LOG_DIR: path.join(t.dir, 'log'), OPS_PORT: String(await freePort()) };
  cleanups.push(() => {
    // stop by pid whatever the test left running
    for (const node of fs.existsSync(e.RELEASE_TMP!) ? fs.readdirSync(e.RELEASE_TMP!) : []) {
      const file = path.join(e.RELEASE_TMP!, node, 'node.pid');
      if (!fs.existsSync(file)) continue;
      try {
        process.kill(Number(fs.readFileSync(file, 'utf8')), 'SIGKILL');
      } catch {
        // gone
      }
    }
    t.cleanup();
  });
  return e;
}

function run(e: NodeJS.ProcessEnv, args: string[]) {
  return spawnSync(bin, args, { env: { ...process.env, ...e }, encoding: 'utf8' });
}

function term(command: string, e: NodeJS.ProcessEnv): Terminal {
  const t = Terminal.start(command, e);
  cleanups.push(() => t.close());
  return t;
}

describe('attach', () => {
  it('shows live output and a REPL; Ctrl-C does not kill the node; Ctrl-D detaches and the node keeps running', async () => {
    const e = await env();
    expect(run(e, ['start']).status).toBe(0);
    const pid = Number(run(e, ['pid']).stdout);
    const t = term(`${bin} attach`, e);
    await t.waitFor(/Attached to web@\S+\. Ctrl-D detaches; the node keeps running\./);
    await t.waitFor(/web@\S+> $/m);
    t.type('apps.opsapp.greeting + "/" + lifecycle.stage');
    await t.waitFor(/'hello\/running'/);
    // Output of the node while attached: a line logged through another control client.
    expect(run(e, ['eval', "console.log('live-line-from-elsewhere')"]).status).toBe(0);
    await t.waitFor(/live-line-from-elsewhere/);
    t.press('C-c');
    await t.waitFor(/To exit, press Ctrl\+C again or Ctrl\+D or type \.exit/);
    expect(run(e, ['ping']).stdout).toBe('pong\n');
    t.press('C-d');
    const screen = await t.waitFor(/\[exit \d+\]/);
    expect(screen).toMatch(/Detached from web@\S+\./);
    expect(screen).toMatch(/\[exit 0\]/);
    expect(run(e, ['ping']).stdout).toBe('pong\n');
    expect(Number(run(e, ['pid']).stdout)).toBe(pid);
    expect(run(e, ['stop']).status).toBe(0);
  });

  it('a node running in the foreground has no console to attach to: use remote_console', async () => {
    const e = await env();
    const node = spawnChild(bin, ['foreground'], { env: { ...process.env, ...e } });
    await node.waitForOutput(/node web@\S+ ready/);
    const r = run(e, ['attach']);
    expect(r.stdout + r.stderr).toMatch(/was not started with start \(it runs in the foreground\); use remote_console/);
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });
});

describe('remote_console', () => {
  it('opens a REPL inside a node started in the foreground; leaving it leaves the node running', async () => {
    const e = await env();
    const node = spawnChild(bin, ['foreground'], { env: { ...process.env, ...e } });
    await node.waitForOutput(/node web@\S+ ready/);
    const t = term(`${bin} remote_console`, e);
    await t.waitFor(/Remote console on web@\S+/);
    await t.waitFor(/web@\S+> $/m);
    t.type('process.pid');
    await t.waitFor(new RegExp(`^${node.pid}$`, 'm'));
    t.type('.exit');
    const screen = await t.waitFor(/\[exit \d+\]/);
    expect(screen).toMatch(/Left web@\S+\./);
    expect(node.exitStatus).toBeUndefined();
    expect(run(e, ['ping']).stdout).toBe('pong\n');
    node.signal('SIGTERM');
    expect((await node.waitForExit()).code).toBe(0);
  });

  it('reaches a node on its TCP control port from elsewhere (--remote): eval, ping, status and a REPL; only with its cookie', async () => {
    const e = await env();
    const port = await freePort();
    expect(run({ ...e, NODEREL_CONTROL_PORT: `127.0.0.1:${port}` }, ['start']).status).toBe(0);
    const pid = Number(run(e, ['pid']).stdout);
    // "another host": a run directory of its own, so no control socket to find; the same release (cookie)
    const there = await env();
    const remote = `127.0.0.1:${port}`;
    expect(run(there, ['ping'])).toMatchObject({ status: 1, stderr: expect.stringMatching(/is not running!/) });
    expect(run(there, ['ping', '--remote', remote])).toMatchObject({ status: 0, stdout: 'pong\n' });
    expect(run(there, ['eval', '--remote', remote, 'process.pid'])).toMatchObject({ status: 0, stdout: `${pid}\n` });
    expect(JSON.parse(run(there, ['status', '--json', '--remote', remote]).stdout)).toMatchObject({ pid, stage: 'running' });
    const t = term(`${bin} remote_console --remote ${remote}`, there);
    await t.waitFor(new RegExp(`Remote console on 127\\.0\\.0\\.1:${port}`));
    await t.waitFor(/web@\S+> $/m);
    t.type('process.pid');
    await t.waitFor(new RegExp(`^${pid}$`, 'm'));
    t.press('C-d');
    await t.waitFor(/\[exit 0\]/);
    // another cookie is refused, and the node logs who tried
    const wrong = run({ ...there, OPS_COOKIE: 'not-the-cookie' }, ['eval', '--remote', remote, 'process.pid']);
    expect(wrong).toMatchObject({ status: 1, stderr: `Node ${remote} refused the connection: wrong cookie (ours is from OPS_COOKIE); use the node's cookie\n` });
    const log = fs.readFileSync(path.join(e.RUNNER_LOG_DIR!, fs.readdirSync(e.RUNNER_LOG_DIR!)[0]!, 'console.log'), 'utf8');
    expect(log).toMatch(new RegExp(`control port listening on 127\\.0\\.0\\.1:${port}`));
    expect(log).toMatch(new RegExp(`refused a control connection: wrong cookie from 127\\.0\\.0\\.1:\\d+ on 127\\.0\\.0\\.1:${port}`));
    // what --remote is not for, and where nothing listens
    expect(run(there, ['stop', '--remote', remote])).toMatchObject({ status: 1, stderr: 'stop: --remote is for eval, remote_console, ping, status; run stop on the node\'s own host\n' });
    expect(run(there, ['ping', '--remote', `127.0.0.1:${await freePort()}`])).toMatchObject({ status: 1, stderr: expect.stringMatching(/^No node answers on 127\.0\.0\.1:\d+ \(is NODEREL_CONTROL_PORT set on it\?\)\n$/) });
    expect(run(e, ['stop']).status).toBe(0);
    expect(run(there, ['ping', '--remote', remote]).status).toBe(1);
  });

  it('with TLS on the control port: --remote verifies the node against a CA file, the REPL works through it, and a client without TLS is told why', async () => {
    const e = await env();
    const ca = makeCa(path.join(e.RELEASE_TMP!, '..', 'pki'));
    const cert = ca.issue('node', 'IP:127.0.0.1');
    const port = await freePort();
    const remote = `127.0.0.1:${port}`;
    // half a pair: start fails with one line naming what is missing
    const half = run({ ...e, NODEREL_CONTROL_PORT: remote, NODEREL_CONTROL_TLS_CERT: cert.certFile }, ['start']);
    expect(half.status).toBe(1);
    expect(half.stderr.split('\n')[0]).toMatch(/failed to start: NODEREL_CONTROL_TLS_CERT is set but NODEREL_CONTROL_TLS_KEY is not/);
    expect(run({ ...e, NODEREL_CONTROL_PORT: remote, NODEREL_CONTROL_TLS_CERT: cert.certFile, NODEREL_CONTROL_TLS_KEY: cert.keyFile }, ['start']).status).toBe(0);
    const pid = Number(run(e, ['pid']).stdout);
    const there = { ...(await env()), NODEREL_CONTROL_TLS_CA: ca.caFile };
    expect(run(there, ['ping', '--remote', remote])).toMatchObject({ status: 0, stdout: 'pong\n' });
    expect(run(there, ['eval', '--remote', remote, 'process.pid'])).toMatchObject({ status: 0, stdout: `${pid}\n` });
    const t = term(`${bin} remote_console --remote ${remote}`, there);
    await t.waitFor(/web@\S+> $/m);
    t.type('6 * 7');
    await t.waitFor(/^42$/m);
    t.press('C-d');
    await t.waitFor(/\[exit 0\]/);
    const { NODEREL_CONTROL_TLS_CA: _ca, ...plain } = there;
    expect(run(plain, ['ping', '--remote', remote])).toMatchObject({
      status: 1,
      stderr: `ping: the node on ${remote} closed the connection before its greeting: if its control port uses TLS, set NODEREL_CONTROL_TLS_CA to the CA file that signed its certificate\n`,
    });
    expect(run({ ...there, NODEREL_CONTROL_TLS_CA: path.join(ca.dir, 'missing.pem') }, ['ping', '--remote', remote])).toMatchObject({
      status: 1,
      stderr: expect.stringMatching(/^cannot read NODEREL_CONTROL_TLS_CA \(.*missing\.pem\): ENOENT/),
    });
    const log = fs.readFileSync(path.join(e.RUNNER_LOG_DIR!, fs.readdirSync(e.RUNNER_LOG_DIR!)[0]!, 'console.log'), 'utf8');
    expect(log).toContain(`control port listening on ${remote} (TLS, cookie-authenticated)`);
    expect(run(e, ['stop']).status).toBe(0);
  });

  it('a NODEREL_CONTROL_PORT that is no address, or a port in use: start fails with one line naming it', async () => {
    const e = await env();
    const r = run({ ...e, NODEREL_CONTROL_PORT: 'everywhere' }, ['start']);
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')[0]).toMatch(/^Node web@\S+ failed to start: NODEREL_CONTROL_PORT is "everywhere": expected PORT, HOST:PORT or \[IPv6\]:PORT, with a port from 1 to 65535$/);
    expect(run(e, ['ping']).status).toBe(1);
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const busy = run({ ...e, NODEREL_CONTROL_PORT: `127.0.0.1:${port}` }, ['start']);
      expect(busy.status).toBe(1);
      expect(busy.stderr.split('\n')[0]).toMatch(new RegExp(`^Node web@\\S+ failed to start: cannot listen on the control port 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      expect(run(e, ['ping']).status).toBe(1);
    } finally {
      taken.close();
    }
  });

  it('also works on a daemon, alongside an attached console', async () => {
    const e = await env();
    expect(run(e, ['start']).status).toBe(0);
    const a = term(`${bin} attach`, e);
    const r = term(`${bin} remote`, e);
    await a.waitFor(/web@\S+> $/m);
    await r.waitFor(/web@\S+> $/m);
    r.type('globalThis.markFromRemote = 42');
    await r.waitFor(/^42$/m);
    a.type('globalThis.markFromRemote');
    await a.waitFor(/^42$/m);
    r.press('C-d');
    a.press('C-d');
    await a.waitFor(/\[exit 0\]/);
    await r.waitFor(/\[exit 0\]/);
    expect(run(e, ['stop']).status).toBe(0);
  });
});

describe('the REPLs evaluate as Node\'s REPL, each input within a time limit (issue 10, items 9 and 10)', () => {
  for (const rel of ['web', 'pool']) {
    it(`${rel}: let persists for the session, the last value prints, require works; an endless loop stops at --timeout and the node keeps serving`, async () => {
      const e = { ...(await env()), REL: rel };
      expect(run(e, ['start']).status).toBe(0);
      const t = term(`${bin} remote_console --timeout 1`, e);
      await t.waitFor(/\S+@\S+> $/m);
      // one input at a time: the next once the answer (or the next prompt) is on the screen
      const enter = async (line: string, answer?: RegExp) => {
        t.type(line);
        await t.waitFor(answer ?? new RegExp(`> ${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n\\S+@\\S+> $`, 'm'));
      };
      await enter('let q = 3');
      await enter('q * 14', /^42$/m);
      await enter('const v = apps.opsapp.greeting; v.toUpperCase()', /^'HELLO'$/m);
      await enter('typeof require + "/" + require("os").platform()', new RegExp(`^'function/${process.platform}'$`, 'm'));
      await enter('const w = await Promise.resolve(q + 1)');
      await enter('w * 10', /^40$/m);
      t.type('while (true) {}');
      await t.waitFor(/eval timed out after 1 s/);
      expect(run(e, ['ping']).stdout).toBe('pong\n');
      t.type('q + v.length');
      await t.waitFor(/^8$/m);
      // another session has bindings of its own
      expect(run(e, ['eval', 'typeof q']).stdout).toBe('undefined\n');
      t.press('C-d');
      await t.waitFor(/\[exit 0\]/);
      expect(run(e, ['stop']).status).toBe(0);
    });
  }
});
