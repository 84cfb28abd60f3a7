/**
 * Issue 4's faults with real processes and signals, on a node type with 2 workers (`pool` of the
 * ops fixture): respawn, the spawn-loop guard, no orphans after a master SIGKILL, TTIN/TTOU,
 * HUP replacing workers without a failed request, WINCH, ALRM, and USR1 log reopening under
 * traffic. Every test stops what it started (sandbox cleanup kills by pid).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture } from '../helpers/project.js';
import { alive, cleanupSandboxes, httpGet, sandbox, waitFor } from '../helpers/sandbox.js';
import { Terminal } from '../helpers/tmux.js';

let project: { dir: string; cleanup: () => void };
let bin: string;
beforeAll(() => {
  ({ bin, ...project } = builtFixture('ops'));
});
afterAll(() => project?.cleanup());
afterEach(cleanupSandboxes);

const pool = (extra: NodeJS.ProcessEnv = {}) => sandbox(bin, 'pool', 'OPS_PORT', extra);

interface Status {
  pid: number;
  in_flight: number;
  workers: { index: number; pid: number; state: string }[];
  spawn_loop: number[];
}
function status(s: Awaited<ReturnType<typeof pool>>): Status {
  const r = s.run(['status', '--json']);
  if (r.status !== 0) throw new Error(`status --json exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Status;
}
const readyPids = (s: Awaited<ReturnType<typeof pool>>) =>
  status(s)
    .workers.filter((w) => w.state === 'ready')
    .map((w) => w.pid)
    .sort();

/** Pids of the processes whose parent is `pid`. */
function children(pid: number): number[] {
  const out = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

describe('workers', () => {
  it('eval and remote_console reach the apps, which live in the workers', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const workerPids = status(s).workers.map((w) => w.pid);
    expect(JSON.parse(s.run(['status', '--json']).stdout).apps).toEqual(['opsapp']);
    // eval runs in a ready worker: the app's state is there, not in the master
    expect(s.run(['eval', 'apps.opsapp.port + 1']).stdout).toBe(`${s.port + 1}\n`);
    expect(workerPids).toContain(Number(s.run(['eval', 'process.pid']).stdout));
    const bad = s.run(['eval', 'nosuchthing.x']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/ReferenceError: nosuchthing is not defined/);
    // the REPL too, input by input; an unfinished expression asks for more
    const t = Terminal.start(`${bin} remote_console`, s.env);
    try {
      await t.waitFor(/pool@\S+> $/m);
      t.type('apps.opsapp.port');
      await t.waitFor(new RegExp(`^${s.port}$`, 'm'));
      t.type('[1,');
      await t.waitFor(/^\.\.\. $/m);
      t.type('2].length');
      await t.waitFor(/^2$/m);
      t.type('process.pid');
      // the answer after the echo of the input (the `2` above, with its prompt, would match alone)
      const screen = await t.waitFor(/process\.pid\n\d+\n.*pool@\S+> $/ms);
      const pids = [...screen.matchAll(/process\.pid\n(\d+)$/gm)].map((m) => Number(m[1]));
      expect(workerPids).toContain(pids.at(-1));
      t.press('C-d');
      await t.waitFor(/\[exit 0\]/);
    } finally {
      t.close();
    }
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a master and 2 workers that all accept on the same port; pgrep -x finds the master', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    const st = status(s);
    expect(st.workers.map((w) => w.state)).toEqual(['ready', 'ready']);
    expect(children(master).sort()).toEqual(st.workers.map((w) => w.pid).sort());
    const pgrep = spawnSync('pgrep', ['-x', 'ops_pool'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    expect(pgrep).toContain(master);
    for (const w of st.workers) expect(pgrep).not.toContain(w.pid);
    // A worker runs its own bundle, only what a worker needs (bench/README.md: memory).
    expect(s.run(['eval', 'process.mainModule.filename']).stdout).toMatch(/\/lib\/noderel-[^/]+\/worker-main\.js\n$/);
    // Both workers serve (the kernel spreads connections over the accepting processes).
    const served = new Set<string>();
    for (let i = 0; i < 200 && served.size < 2; i++) served.add((await httpGet(s.port, `/log?id=${i}`)).body.trim());
    expect([...served].map(Number).sort()).toEqual(st.workers.map((w) => w.pid).sort());
    expect(s.run(['stop']).status).toBe(0);
    for (const w of st.workers) expect(alive(w.pid)).toBe(false);
  });

  it("an app's ipv6Only listen reaches the socket the master binds for its workers", async () => {
    const s = await pool({ OPS_IPV6ONLY: '1' });
    expect(s.run(['start']).status).toBe(0);
    const connects = (host: string) =>
      new Promise<boolean>((resolve) => {
        const c = net.connect({ host, port: s.port });
        c.once('connect', () => (c.destroy(), resolve(true)));
        c.once('error', () => resolve(false));
      });
    expect(await connects('::1')).toBe(true);
    expect(await connects('127.0.0.1')).toBe(false);
    expect(readyPids(s)).toHaveLength(2);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a worker killed with SIGKILL is respawned', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const [victim, other] = readyPids(s);
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => {
      const pids = readyPids(s);
      return pids.length === 2 && !pids.includes(victim!);
    }, 'a replacement worker');
    expect(readyPids(s)).toContain(other);
    expect((await httpGet(s.port)).status).toBe(200);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a worker that dies at boot again and again trips the spawn-loop guard', async () => {
    const failFile = path.join(project.dir, `fail-${process.pid}-${Date.now()}`);
    const s = await pool({ OPS_FAIL_FILE: failFile });
    expect(s.run(['start']).status).toBe(0);
    fs.writeFileSync(failFile, 'x');
    try {
      const [victim] = readyPids(s);
      process.kill(victim!, 'SIGKILL');
      await waitFor(() => status(s).spawn_loop.length === 1, 'the spawn-loop guard', 60_000);
      const log = fs.readFileSync(s.logFile(), 'utf8');
      expect(log).toMatch(/worker \d died during boot 5 times in a row: spawn loop, not respawning it/);
      expect(log.match(/respawning worker \d in \d+ ms/g)!.map((l) => Number(/in (\d+) ms/.exec(l)![1]))).toEqual([100, 200, 400, 800, 1600]);
      expect(status(s).workers.filter((w) => w.state === 'ready')).toHaveLength(1);
      expect((await httpGet(s.port)).status).toBe(200); // the other worker still serves
    } finally {
      fs.rmSync(failFile, { force: true });
    }
    // HUP clears the guard and brings the worker back.
    process.kill(s.pid()!, 'SIGHUP');
    await waitFor(() => status(s).workers.filter((w) => w.state === 'ready').length === 2 && status(s).spawn_loop.length === 0, 'HUP to restore the workers');
    expect(s.run(['stop']).status).toBe(0);
  });

  it('both workers in a spawn loop: status and ping say degraded, the port refuses, TTIN and HUP bring the pool back', async () => {
    const failFile = path.join(project.dir, `fail-${process.pid}-${Date.now()}`);
    const s = await pool({ OPS_FAIL_FILE: failFile });
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    const connect = () =>
      new Promise<string>((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port: s.port });
        c.once('connect', () => (c.destroy(), resolve('connected')));
        c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
    const tripBoth = async (): Promise<void> => {
      fs.writeFileSync(failFile, 'x');
      for (const pid of readyPids(s)) process.kill(pid, 'SIGKILL');
      await waitFor(() => status(s).spawn_loop.length === 2, 'both slots in the spawn-loop guard', 60_000);
    };
    const restored = async (how: string): Promise<void> => {
      await waitFor(() => readyPids(s).length === 2 && status(s).spawn_loop.length === 0, `${how} to bring the pool back`);
      expect(status(s).workers.map((w) => w.index)).toEqual([0, 1]); // the configured slots, not a third
      expect((await httpGet(s.port)).status).toBe(200);
      expect(s.run(['ping'])).toMatchObject({ status: 0, stdout: 'pong\n' });
    };
    try {
      await tripBoth();
      const human = s.run(['status']).stdout;
      expect(human).toMatch(/^stage: +running \(DEGRADED: spawn loop: workers 0, 1 not respawned \(HUP or TTIN tries again\); 0 of 2 workers ready/m);
      expect(human).toMatch(/^workers: +0 of 2 ready; spawn loop, not respawned: 0, 1$/m);
      expect(JSON.parse(s.run(['status', '--json']).stdout)).toMatchObject({ workers_target: 2, degraded: expect.stringMatching(/spawn loop/) });
      const ping = s.run(['ping']);
      expect(ping.status).toBe(3);
      expect(ping.stdout).toBe('');
      expect(ping.stderr).toMatch(/^Node pool@\S+ answers but is degraded: spawn loop: workers 0, 1/);
      // No worker accepts: a refusal, not a connection left hanging in the backlog.
      expect(await connect()).toBe('ECONNREFUSED');
      expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/no worker serves 127\.0\.0\.1:\d+ any more: closed its listening socket/);

      fs.rmSync(failFile);
      process.kill(master, 'SIGTTIN');
      await restored('TTIN');
      expect(fs.readFileSync(s.logFile(), 'utf8')).toMatch(/TTIN: respawning workers 0, 1 \(spawn-loop guard cleared\); 2 workers/);

      await tripBoth();
      expect(await connect()).toBe('ECONNREFUSED');
      fs.rmSync(failFile);
      process.kill(master, 'SIGHUP');
      await restored('HUP');
    } finally {
      fs.rmSync(failFile, { force: true });
    }
    expect(s.run(['stop']).status).toBe(0);
  });

  it('killing the master with SIGKILL leaves no orphaned worker within 2 seconds', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    const workers = status(s).workers.map((w) => w.pid);
    expect(workers).toHaveLength(2);
    process.kill(master, 'SIGKILL');
    // waitFor fails once 2 s have passed with a worker still alive.
    await waitFor(() => workers.every((p) => !alive(p)), 'the workers to leave', 2_000);
  });

  it('TTIN and TTOU add and remove a worker', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    process.kill(master, 'SIGTTIN');
    await waitFor(() => readyPids(s).length === 3, 'a third worker');
    // Signals of one kind pending together are delivered once: wait between them.
    process.kill(master, 'SIGTTOU');
    await waitFor(() => status(s).workers.length === 2, 'two workers left');
    process.kill(master, 'SIGTTOU');
    await waitFor(() => status(s).workers.length === 1, 'one worker left');
    expect((await httpGet(s.port)).status).toBe(200);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('HUP replaces every worker gracefully: new pids, no failed request meanwhile', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const before = readyPids(s);
    let failed = 0;
    let done = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        await httpGet(s.port, '/work?ms=5').then(
          (r) => (r.status === 200 ? done++ : failed++),
          () => failed++,
        );
      }
    })();
    await waitFor(() => done > 20, 'traffic');
    process.kill(s.pid()!, 'SIGHUP');
    await waitFor(() => {
      const now = readyPids(s);
      return now.length === 2 && now.every((p) => !before.includes(p)) && status(s).workers.length === 2;
    }, 'new workers after HUP');
    const after = done;
    await waitFor(() => done > after + 20, 'traffic on the new workers');
    running = false;
    await load;
    expect(failed).toBe(0);
    for (const p of before) expect(alive(p)).toBe(false);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('keep-alive clients of a plain program app through two HUP reloads: no failed request', async () => {
    const s = await sandbox(bin, 'plainpool', 'OPS_PORT');
    expect(s.run(['start']).status).toBe(0);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const get = () =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: s.port, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
    let failed = 0;
    let done = 0;
    let running = true;
    const clients = Array.from({ length: 8 }, async () => {
      while (running) await get().then((code) => (code === 200 ? done++ : failed++), () => failed++);
    });
    for (let i = 0; i < 2; i++) {
      const before = readyPids(s);
      await waitFor(() => done > 50 * (i + 1), 'traffic');
      process.kill(s.pid()!, 'SIGHUP');
      await waitFor(() => {
        const now = readyPids(s);
        return now.length === 2 && now.every((p) => !before.includes(p)) && status(s).workers.length === 2;
      }, 'the workers to be replaced');
    }
    const after = done;
    await waitFor(() => done > after + 50, 'traffic after the reloads');
    running = false;
    await Promise.all(clients);
    agent.destroy();
    expect(failed).toBe(0);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('WINCH stops the workers of a daemon and keeps the master; HUP brings them back', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    process.kill(master, 'SIGWINCH');
    await waitFor(() => status(s).workers.length === 0, 'the workers to stop');
    expect(alive(master)).toBe(true);
    expect(s.run(['ping']).stdout).toBe('pong\n');
    process.kill(master, 'SIGHUP');
    await waitFor(() => readyPids(s).length === 2, 'the workers to come back');
    expect((await httpGet(s.port)).status).toBe(200);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('the master and each worker collect their boot garbage, unless NODEREL_GC_AFTER_BOOT=0', async () => {
    const gcLines = (log: string) => [...log.matchAll(/\[pool@[^\]/]+(\/w\d)?\] garbage collected after boot in [\d.]+ ms: heap ([\d.]+) MiB -> ([\d.]+) MiB/g)];
    const s = await pool({ NODEREL_LOG_LEVEL: 'debug' });
    expect(s.run(['start']).status).toBe(0);
    // the master's runs once its workers are ready (after `start` returns); the workers' before their apps start
    await waitFor(() => gcLines(fs.readFileSync(s.logFile(), 'utf8')).length === 3, 'three collections');
    const gcs = gcLines(fs.readFileSync(s.logFile(), 'utf8'));
    expect(gcs.map((m) => m[1] ?? 'master').sort()).toEqual(['/w0', '/w1', 'master']);
    for (const m of gcs) expect(Number(m[3]), m[0]).toBeLessThan(Number(m[2]));
    expect((await httpGet(s.port)).status).toBe(200);
    expect(s.run(['stop']).status).toBe(0);

    const off = await pool({ NODEREL_LOG_LEVEL: 'debug', NODEREL_GC_AFTER_BOOT: '0' });
    expect(off.run(['start']).status).toBe(0);
    await waitFor(() => /\/w1\] app opsapp started/.test(fs.readFileSync(off.logFile(), 'utf8')), 'worker 1 to start its app');
    // a status round-trip goes through the master and both workers after their boot
    expect(status(off).workers.map((w) => w.state)).toEqual(['ready', 'ready']);
    expect(fs.readFileSync(off.logFile(), 'utf8')).not.toMatch(/garbage collected|no garbage collection/);
    expect(off.run(['stop']).status).toBe(0);
  });

  it('ALRM toggles trace logging in the workers: trace lines appear, then stop', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    await httpGet(s.port, '/log?id=before');
    process.kill(master, 'SIGALRM');
    await waitFor(() => /ALRM: log level trace/.test(fs.readFileSync(s.logFile(), 'utf8')), 'the level change');
    // Each worker gets the new level over IPC; ask until one of our requests is traced.
    await waitFor(async () => {
      await httpGet(s.port, '/log?id=during');
      return /trace during/.test(fs.readFileSync(s.logFile(), 'utf8'));
    }, 'a trace line');
    process.kill(master, 'SIGALRM');
    await waitFor(() => /ALRM: log level info/.test(fs.readFileSync(s.logFile(), 'utf8')), 'the level back to info');
    // Let both workers see it: a status round-trip goes through each worker's IPC after the level message.
    status(s);
    for (let i = 0; i < 20; i++) await httpGet(s.port, `/log?id=after${i}`);
    // Worker lines reach the log through the master's pipe: wait for the last one.
    await waitFor(() => /request after19/.test(fs.readFileSync(s.logFile(), 'utf8')), 'the last request line');
    const log = fs.readFileSync(s.logFile(), 'utf8');
    expect(log).not.toMatch(/trace after/);
    expect(log).not.toMatch(/trace before/);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('a logrotate-style rename and USR1 under traffic: every request line lands in one of the two files', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const log = s.logFile();
    const ids: string[] = [];
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        ids.push(`r${i}`);
        expect((await httpGet(s.port, `/log?id=r${i}`)).status).toBe(200);
      }
    };
    const traffic = send(0, 300);
    await waitFor(() => ids.length > 100, 'traffic');
    fs.renameSync(log, `${log}.1`);
    process.kill(s.pid()!, 'SIGUSR1');
    await traffic;
    await waitFor(() => fs.existsSync(log), 'the reopened log');
    await waitFor(() => {
      const all = fs.readFileSync(`${log}.1`, 'utf8') + fs.readFileSync(log, 'utf8');
      return ids.every((id) => all.includes(`request ${id}\n`));
    }, 'every request line');
    const all = fs.readFileSync(`${log}.1`, 'utf8') + fs.readFileSync(log, 'utf8');
    for (const id of ids) expect(all.split(`request ${id}\n`).length - 1, id).toBe(1);
    expect(fs.readFileSync(log, 'utf8')).toMatch(/request r\d+/);
    expect(s.run(['stop']).status).toBe(0);
  });

  it('TERM with a request in flight: the workers finish it, then the master exits', async () => {
    const s = await pool();
    expect(s.run(['start']).status).toBe(0);
    const master = s.pid()!;
    const held = httpGet(s.port, '/work?ms=1500');
    await waitFor(() => status(s).in_flight === 1, 'the request in flight');
    process.kill(master, 'SIGTERM');
    expect((await held).body).toBe('worked\n');
    await waitFor(() => !alive(master), 'the master to exit');
  });
});
