/**
 * The launcher as PID 1 (a container's entrypoint): a PID namespace and /proc of its own (`unshare --pid
 * --fork --mount-proc`, root) runs `bin/<name> foreground` as its PID 1. An orphan the app leaves behind is
 * given to PID 1 by the kernel; once it exits it must be reaped, not stay a zombie (Node reaps
 * only its own children). Signals sent to PID 1 reach the node (HUP reloads, TERM drains and
 * stops), and PID 1 exits with the node's code.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtFixture, tempDir } from '../helpers/project.js';
import { freePort } from '../helpers/ports.js';
import { spawnChild, useChildProcesses } from '../helpers/proc.js';
import { waitFor } from '../helpers/sandbox.js';

useChildProcesses();

let project: { dir: string; bin: string; cleanup: () => void };
let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  ({ ...project } = builtFixture('ops'));
  tmp = tempDir('noderel-pid1-');
});
afterAll(() => {
  project?.cleanup();
  tmp?.cleanup();
});

/** The children of `pid` with their command name and state (R, S, Z, ...). */
function childrenOf(pid: number): { pid: number; comm: string; state: string }[] {
  const ids = fs
    .readdirSync(`/proc/${pid}/task`)
    .flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/))
    .filter(Boolean)
    .map(Number);
  return ids.flatMap((c) => {
    try {
      const stat = fs.readFileSync(`/proc/${c}/stat`, 'utf8');
      return [{ pid: c, comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), state: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]! }];
    } catch {
      return []; // gone meanwhile
    }
  });
}

/**
 * `bin/ops foreground` for node type `rel` as PID 1 of a PID namespace (and /proc) of its own,
 * with its own port and run and log directories; resolves once it answers ping.
 */
async function inNamespace(rel: string) {
  const port = await freePort();
  const dirs = path.join(tmp.dir, rel);
  const env = { ...process.env, REL: rel, OPS_PORT: String(port), RELEASE_TMP: path.join(dirs, 'tmp'), RUNNER_LOG_DIR: path.join(dirs, 'log') };
  // root makes PID namespaces; another user needs a user namespace of its own around it
  const asUser = process.getuid?.() === 0 ? [] : ['--user', '--map-root-user'];
  const ns = spawnChild('unshare', [...asUser, '--pid', '--fork', '--kill-child', '--mount-proc', project.bin, 'foreground'], { env, label: `unshare foreground ${rel}` });
  const run = (args: string[]) => spawnSync(project.bin, args, { env, encoding: 'utf8' });
  await waitFor(() => run(['ping']).status === 0, 'the node answering ping');
  // the namespace's PID 1 is unshare's child
  await waitFor(() => childrenOf(ns.pid).length === 1, 'PID 1 of the namespace');
  return { env, ns, run, init: childrenOf(ns.pid)[0]! };
}

describe('bin/<name> foreground as PID 1', () => {
  it('reaps an orphan the app leaves, passes HUP and TERM on to the node, and exits with its code', async () => {
    const { ns, run, init } = await inNamespace('web');
    expect(init.comm).toBe('ops'); // the launcher (sh running bin/ops), not the node
    expect(childrenOf(init.pid).map((c) => c.comm)).toEqual(['web']);

    // the app double-forks: the inner sleep is orphaned and given to PID 1, then exits
    const evald = run(['eval', "require('child_process').spawn('sh', ['-c', 'sleep 1 & exit 0'], { stdio: 'ignore' }); 'spawned'"]);
    expect(evald.stdout).toBe('spawned\n');
    await waitFor(() => childrenOf(init.pid).some((c) => c.comm === 'sleep'), 'the orphan adopted by PID 1');
    await waitFor(() => childrenOf(init.pid).every((c) => c.comm !== 'sleep'), 'the orphan reaped once it exited (not left a zombie)', 10_000);

    // signals to PID 1 reach the node
    process.kill(init.pid, 'SIGHUP');
    await ns.waitForOutput(/received SIGHUP/);
    expect(run(['ping']).status).toBe(0);
    process.kill(init.pid, 'SIGTERM');
    await ns.waitForOutput(/node web@\S+ stopped/);
    expect((await ns.waitForExit()).code).toBe(0);
    expect(run(['ping']).status).toBe(1);
  }, 120_000);

  it('follows a USR2 successor: after the old master quits, PID 1 keeps running with the new one, and passes TERM to it', async () => {
    const { env, ns, run, init } = await inNamespace('pool');
    const [oldMaster] = childrenOf(init.pid);
    expect(oldMaster!.comm).toBe('ops_pool');
    const pidFile = path.join(env.RELEASE_TMP, fs.readdirSync(env.RELEASE_TMP).find((d) => d.startsWith('pool@'))!, 'node.pid');
    const oldNsPid = fs.readFileSync(pidFile, 'utf8').trim();

    const status = (): { pid?: number; stage?: string; workers?: { state: string }[] } => {
      try {
        return JSON.parse(run(['status', '--json']).stdout) as { pid?: number; stage?: string; workers?: { state: string }[] };
      } catch {
        return {};
      }
    };
    // USR2 once the master and its workers are ready (during its boot a USR2 fails, and the master keeps serving)
    await waitFor(() => status().workers?.filter((w) => w.state === 'ready').length === 2, 'the workers ready');
    process.kill(oldMaster!.pid, 'SIGUSR2');
    await waitFor(() => fs.existsSync(`${pidFile}.oldbin`) && fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== oldNsPid, 'the new master');
    const newNsPid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor(() => status().pid === newNsPid && status().stage === 'running', 'the new master answering, running');
    process.kill(oldMaster!.pid, 'SIGQUIT');
    // the old master is gone; the new one (its child) was given to PID 1, which now follows it
    await waitFor(() => !childrenOf(init.pid).some((c) => c.pid === oldMaster!.pid), 'the old master gone');
    await waitFor(() => childrenOf(init.pid).some((c) => c.comm === 'ops_pool'), 'the new master adopted by PID 1');
    expect(childrenOf(ns.pid).map((c) => c.pid)).toEqual([init.pid]); // PID 1 still runs
    expect(run(['ping']).status).toBe(0);

    process.kill(init.pid, 'SIGTERM');
    expect((await ns.waitForExit()).code).toBe(0);
    expect(run(['ping']).status).toBe(1);
  }, 120_000);
});
