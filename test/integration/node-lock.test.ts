// The node lock with real processes: ten racing starts give one node, every loser names it, a
// SIGKILLed holder leaves no stale lock, release() frees it at once. Children import the
// compiled module from dist/node (built by the global setup), as a release ships it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { acquireNodeLock, lockName, LOCK_FILE, type LockMethod, type NodeLock } from '../../src/node/supervision/node-lock.js';
import { spawnChild, useChildProcesses, type Child } from '../helpers/proc.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const compiledLock = pathToFileURL(path.join(repo, 'dist', 'node', 'supervision', 'node-lock.js')).href;

// argv: <runDir> <method> <mode> [goFile]
//   mode hold:    keep the lock (and the process) until killed
//   mode release: release the lock, say so, and stay alive
//   mode idle:    do nothing more; the process must exit by itself (the lock does not keep it up)
const CHILD = `
import fs from 'node:fs';
const [runDir, method, mode, goFile] = process.argv.slice(2);
const { acquireNodeLock } = await import(${JSON.stringify(compiledLock)});
if (goFile) {
  process.stdout.write('ready\\n');
  while (!fs.existsSync(goFile)) await new Promise((r) => setTimeout(r, 2));
}
const r = await acquireNodeLock(runDir, { method });
if (r.acquired) {
  process.stdout.write('won ' + process.pid + '\\n');
  if (mode === 'hold') setInterval(() => {}, 60_000);
  if (mode === 'release') {
    r.lock.release();
    process.stdout.write('released\\n');
    setInterval(() => {}, 60_000);
  }
} else {
  process.stdout.write('lost ' + r.heldBy + '\\n');
}
`;

useChildProcesses();

let tmp: string;
let script: string;
const held: NodeLock[] = [];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'noderel-lock-'));
  script = path.join(tmp, 'contender.mjs');
  fs.writeFileSync(script, CHILD);
});

afterEach(() => {
  for (const lock of held.splice(0)) lock.release();
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let dirs = 0;
function newRunDir(): string {
  return path.join(tmp, `run-${++dirs}`, 'kazoo_apps@host');
}

function contender(runDir: string, method: LockMethod, mode: 'hold' | 'release' | 'idle', goFile?: string): Child {
  const args = [script, runDir, method, mode, ...(goFile ? [goFile] : [])];
  return spawnChild(process.execPath, args, { label: `contender ${mode}` });
}

/** The child's verdict: `{ won: pid }` or `{ lost: heldBy }`. */
async function verdict(child: Child): Promise<{ outcome: 'won' | 'lost'; pid: number | undefined }> {
  const m = await child.waitForOutput(/^(won|lost) (\S+)$/m);
  const pid = m[2] === 'undefined' ? undefined : Number(m[2]);
  return { outcome: m[1] as 'won' | 'lost', pid };
}

/** Ten processes, started together behind a barrier, all try to take the lock on `runDir`. */
async function race(runDir: string, method: LockMethod): Promise<{ winner: Child; losers: Child[] }> {
  const go = path.join(tmp, `go-${path.basename(path.dirname(runDir))}`);
  const children = Array.from({ length: 10 }, () => contender(runDir, method, 'hold', go));
  await Promise.all(children.map((c) => c.waitForOutput(/^ready$/m)));
  fs.writeFileSync(go, '');
  const verdicts = await Promise.all(children.map(verdict));
  const winners = children.filter((_, i) => verdicts[i]?.outcome === 'won');
  expect(winners, `exactly one winner among ${verdicts.map((v) => `${v.outcome} ${v.pid}`).join(', ')}`).toHaveLength(1);
  const winner = winners[0] as Child;
  for (const [i, v] of verdicts.entries()) {
    if (v.outcome === 'won') expect(v.pid).toBe(winner.pid);
    else expect(v.pid, `loser ${children[i]?.pid} names the winner`).toBe(winner.pid);
  }
  const losers = children.filter((c) => c !== winner);
  // Losers report and exit; the winner holds on.
  for (const loser of losers) expect((await loser.waitForExit()).code).toBe(0);
  expect(winner.exitStatus).toBeUndefined();
  return { winner, losers };
}

describe.runIf(process.platform === 'linux')('node lock: abstract socket (Linux)', () => {
  it('lets exactly one of ten concurrent processes win, and every loser names the winner', async () => {
    const runDir = newRunDir();
    const { winner } = await race(runDir, 'abstract-socket');
    // The lock lives in the kernel, not on disk.
    expect(fs.readdirSync(runDir)).toEqual([]);
    await winner.kill();
  });

  it('leaves no stale lock when the holder is SIGKILLed: the next process wins at once', async () => {
    const runDir = newRunDir();
    const first = contender(runDir, 'abstract-socket', 'hold');
    expect((await verdict(first)).outcome).toBe('won');
    const loser = contender(runDir, 'abstract-socket', 'idle');
    expect(await verdict(loser)).toMatchObject({ outcome: 'lost', pid: first.pid });

    await first.kill(); // SIGKILL: no exit handler runs
    const next = contender(runDir, 'abstract-socket', 'hold');
    // Without waitMs an acquire answers after one round: it wins only if nothing of the killed
    // holder is left (a stale name would make it lose, naming the dead pid or nobody).
    expect(await verdict(next)).toMatchObject({ outcome: 'won', pid: next.pid });
    expect((await verdict(contender(runDir, 'abstract-socket', 'idle'))).pid).toBe(next.pid);
  });

  it('frees the lock on release(), while the process lives on', async () => {
    const runDir = newRunDir();
    const first = contender(runDir, 'abstract-socket', 'release');
    await first.waitForOutput(/^released$/m);
    const next = contender(runDir, 'abstract-socket', 'hold');
    expect((await verdict(next)).outcome).toBe('won');
    expect(first.exitStatus).toBeUndefined(); // freed by release(), not by the exit
  });

  it('does not keep the event loop alive', async () => {
    const child = contender(newRunDir(), 'abstract-socket', 'idle');
    expect((await verdict(child)).outcome).toBe('won');
    expect(await child.waitForExit(5_000)).toEqual({ code: 0, signal: null });
  });

  it('in one process: a second acquire names this process; release() makes it free again', async () => {
    const runDir = newRunDir();
    const first = await acquireNodeLock(runDir);
    expect(first.acquired).toBe(true);
    if (!first.acquired) return;
    held.push(first.lock);
    expect(await acquireNodeLock(runDir)).toEqual({ acquired: false, heldBy: process.pid });
    first.lock.release();
    first.lock.release(); // idempotent
    const again = await acquireNodeLock(runDir);
    expect(again.acquired).toBe(true);
    if (again.acquired) held.push(again.lock);
  });

  it('with waitMs, waits for the holder to go away', async () => {
    const runDir = newRunDir();
    const holder = contender(runDir, 'abstract-socket', 'hold');
    expect((await verdict(holder)).outcome).toBe('won');
    expect(await acquireNodeLock(runDir)).toEqual({ acquired: false, heldBy: holder.pid });
    const events: string[] = [];
    const waiting = acquireNodeLock(runDir, { waitMs: 30_000 }).then((r) => {
      events.push(r.acquired ? 'acquired' : 'gave up');
      return r;
    });
    // Let it try while the holder lives (it must keep waiting), then take the holder away.
    await new Promise((r) => setTimeout(r, 300));
    events.push('holder killed');
    await holder.kill();
    const r = await waiting;
    if (r.acquired) held.push(r.lock);
    expect(events).toEqual(['holder killed', 'acquired']);
  });

  it('keys the lock by the real path of the run directory', async () => {
    const runDir = newRunDir();
    fs.mkdirSync(runDir, { recursive: true });
    const link = path.join(tmp, `link-${dirs}`);
    fs.symlinkSync(runDir, link);
    const other = newRunDir();
    fs.mkdirSync(other, { recursive: true });

    const name = lockName(runDir);
    expect(name.startsWith('\0noderel-lock:')).toBe(true);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(107);
    expect(lockName(link)).toBe(name);
    expect(lockName(path.join(runDir, '.'))).toBe(name);
    expect(lockName(other)).not.toBe(name);

    const viaDir = await acquireNodeLock(runDir);
    expect(viaDir.acquired).toBe(true);
    if (viaDir.acquired) held.push(viaDir.lock);
    expect(await acquireNodeLock(link)).toEqual({ acquired: false, heldBy: process.pid });
    const elsewhere = await acquireNodeLock(other);
    expect(elsewhere.acquired).toBe(true);
    if (elsewhere.acquired) held.push(elsewhere.lock);
  });

  it('creates a missing run directory', async () => {
    const runDir = newRunDir();
    const r = await acquireNodeLock(runDir);
    expect(r.acquired).toBe(true);
    if (r.acquired) held.push(r.lock);
    expect(fs.statSync(runDir).isDirectory()).toBe(true);
  });
});

describe('node lock: lock file (other platforms)', () => {
  it('lets exactly one of ten concurrent processes win, and every loser names the winner', async () => {
    const runDir = newRunDir();
    const { winner } = await race(runDir, 'lock-file');
    expect(fs.readFileSync(path.join(runDir, LOCK_FILE), 'utf8')).toBe(`${winner.pid}\n`);
    await winner.kill();
  });

  it('takes over the lock of a SIGKILLed holder at once', async () => {
    const runDir = newRunDir();
    const first = contender(runDir, 'lock-file', 'hold');
    expect((await verdict(first)).outcome).toBe('won');
    await first.kill();
    expect(fs.readFileSync(path.join(runDir, LOCK_FILE), 'utf8')).toBe(`${first.pid}\n`); // stale, left behind
    const next = contender(runDir, 'lock-file', 'hold');
    // Without waitMs an acquire answers after one round: it wins only by taking over the dead
    // holder's file (a live-looking holder would make it lose, naming that pid).
    expect(await verdict(next)).toMatchObject({ outcome: 'won', pid: next.pid });
    expect(fs.readFileSync(path.join(runDir, LOCK_FILE), 'utf8')).toBe(`${next.pid}\n`);
    expect((await verdict(contender(runDir, 'lock-file', 'idle'))).pid).toBe(next.pid);
  });

  it('lets exactly one of ten concurrent processes take over a stale lock', async () => {
    const runDir = newRunDir();
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(path.join(runDir, LOCK_FILE), `${deadPid()}\n`);
    const { winner } = await race(runDir, 'lock-file');
    expect(fs.readFileSync(path.join(runDir, LOCK_FILE), 'utf8')).toBe(`${winner.pid}\n`);
    expect(fs.readdirSync(runDir)).toEqual([LOCK_FILE]); // no temp files left
  });

  it('removes the lock file on release(), and when the process exits normally', async () => {
    const runDir = newRunDir();
    const releaser = contender(runDir, 'lock-file', 'release');
    await releaser.waitForOutput(/^released$/m);
    expect(fs.existsSync(path.join(runDir, LOCK_FILE))).toBe(false);

    const idle = contender(runDir, 'lock-file', 'idle');
    expect((await verdict(idle)).outcome).toBe('won');
    expect((await idle.waitForExit(5_000)).code).toBe(0); // the lock keeps nothing alive
    expect(fs.existsSync(path.join(runDir, LOCK_FILE))).toBe(false);
  });

  it('in one process: a second acquire names this process; release() only removes our own file', async () => {
    const runDir = newRunDir();
    const file = path.join(runDir, LOCK_FILE);
    const first = await acquireNodeLock(runDir, { method: 'lock-file' });
    expect(first.acquired).toBe(true);
    if (!first.acquired) return;
    expect(await acquireNodeLock(runDir, { method: 'lock-file' })).toEqual({ acquired: false, heldBy: process.pid });
    fs.writeFileSync(file, '1\n'); // someone else's now (pid 1 is alive)
    first.lock.release();
    expect(fs.readFileSync(file, 'utf8')).toBe('1\n');
    expect(await acquireNodeLock(runDir, { method: 'lock-file' })).toEqual({ acquired: false, heldBy: 1 });
  });

  it('treats a lock file with our own pid that this process does not hold as stale (a restarted container)', async () => {
    const runDir = newRunDir();
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(path.join(runDir, LOCK_FILE), `${process.pid}\n`);
    const r = await acquireNodeLock(runDir, { method: 'lock-file' });
    expect(r.acquired).toBe(true);
    if (r.acquired) r.lock.release();
    expect(fs.existsSync(path.join(runDir, LOCK_FILE))).toBe(false);
  });

  it('waits for an empty lock file to be filled in, and takes it over once it is old', async () => {
    const runDir = newRunDir();
    fs.mkdirSync(runDir, { recursive: true });
    const file = path.join(runDir, LOCK_FILE);
    fs.writeFileSync(file, ''); // a winner between its create and its write...
    expect(await acquireNodeLock(runDir, { method: 'lock-file' })).toEqual({ acquired: false });
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(file, old, old); // ...or one that died there
    const r = await acquireNodeLock(runDir, { method: 'lock-file' });
    expect(r.acquired).toBe(true);
    if (r.acquired) r.lock.release();
  });
});

/** A pid that no process has: that of a child that has exited (and been reaped). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid;
}
