/**
 * A real systemd as PID 1 of a runc container (Debian bookworm with systemd, made by mmdebstrap
 * and cached), sharing the host's network, for tests of the unit `noderel systemd` writes under
 * the service manager itself: readiness, reload, a main process that changes, restarts, stop.
 * Root only; `systemdContainersUsable()` says why not otherwise.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tempDir } from './project.js';
import { onPath, runToCompletion } from './run-command.js';

const MMDEBSTRAP_ARGS = [
  '--variant=minbase',
  '--include=systemd,systemd-sysv,procps',
  '--dpkgopt=path-exclude=/usr/share/man/*',
  '--dpkgopt=path-exclude=/usr/share/doc/*',
  '--dpkgopt=path-exclude=/usr/share/locale/*',
  '--skip=output/dev',
  'bookworm',
];


/** Can this process boot systemd in a container: root, runc, mmdebstrap (or the rootfs cached)? */
export function systemdContainersUsable(): { ok: true } | { ok: false; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'running systemd in a container needs root' };
  if (!onPath('runc')) return { ok: false, why: 'runc is not on PATH (apt-get install runc)' };
  if (!fs.existsSync(rootfsTarball()) && !onPath('mmdebstrap')) return { ok: false, why: 'mmdebstrap is not on PATH (apt-get install mmdebstrap)' };
  return { ok: true };
}

function rootfsTarball(): string {
  return path.join(process.env.NODEREL_CACHE_DIR ?? path.join(os.tmpdir(), 'noderel-test-cache'), 'images', 'debian-bookworm-systemd.tar');
}

/** The rootfs tarball, made once (about 45 s) and cached; a concurrent maker's rename wins. */
async function systemdRootfs(): Promise<string> {
  const file = rootfsTarball();
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}.tar`; // mmdebstrap picks its output format by the extension
  try {
    await runToCompletion('mmdebstrap', ['--quiet', ...MMDEBSTRAP_ARGS, tmp], 15 * 60_000);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return file;
}

export interface SystemdContainer {
  /** The container's root filesystem on the host (install files there before `systemctl`). */
  rootfs: string;
  /** A command inside the container (`runc exec`), as root. */
  exec(argv: string[], timeoutMs?: number): { status: number | null; stdout: string; stderr: string };
  /** As exec, without blocking this process (a test that sends requests meanwhile). */
  execAsync(argv: string[]): Promise<{ status: number | null; stdout: string; stderr: string }>;
  /** Waits until `check` (run repeatedly) returns true; throws with `what` on timeout. */
  waitFor(what: string, check: () => boolean, timeoutMs?: number): Promise<void>;
  destroy(): void;
}

/** The bundle's config: systemd as PID 1 with the capabilities it needs, the host's network and cgroups. */
function systemdConfig(bundle: string): void {
  const file = path.join(bundle, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  c.process.terminal = false;
  c.process.args = ['/lib/systemd/systemd', '--log-target=console'];
  c.process.env.push('container=oci');
  c.root.readonly = false;
  c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
  c.mounts = c.mounts.filter((m: { destination: string }) => m.destination !== '/sys/fs/cgroup');
  c.mounts.push(
    { destination: '/sys/fs/cgroup', type: 'bind', source: '/sys/fs/cgroup', options: ['rbind', 'rw'] },
    { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
  );
  // what the host allows of what systemd wants (CAP_SYS_RESOURCE is not in every sandbox's set)
  const bounding = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`);
  const wanted: [string, number][] = [
    ['CAP_CHOWN', 0], ['CAP_DAC_OVERRIDE', 1], ['CAP_DAC_READ_SEARCH', 2], ['CAP_FOWNER', 3], ['CAP_FSETID', 4], ['CAP_KILL', 5],
    ['CAP_SETGID', 6], ['CAP_SETUID', 7], ['CAP_SETPCAP', 8], ['CAP_NET_BIND_SERVICE', 10], ['CAP_NET_ADMIN', 12], ['CAP_IPC_LOCK', 14],
    ['CAP_SYS_CHROOT', 18], ['CAP_SYS_PTRACE', 19], ['CAP_SYS_ADMIN', 21], ['CAP_SYS_NICE', 23], ['CAP_SYS_RESOURCE', 24], ['CAP_MKNOD', 27], ['CAP_AUDIT_WRITE', 29],
  ];
  const caps = wanted.filter(([, bit]) => (bounding >> BigInt(bit)) & 1n).map(([name]) => name);
  c.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
  delete c.linux.maskedPaths;
  delete c.linux.readonlyPaths;
  fs.writeFileSync(file, JSON.stringify(c));
}

/** Boots systemd in a fresh container; resolves once `systemctl is-system-running` says running or degraded. */
export async function bootSystemd(): Promise<SystemdContainer> {
  const tarball = await systemdRootfs();
  const t = tempDir('noderel-systemd-');
  const bundle = path.join(t.dir, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  const state = path.join(t.dir, 'runc');
  fs.mkdirSync(rootfs, { recursive: true });
  await runToCompletion('tar', ['-xf', tarball, '-C', rootfs]);
  await runToCompletion('runc', ['spec', '--bundle', bundle]);
  systemdConfig(bundle);
  const id = `nrl-sd-${process.pid}-${randomBytes(3).toString('hex')}`;
  let output = '';
  const child: ChildProcess = spawn('runc', ['--root', state, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exec = (argv: string[], timeoutMs = 120_000) => {
    const r = spawnSync('runc', ['--root', state, 'exec', id, ...argv], { encoding: 'utf8', timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const execAsync = (argv: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn('runc', ['--root', state, 'exec', id, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      c.on('close', (status) => resolve({ status, stdout: out, stderr: err }));
    });
  const waitFor = async (what: string, check: () => boolean, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (child.exitCode !== null) throw new Error(`the systemd container exited while waiting for ${what}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; systemd said:\n${output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const destroy = () => {
    spawnSync('runc', ['--root', state, 'kill', id, 'KILL'], { timeout: 30_000 });
    spawnSync('runc', ['--root', state, 'delete', '-f', id], { timeout: 30_000 });
    if (child.exitCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    t.cleanup();
  };
  try {
    await waitFor('systemd to finish booting', () => /^(running|degraded)$/m.test(exec(['systemctl', 'is-system-running']).stdout));
  } catch (err) {
    destroy();
    throw err;
  }
  return { rootfs, exec, execAsync, waitFor, destroy };
}
