/**
 * attach and remote_console in a real terminal (tmux): what the screen shows, Ctrl-D detaching,
 * Ctrl-C never killing the node, and remote_console into a node started in the foreground.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';
import { Terminal } from '../helpers/tmux.js';

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
