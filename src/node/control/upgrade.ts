/**
 * `upgrade VSN` / `downgrade VSN`: install the version if it is only a tarball, make
 * it current, and switch the running node to it the unicorn way, with readiness checks:
 *
 *   1. releases/<name>-<vsn>.tar.gz unpacked beside the installed versions (only the pieces of
 *      that version: bin/<name>-<vsn>, node-<v>/, lib/*-<v>/, releases/<vsn>/), unless installed
 *   2. releases/start.data and bin/<name> point at <vsn>
 *   3. the running master re-execs (USR2) through bin/<name>: a new master of <vsn> on the same
 *      listening sockets; the request returns once it is ready (or failed)
 *   4. WINCH to the old master (its workers finish their work and stop), then QUIT; wait until
 *      it is gone. A single-process node (no workers) gets TERM instead: stage 1, it keeps
 *      taking work on the shared sockets until it stops listening, and leaves once it is done
 * If the new master fails, the old one keeps serving and step 2 is undone.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { launcher as launcherFile, manifestFile, releaseVersionDir, RELEASES_DIR, releasePath, START_DATA, upgradeTarball, versionedLauncher } from '../../contract/layout.js';
import { controlRequest, ControlError } from './control.js';
import { controlTarget } from './client.js';
import { BootError } from '../errors.js';
import { readLaunchEnv } from '../release/launch-env.js';
import { readManifest } from '../release/manifest.js';
import { isAlive } from '../supervision/pid-file.js';

const VSN_RE = /^[0-9A-Za-z][0-9A-Za-z.+_-]*$/;

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Writes a file atomically (temp file + rename), keeping `mode`. */
function replaceFile(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/** Unpacks `<name>-<vsn>.tar.gz` from releases/ unless the version is installed. */
export function ensureInstalled(root: string, name: string, vsn: string): 'installed' | 'unpacked' {
  if (existsSync(releasePath(root, manifestFile(vsn)))) return 'installed';
  const tarball = releasePath(root, upgradeTarball(name, vsn));
  if (!existsSync(tarball)) {
    const installed = readdirSync(releasePath(root, RELEASES_DIR)).filter((d) => existsSync(releasePath(root, manifestFile(d))));
    throw new BootError('EUPGRADE', `${name} ${vsn} is not installed and ${tarball} does not exist; copy the tarball of \`noderel tar\` there (installed: ${installed.join(', ')})`);
  }
  const stage = mkdtempSync(join(root, '.unpack-'));
  try {
    execFileSync('tar', ['xzf', tarball, '-C', stage], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (!existsSync(releasePath(stage, manifestFile(vsn)))) {
      throw new BootError('EUPGRADE', `${tarball} holds no ${manifestFile(vsn)}; is it the tarball of ${name} ${vsn}?`);
    }
    // Only this version's own pieces: never the current bin/<name>, start.data or the cookie.
    const pieces = [versionedLauncher(name, vsn), releaseVersionDir(vsn)];
    for (const top of ['lib']) for (const d of readdirSync(join(stage, top))) pieces.push(`${top}/${d}`);
    for (const d of readdirSync(stage)) if (d.startsWith('node-')) pieces.push(d);
    for (const piece of pieces) {
      const from = join(stage, piece);
      const to = join(root, piece);
      if (!existsSync(from) || existsSync(to)) continue; // same-named pieces are the same version
      mkdirSync(dirname(to), { recursive: true });
      renameSync(from, to);
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return 'unpacked';
}

interface Current {
  startData: string;
  launcher: Buffer;
}

/** Makes `vsn` the current version; returns what it replaced, to undo. */
function makeCurrent(root: string, name: string, vsn: string): Current {
  const startData = releasePath(root, START_DATA);
  const launcher = releasePath(root, launcherFile(name));
  const previous = { startData: readFileSync(startData, 'utf8'), launcher: readFileSync(launcher) };
  const manifest = readManifest(root, vsn);
  replaceFile(launcher, readFileSync(releasePath(root, versionedLauncher(name, vsn))), 0o755);
  replaceFile(startData, `${manifest.nodeVersion} ${vsn}\n`, 0o644);
  return previous;
}

function restore(root: string, name: string, previous: Current): void {
  replaceFile(releasePath(root, launcherFile(name)), previous.launcher, 0o755);
  replaceFile(releasePath(root, START_DATA), previous.startData, 0o644);
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** Runs `upgrade VSN` or `downgrade VSN`; resolves with the exit code. */
export async function runUpgrade(command: 'upgrade' | 'downgrade', vsn: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const launch = readLaunchEnv(env);
  const name = launch.relName ?? '';
  if (!VSN_RE.test(vsn)) throw new BootError('EUPGRADE', `${command}: "${vsn}" is not a version`);
  const how = ensureInstalled(launch.root, name, vsn);
  if (how === 'unpacked') say(`unpacked releases/${name}-${vsn}.tar.gz`);
  const previous = makeCurrent(launch.root, name, vsn);
  const fromVsn = previous.startData.trim().split(/\s+/)[1];
  const t = controlTarget(env);
  let answer: { old_pid: number; new_pid: number; single?: boolean };
  try {
    answer = (await controlRequest({ endpoint: t.endpoint, cookie: t.cookie.cookie, command: 'reexec', timeoutMs: 180_000 })) as typeof answer;
  } catch (err) {
    if (err instanceof ControlError && err.code === 'ENOTRUNNING') {
      say(`${name} ${vsn} is now the current version; node ${t.nodeName} is not running (start it to run ${vsn})`);
      return 0;
    }
    restore(launch.root, name, previous);
    const why = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${command} to ${vsn} failed: ${why}; ${fromVsn} stays current\n`);
    return 1;
  }
  // The old one is retired as its kind is: a single-process node stops gracefully on TERM
  // (stage 1: it keeps taking work on the shared socket until it stops listening, then leaves
  // once its work is done); a master the unicorn way: WINCH (its workers finish what they hold
  // and stop), then QUIT.
  const what = answer.single ? 'node' : 'master';
  say(`new ${what} of ${vsn} is ready (pid ${answer.new_pid}); retiring the old ${what} (pid ${answer.old_pid})`);
  if (!answer.single) {
    signal(answer.old_pid, 'SIGWINCH');
    await waitWorkersGone(answer.old_pid, answer.new_pid, 120_000);
  }
  const last = answer.single ? 'SIGTERM' : 'SIGQUIT';
  signal(answer.old_pid, last);
  if (!(await waitGone(answer.old_pid, 120_000))) {
    process.stderr.write(`the old ${what} (pid ${answer.old_pid}) is still running after ${last.slice(3)}; check its log\n`);
    return 1;
  }
  say(`node ${t.nodeName} ${command}d from ${fromVsn} to ${vsn} (pid ${answer.new_pid})`);
  return 0;
}

/** Sends `sig` to `pid`, which may be gone already. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Children of `pid` (its workers), from /proc; empty where /proc is not there. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter(isAlive);
  } catch {
    return [];
  }
}

/** Waits until `pid` has no child left but `except` (the new master it started). */
async function waitWorkersGone(pid: number, except: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const busy = () => childrenOf(pid).some((c) => c !== except);
  while (isAlive(pid) && busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
