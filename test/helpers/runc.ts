// Containers for the `noderel image` end-to-end tests, run with runc from an OCI image layout,
// no Docker daemon. The image is unpacked once (umoci, keeping uids as root) and each container
// gets a copy of that bundle, with the host's network (the app's port on 127.0.0.1 is reachable
// from the test: pick a free port and pass it in `env`), no terminal, and its stdout and stderr
// piped to the test. Each test process has its own runc state dir (`--root`) in the temp dir.
//
//   const ok = containersUsable();
//   describe.skipIf(!ok.ok)('my image', () => {
//     afterAll(destroyAll);
//     it('serves', async () => {
//       const c = await runImage({ layout, tag: 'latest', env: { PORT: String(port) } });
//       await c.waitForOutput(/listening/, 30_000);
//       expect((await c.exec(['cat', '/etc/debian_version'])).stdout).toMatch(/^12/);
//       await c.kill('TERM');
//       expect(await c.waitExit()).toBe(0);
//       await c.destroy();
//     });
//   });
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onPath, runToCompletion } from './run-command.js';
import { tempDir } from './project.js';

export interface RunImageOptions {
  /** An OCI image layout directory. */
  readonly layout: string;
  /** The tag in it (`org.opencontainers.image.ref.name` in index.json). */
  readonly tag: string;
  /** Merged into the image's environment (a name the image sets is replaced). */
  readonly env?: Record<string, string>;
  /** Replaces the process's argv (the image's entrypoint + cmd). */
  readonly args?: string[];
  /** The root filesystem read-only (as Kubernetes' readOnlyRootFilesystem). */
  readonly readonlyRootfs?: boolean;
  /** tmpfs mounts, destination -> extra mount options (`'uid=65532,gid=65532,mode=0755'`, or `''`), as emptyDir volumes. */
  readonly tmpfs?: Record<string, string>;
}

export interface ExecResult {
  /** The exit code; 128 + n when the process was killed by signal n. */
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Container {
  /** The runc container id (unique per test run). */
  readonly id: string;
  /** The bundle directory: config.json and rootfs/. */
  readonly bundle: string;
  /** The container's init pid on the host, from `runc state`; throws once the container is gone. */
  pid(): number;
  /** The container's stdout and stderr so far, interleaved in arrival order. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match in the output; rejects on timeout or when the container ends without one. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** `runc exec` as the image's user, cwd and environment (with `env` merged in); rejects on timeout. */
  exec(argv: string[], env?: Record<string, string>, timeoutMs?: number): Promise<ExecResult>;
  /** `runc kill <id> <signal>` (`'TERM'`, `'SIGTERM'` or a number) to the container's init; throws when runc refuses (e.g. it has stopped). */
  kill(signal: string | number): Promise<void>;
  /** The exit code of the container's init (`runc run`'s: 128 + n when killed by signal n); rejects on timeout. */
  waitExit(timeoutMs?: number): Promise<number | null>;
  /** Has it exited (and its output been read)? */
  exited(): boolean;
  /** SIGKILL, `runc delete -f`, bundle removed. Never throws; safe to call twice. */
  destroy(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Is it usable here?

let usable: { ok: true } | { ok: false; why: string } | undefined;

/**
 * Can this test process run containers: root, runc and umoci on PATH, and a trivial container
 * (the host's /usr as its rootfs, `sh -c 'echo ok'`) runs? Answered once per process; when not,
 * the reason is printed (for `describe.skipIf`, so a skip is never silent).
 */
export function containersUsable(): { ok: true } | { ok: false; why: string } {
  if (!usable) {
    usable = checkUsable();
    if (!usable.ok) console.warn(`[runc] container tests skipped: ${usable.why}`);
  }
  return usable;
}

function checkUsable(): { ok: true } | { ok: false; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: `containers need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, why: 'runc needs root here (not running as root)' };
  for (const cmd of ['runc', 'umoci']) {
    if (!onPath(cmd)) return { ok: false, why: `${cmd} is not on PATH (apt-get install ${cmd})` };
  }
  const t = tempDir('noderel-runc-check-');
  const id = `noderel-check-${process.pid}-${randomBytes(3).toString('hex')}`;
  const root = path.join(t.dir, 'state');
  try {
    const bundle = path.join(t.dir, 'bundle');
    const rootfs = path.join(bundle, 'rootfs');
    fs.mkdirSync(rootfs, { recursive: true });
    const spec = spawnSync('runc', ['spec', '--bundle', bundle], { encoding: 'utf8', timeout: 30_000 });
    if (spec.status !== 0) return { ok: false, why: `runc spec failed: ${(spec.stderr || String(spec.error)).trim()}` };
    const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as OciRuntimeConfig;
    // The host's /usr, read-only, and its /bin, /lib... as they are (links into usr/, or bind mounts).
    config.mounts.push({ destination: '/usr', type: 'bind', source: '/usr', options: ['rbind', 'ro'] });
    for (const d of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
      const host = `/${d}`;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(host);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(host), path.join(rootfs, d));
      else config.mounts.push({ destination: host, type: 'bind', source: host, options: ['rbind', 'ro'] });
    }
    config.process.terminal = false;
    config.process.args = ['/bin/sh', '-c', 'echo ok'];
    config.linux.namespaces = config.linux.namespaces.filter((ns) => ns.type !== 'network');
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
    const r = spawnSync('runc', ['--root', root, 'run', '--bundle', bundle, id], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (r.status !== 0 || r.stdout.trim() !== 'ok') {
      const how = r.error ? String(r.error) : r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
      return { ok: false, why: `runc cannot run a trivial container here (${how}): ${`${r.stderr}${r.stdout}`.trim().slice(-2000)}` };
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, why: `runc check failed: ${(err as Error).message}` };
  } finally {
    spawnSync('runc', ['--root', root, 'delete', '-f', id], { stdio: 'ignore', timeout: 30_000 });
    t.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// The per-process run directory: runc state, unpacked images, bundles

interface RunDir {
  dir: string;
  state: string;
  images: string;
  bundles: string;
}

let runDir: RunDir | undefined;

function theRunDir(): RunDir {
  if (!runDir) {
    // Short: runc puts its state (and a socket during exec) under --root.
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'nrc-')));
    runDir = { dir, state: path.join(dir, 'state'), images: path.join(dir, 'images'), bundles: path.join(dir, 'bundles') };
    for (const d of [runDir.state, runDir.images, runDir.bundles]) fs.mkdirSync(d, { recursive: true });
  }
  return runDir;
}

/** The runc `--root` this process uses (for a test that wants to look at it). */
export function runcRoot(): string {
  return theRunDir().state;
}

// ---------------------------------------------------------------------------------------------
// Images: unpacked once per manifest digest, then copied per container

const unpacked = new Map<string, Promise<string>>();

/** The manifest digest the tag points at in the layout's index.json. */
export function manifestDigestOf(layout: string, tag: string): string {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as {
    manifests?: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = (index.manifests ?? []).find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) {
    const tags = (index.manifests ?? []).map((d) => d.annotations?.['org.opencontainers.image.ref.name']).filter(Boolean);
    throw new Error(`${layout}: no tag ${JSON.stringify(tag)} in index.json (tags: ${tags.join(', ') || 'none'})`);
  }
  return m.digest;
}

function unpackedBundle(layout: string, tag: string): Promise<string> {
  const digest = manifestDigestOf(layout, tag);
  const key = digest.replace(/^sha256:/, '');
  let p = unpacked.get(key);
  if (!p) {
    const dest = path.join(theRunDir().images, key);
    p = run('umoci', ['unpack', '--image', `${layout}:${tag}`, dest]).then(() => dest);
    unpacked.set(key, p);
    p.catch(() => {
      unpacked.delete(key);
      fs.rmSync(dest, { recursive: true, force: true });
    });
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Running

interface OciRuntimeConfig {
  process: {
    terminal?: boolean;
    user?: { uid: number; gid: number };
    args: string[];
    env?: string[];
    cwd: string;
    [k: string]: unknown;
  };
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[];
  linux: { namespaces: { type: string; path?: string }[]; [k: string]: unknown };
  [k: string]: unknown;
}

/** `env` (NAME=value lines) with `add` merged in: same names replaced in place, new ones appended. */
function mergeEnv(env: readonly string[], add: Record<string, string> = {}): string[] {
  const out = [...env];
  for (const [name, value] of Object.entries(add)) {
    const i = out.findIndex((e) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e) === name);
    if (i >= 0) out[i] = `${name}=${value}`;
    else out.push(`${name}=${value}`);
  }
  return out;
}

/** What `docker run` grants by default (umoci's config has only AUDIT_WRITE, KILL and NET_BIND_SERVICE, and as ambient ones). */
const DOCKER_DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** The capabilities of a process as docker (moby 23+) gives them: all of the default set to root, only the bounding set otherwise. */
function dockerCapabilities(uid: number): Record<string, string[]> {
  const caps = [...DOCKER_DEFAULT_CAPS];
  return uid === 0 ? { bounding: caps, effective: caps, permitted: caps } : { bounding: caps };
}

let overlayWorks: boolean | undefined;

/**
 * Makes the container's bundle from the unpacked image: its config.json copied, its rootfs an
 * overlay mount (the unpacked rootfs read-only below, the container's writes in `<bundle>.rw/`),
 * or, where overlayfs cannot be mounted, a copy. Returns the overlay's upper directory, if any.
 */
async function bundleFrom(pristine: string, bundle: string): Promise<string | undefined> {
  if (overlayWorks !== false) {
    const rw = `${bundle}.rw`;
    const rootfs = path.join(bundle, 'rootfs');
    fs.mkdirSync(rootfs, { recursive: true });
    fs.mkdirSync(path.join(rw, 'upper'), { recursive: true });
    fs.mkdirSync(path.join(rw, 'work'), { recursive: true });
    for (const f of fs.readdirSync(pristine)) {
      if (f !== 'rootfs') fs.copyFileSync(path.join(pristine, f), path.join(bundle, f));
    }
    const opts = `lowerdir=${path.join(pristine, 'rootfs')},upperdir=${path.join(rw, 'upper')},workdir=${path.join(rw, 'work')}`;
    try {
      await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, rootfs], 30_000);
      overlayWorks = true;
      return rw;
    } catch {
      overlayWorks = false;
      fs.rmSync(bundle, { recursive: true, force: true });
      fs.rmSync(rw, { recursive: true, force: true });
    }
  }
  await run('cp', ['-a', '--reflink=auto', pristine, bundle]);
  return undefined;
}

/** Unmounts the overlay rootfs of a bundle, if it has one (lazily if it is busy), then removes the bundle. */
function removeBundle(bundle: string, overlay: string | undefined): void {
  if (overlay) {
    const rootfs = path.join(bundle, 'rootfs');
    if (spawnSync('umount', [rootfs], { stdio: 'ignore', timeout: 30_000 }).status !== 0) {
      spawnSync('umount', ['-l', rootfs], { stdio: 'ignore', timeout: 30_000 });
    }
    // Only once the rootfs is no mount point any more (else rm would delete through it).
    if (isMountPoint(rootfs)) return;
    fs.rmSync(overlay, { recursive: true, force: true });
  }
  fs.rmSync(bundle, { recursive: true, force: true });
}

function isMountPoint(dir: string): boolean {
  try {
    return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
  } catch {
    return false;
  }
}

const live = new Set<RuncContainer>();
let counter = 0;

/**
 * Runs the image `layout:tag` under runc (`runc run` in the foreground, as a child of the test
 * with piped stdio) in the host's network namespace, and resolves once runc reports it running
 * (or it has already exited). Destroy it with `destroy()` or `destroyAll()`.
 */
export async function runImage(opts: RunImageOptions): Promise<Container> {
  const pristine = await unpackedBundle(opts.layout, opts.tag);
  const rd = theRunDir();
  const id = `nr-${process.pid}-${++counter}-${randomBytes(3).toString('hex')}`;
  const bundle = path.join(rd.bundles, id);
  const overlay = await bundleFrom(pristine, bundle);

  const configPath = path.join(bundle, 'config.json');
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as OciRuntimeConfig;
  config.linux.namespaces = config.linux.namespaces.filter((ns) => ns.type !== 'network');
  config.process.terminal = false;
  config.process.env = mergeEnv(config.process.env ?? [], opts.env);
  if (opts.args) config.process.args = [...opts.args];
  config.process.capabilities = dockerCapabilities(config.process.user?.uid ?? 0);
  if (opts.readonlyRootfs) config.root = { ...(config.root as object), readonly: true };
  for (const [destination, extra] of Object.entries(opts.tmpfs ?? {})) {
    config.mounts.push({ destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...extra.split(',').filter(Boolean)] });
  }
  // As `docker run --network host`: the host's name lookups (localhost), read-only.
  for (const f of ['/etc/hosts', '/etc/resolv.conf']) {
    if (fs.existsSync(f) && !config.mounts.some((m) => m.destination === f)) {
      config.mounts.push({ destination: f, type: 'bind', source: f, options: ['rbind', 'ro'] });
    }
  }
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2));

  const c = new RuncContainer(id, bundle, rd.state, config, overlay);
  live.add(c);
  try {
    await c.started();
  } catch (err) {
    await c.destroy();
    throw err;
  }
  return c;
}

/** Destroys every container this process started, and removes its runc state and unpacked images. For afterAll. */
export async function destroyAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.destroy()));
  const rd = runDir;
  if (rd && live.size === 0) {
    runDir = undefined;
    unpacked.clear();
    try {
      fs.rmSync(rd.dir, { recursive: true, force: true });
    } catch (err) {
      console.warn(`[runc] could not remove ${rd.dir}: ${(err as Error).message}`);
    }
  }
}

class RuncContainer implements Container {
  readonly id: string;
  readonly bundle: string;
  readonly #root: string;
  readonly #config: OciRuntimeConfig;
  readonly #proc: ChildProcess;
  #all = '';
  #stdout = '';
  #stderr = '';
  #code: number | null | undefined;
  #closed = false;
  #execs = 0;
  #destroyed: Promise<void> | undefined;
  readonly #exitedP: Promise<number | null>;
  readonly #changed = new Set<() => void>();

  readonly #overlay: string | undefined;

  constructor(id: string, bundle: string, root: string, config: OciRuntimeConfig, overlay: string | undefined) {
    this.#overlay = overlay;
    this.id = id;
    this.bundle = bundle;
    this.#root = root;
    this.#config = config;
    this.#proc = spawn('runc', ['--root', root, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc.stdout!.setEncoding('utf8').on('data', (s: string) => this.#append('stdout', s));
    this.#proc.stderr!.setEncoding('utf8').on('data', (s: string) => this.#append('stderr', s));
    this.#exitedP = new Promise((resolve) => {
      this.#proc.once('error', (err) => {
        this.#append('stderr', `[runc could not be started: ${err.message}]\n`);
        this.#code = null;
        this.#closed = true;
        this.#notify();
        resolve(null);
      });
      this.#proc.once('close', (code, signal) => {
        this.#code = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : null);
        this.#closed = true;
        this.#notify();
        resolve(this.#code);
      });
    });
  }

  /** Waits until `runc state` says running, or runc has exited. */
  async started(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let delay = 20;
    while (!this.#closed) {
      const st = await this.#state();
      if (st?.status === 'running') return;
      if (Date.now() > deadline) {
        throw new Error(`container ${this.id}: not running after ${timeoutMs} ms (state ${st?.status ?? 'none'}); output:\n${this.#all}`);
      }
      await Promise.race([new Promise((r) => setTimeout(r, delay)), this.#exitedP]);
      delay = Math.min(delay * 2, 200);
    }
  }

  #state(): Promise<{ status: string; pid: number } | undefined> {
    return new Promise((resolve) => {
      execFile('runc', ['--root', this.#root, 'state', this.id], { timeout: 30_000 }, (err, stdout) => {
        if (err) return resolve(undefined);
        try {
          resolve(JSON.parse(stdout) as { status: string; pid: number });
        } catch {
          resolve(undefined);
        }
      });
    });
  }

  pid(): number {
    let out: string;
    try {
      out = execFileSync('runc', ['--root', this.#root, 'state', this.id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? (err as Error).message;
      throw new Error(`container ${this.id}: no state (${String(stderr).trim()})`);
    }
    const st = JSON.parse(out) as { status: string; pid: number };
    if (!st.pid) throw new Error(`container ${this.id} is ${st.status}: no pid`);
    return st.pid;
  }

  output(): string {
    return this.#all;
  }
  stdout(): string {
    return this.#stdout;
  }
  stderr(): string {
    return this.#stderr;
  }
  exited(): boolean {
    return this.#closed;
  }

  waitForOutput(pattern: RegExp, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RegExpExecArray> {
    const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(this.#all);
        if (m) {
          settle();
          resolve(m);
        } else if (this.#closed) {
          settle();
          reject(new Error(`container ${this.id} ended (exit ${this.#code}) without printing ${pattern}; output:\n${this.#all}`));
        }
      };
      const timer = setTimeout(() => {
        settle();
        reject(new Error(`container ${this.id}: no ${pattern} in output within ${timeoutMs} ms; output:\n${this.#all}`));
      }, timeoutMs);
      const settle = (): void => {
        clearTimeout(timer);
        this.#changed.delete(check);
      };
      this.#changed.add(check);
      check();
    });
  }

  exec(argv: string[], env?: Record<string, string>, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ExecResult> {
    // The image's process (user, cwd, capabilities...) with this argv and env: runc exec --process.
    const processJson = path.join(this.bundle, `exec-${++this.#execs}.json`);
    const proc = { ...this.#config.process, terminal: false, args: argv, env: mergeEnv(this.#config.process.env ?? [], env) };
    fs.writeFileSync(processJson, JSON.stringify(proc));
    return new Promise((resolve, reject) => {
      const child = spawn('runc', ['--root', this.#root, 'exec', '--process', processJson, this.id], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`container ${this.id}: exec ${JSON.stringify(argv)} still running after ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`));
      }, timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`runc exec: ${err.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        fs.rmSync(processJson, { force: true });
        resolve({ status: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : null), stdout, stderr });
      });
    });
  }

  async kill(signal: string | number): Promise<void> {
    const sig = typeof signal === 'number' ? String(signal) : signal.replace(/^SIG/i, '').toUpperCase();
    await run('runc', ['--root', this.#root, 'kill', this.id, sig], 30_000);
  }

  async waitExit(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`container ${this.id} still running after ${timeoutMs} ms; output:\n${this.#all}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.#exitedP, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  destroy(): Promise<void> {
    this.#destroyed ??= this.#destroy();
    return this.#destroyed;
  }

  async #destroy(): Promise<void> {
    const quiet = async (args: string[]): Promise<void> => {
      try {
        await run('runc', ['--root', this.#root, ...args], 30_000);
      } catch {
        // not running, already deleted
      }
    };
    try {
      if (!this.#closed) {
        await quiet(['kill', this.id, 'KILL']);
        const gone = await Promise.race([this.#exitedP.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
        if (!gone && this.#proc.pid !== undefined) {
          try {
            process.kill(this.#proc.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      await quiet(['delete', '-f', this.id]);
      removeBundle(this.bundle, this.#overlay);
    } catch {
      // never throws
    } finally {
      live.delete(this);
    }
  }

  /** Last resort when the test process exits with containers left: synchronous kill and delete. */
  destroySync(): void {
    for (const args of [['kill', this.id, 'KILL'], ['delete', '-f', this.id]]) {
      spawnSync('runc', ['--root', this.#root, ...args], { stdio: 'ignore', timeout: 10_000 });
    }
    if (this.#proc.pid !== undefined && !this.#closed) {
      try {
        process.kill(this.#proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    removeBundle(this.bundle, this.#overlay);
  }

  #append(stream: 'stdout' | 'stderr', s: string): void {
    this.#all += s;
    if (stream === 'stdout') this.#stdout += s;
    else this.#stderr += s;
    this.#notify();
  }

  #notify(): void {
    for (const fn of [...this.#changed]) fn();
  }
}

process.once('exit', () => {
  for (const c of live) c.destroySync();
  try {
    if (runDir) fs.rmSync(runDir.dir, { recursive: true, force: true });
  } catch {
    // a mount that would not go: left for the machine's tmp cleaning
  }
});

// ---------------------------------------------------------------------------------------------


/** Runs a command to completion (run-command.ts), with this module's time limit. */
function run(cmd: string, args: string[], timeoutMs = 10 * 60_000): Promise<string> {
  return runToCompletion(cmd, args, timeoutMs);
}
